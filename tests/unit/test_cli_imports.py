"""The CLI imports only the chosen command's module, so the gate starts without cloud or plotting libraries."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from harness.cli import build_parser
build_parser({argv!r})
heavy = sorted(m for m in ("boto3", "matplotlib", "kubernetes", "moto") if m in sys.modules)
print(",".join(heavy))
"""


def loaded_heavy_modules(argv: list[str]) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True
    ).stdout.strip()
    return set(filter(None, out.split(",")))


def test_check_command_imports_no_cloud_or_plotting_library() -> None:
    assert loaded_heavy_modules(["check"]) == set()


def test_help_without_a_command_registers_every_module() -> None:
    # The probe is sensitive: with every command registered, the e2e's imports show up.
    assert {"boto3", "matplotlib"} <= loaded_heavy_modules([])
