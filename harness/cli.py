"""`harness` command line: each concern registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.errors import EnvironmentProblem, HarnessError
from harness.signals import interrupt_on_stop_signals

# Each module defines register(subparsers) and sets a `func(args) -> int` default on its parsers.
# Only the chosen command's module is imported: `harness check` must not pay for boto3 or matplotlib.
COMMANDS = {
    "demo": "harness.e2e.cli",
    "up": "harness.targets.cli",
    "verify": "harness.targets.cli",
    "down": "harness.targets.cli",
    "check": "harness.gate.cli",
    "e2e": "harness.e2e.cli",
    "sweep": "harness.aws.sweep",
    "bench": "harness.bench",
    "pin-image": "harness.images.pin",
    "toolchain": "harness.toolchain.cli",
    "eks-token": "harness.kube.exec_credential",
}
# The extra (pyproject.toml) whose libraries a command needs beyond the core install, which is what `check` needs.
EXTRAS = {
    "demo": "stack",
    "up": "stack",
    "verify": "stack",
    "down": "stack",
    "sweep": "stack",
    "e2e": "e2e",
    "pin-image": "pin",
    "eks-token": "e2e",
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    modules = [COMMANDS[chosen]] if chosen in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or exc.name.partition(".")[0] == "harness":
                raise
            _register_not_installed(subparsers, name, exc.name)
        else:
            module.register(subparsers)
    return parser


def _register_not_installed(subparsers: Any, module: str, missing: str) -> None:
    """The module's commands, each saying in one line which extra brings what it lacks."""
    for command in (c for c, m in COMMANDS.items() if m == module):
        extra = EXTRAS.get(command, "all")
        hint = f"needs {missing}, not in the core install: pip install 'eks-platform-harness[{extra}]'"
        parser = subparsers.add_parser(command, help=f"(not installed: pip install 'eks-platform-harness[{extra}]')")
        parser.set_defaults(not_installed=True)  # its options are unknown here: main() lets them pass

        def refuse(_args: argparse.Namespace, command: str = command, hint: str = hint) -> int:
            raise EnvironmentProblem(f"harness {command} {hint}")

        parser.set_defaults(func=refuse)


def _chosen(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # this process runs one command and exits (callers inside a longer process pass argv)
        argv = sys.argv[1:]
        interrupt_on_stop_signals()
        if _chosen(argv) == "check":
            from harness.gate.cli import collect_garbage_only_at_exit  # imported for the command anyway

            collect_garbage_only_at_exit()
    argv = list(argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "not_installed", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
