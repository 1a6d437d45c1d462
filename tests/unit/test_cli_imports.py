"""The CLI imports only the chosen command's module, so the gate starts without cloud or plotting libraries; on
the core install (no extras) `harness check` and the pytest plugin work, and other commands name their extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


# ---------------------------------------------------------------- the core install: what `harness check` needs

# Run as if only some extras were installed: importing what the others bring fails, as it would.
WITHOUT = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
{body}
"""
STACK_EXTRA = ("boto3", "botocore", "moto", "tenacity")
E2E_EXTRA = ("kubernetes", "matplotlib", "requests")
PIN_EXTRA = ("requests", "tenacity")
NOT_IN_CORE = tuple(sorted({*STACK_EXTRA, *E2E_EXTRA, *PIN_EXTRA}))


def run_without(blocked: tuple[str, ...], body: str) -> subprocess.CompletedProcess[str]:
    code = WITHOUT.format(blocked=set(blocked), body=body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)


def harness_without(blocked: tuple[str, ...], argv: list[str]) -> subprocess.CompletedProcess[str]:
    return run_without(blocked, f"from harness.cli import main\nsys.exit(main({argv!r}))")


def test_the_blocker_really_blocks() -> None:
    done = run_without(("boto3",), "import boto3")
    assert done.returncode == 1 and "No module named 'boto3'" in done.stderr


def test_harness_check_runs_on_the_core_install(reference: Path) -> None:
    done = harness_without(NOT_IN_CORE, ["check", "--reference", str(reference)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_pytest_plugin_loads_on_the_core_install() -> None:
    done = run_without(NOT_IN_CORE, "import harness.plugin")
    assert done.returncode == 0, done.stderr


def test_help_lists_every_command_and_names_the_extra_a_missing_one_needs() -> None:
    done = harness_without(NOT_IN_CORE, ["--help"])
    assert done.returncode == 0, done.stderr
    for command in ("demo", "up", "verify", "down", "check", "e2e", "sweep", "bench", "pin-image"):
        assert command in done.stdout
    shown = " ".join(done.stdout.split())
    assert "not installed: pip install 'eks-platform-harness[stack]'" in shown
    assert "not installed: pip install 'eks-platform-harness[e2e]'" in shown


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        pytest.param(NOT_IN_CORE, ["up", "--run-id", "r-x"], "stack", id="up-on-core"),
        pytest.param(NOT_IN_CORE, ["sweep", "--run-id", "r-x"], "stack", id="sweep-on-core"),
        pytest.param(NOT_IN_CORE, ["pin-image"], "pin", id="pin-on-core"),
        pytest.param(E2E_EXTRA, ["e2e", "--yes"], "e2e", id="e2e-with-stack-only"),
    ],
)
def test_a_command_whose_extra_is_missing_says_which_in_one_line(
    blocked: tuple[str, ...], argv: list[str], extra: str
) -> None:
    done = harness_without(blocked, argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"pip install 'eks-platform-harness[{extra}]'" in done.stderr


def test_the_stack_commands_need_no_e2e_library() -> None:
    for argv in (["down", "--help"], ["up", "--help"], ["sweep", "--help"], ["demo", "--help"]):
        done = harness_without(E2E_EXTRA, argv)
        assert done.returncode == 0 and "not in the core install" not in done.stdout, (argv, done.stderr)
