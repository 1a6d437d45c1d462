"""`python -m harness.gate [options]`: `harness check` without loading the other commands (a faster start)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError
from harness.gate.cli import DESCRIPTION, add_arguments, collect_garbage_only_at_exit, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gate", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except HarnessError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        return exc.exit_code


if __name__ == "__main__":
    collect_garbage_only_at_exit()
    sys.exit(main())
