"""`harness` command line: each concern registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.errors import HarnessError

# Each module defines register(subparsers) and sets a `func(args) -> int` default on its parsers.
# Only the chosen command's module is imported: `harness check` must not pay for boto3 or matplotlib.
COMMANDS = {
    "demo": "harness.targets.cli",
    "up": "harness.targets.cli",
    "verify": "harness.targets.cli",
    "down": "harness.targets.cli",
    "check": "harness.gate.cli",
    "e2e": "harness.e2e.cli",
    "sweep": "harness.aws.sweep",
    "bench": "harness.bench",
    "pin-image": "harness.images.pin",
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    modules = [COMMANDS[chosen]] if chosen in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # this process runs one command and exits (callers inside a longer process pass argv)
        argv = sys.argv[1:]
        if _chosen(argv) == "check":
            from harness.gate.cli import collect_garbage_only_at_exit  # imported for the command anyway

            collect_garbage_only_at_exit()
    argv = list(argv)
    args = build_parser(argv).parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
