"""`harness bench`: speed targets measured side by side in one run (never in timed unit tests)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from harness.errors import InputError

# Each section module defines run(args) -> int.
SECTIONS = {
    "emulator": "harness.bench.emulator",
    "gate": "harness.bench.gate",
    "local": "harness.bench.local",
    "platform": "harness.bench.platform",
    "suite": "harness.bench.suite",
    "toolchain": "harness.bench.toolchain",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure speed targets side by side in one run")
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"one of {', '.join(SECTIONS)} (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown bench section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    worst = 0
    for name in args.sections or list(SECTIONS):
        worst = max(worst, int(importlib.import_module(SECTIONS[name]).run(args)))
    return worst
