"""Faults with the real Terraform and a real moto server: one clear line, non-zero exit, nothing left running
and no resources left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.aws import emulator as emu
from harness.errors import EnvironmentProblem
from harness.plugin import stack_skip_reason
from harness.run import RUNS_ENV
from harness.terraform.providers import provider_source
from harness.terraform.runner import Terraform

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def terraform_ready() -> None:
    if reason := stack_skip_reason("emulator"):
        pytest.skip(reason)


def harness(runs_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, RUNS_ENV: str(runs_dir)}
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_apply(runs_dir: Path, run_id: str, process: subprocess.Popen[str]) -> int:
    """Block until Terraform is creating resources; return the emulator's pid."""
    log = runs_dir / run_id / "logs" / "platform-02-apply.log"
    deadline = time.monotonic() + 120
    while "Creating..." not in (log.read_text() if log.exists() else ""):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "apply never started"
        time.sleep(0.2)
    return int(json.loads((runs_dir / run_id / "run.json").read_text())["settings"]["emulator"]["pid"])


def assert_nothing_left(runs_dir: Path, run_id: str, emulator_pid: int | None) -> None:
    settings = json.loads((runs_dir / run_id / "run.json").read_text())["settings"]
    assert "emulator" not in settings
    if emulator_pid is not None:
        assert not emu.is_moto_process(emulator_pid)
    state = runs_dir / run_id / "platform.tfstate"
    if state.exists():
        resources = json.loads(state.read_text()).get("resources", [])
        assert [r for r in resources if r["mode"] == "managed" and r["instances"]] == []


def test_invalid_variables_are_one_line_before_anything_is_created(tmp_path: Path) -> None:
    process = harness(tmp_path, "up", "--run-id", "r-badcidr", "--api-cidr", "0.0.0.0/0")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Invalid value for variable: api_public_cidrs must not contain 0.0.0.0/0" in lines[0]
    assert_nothing_left(tmp_path, "r-badcidr", None)


def test_the_emulator_dying_mid_apply(tmp_path: Path) -> None:
    process = harness(tmp_path, "up", "--run-id", "r-emudies")
    pid = wait_for_apply(tmp_path, "r-emudies", process)
    os.kill(pid, signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"the emulator (moto server pid {pid}) exited during terraform apply" in lines[0]
    assert_nothing_left(tmp_path, "r-emudies", pid)


def test_ctrl_c_during_apply(tmp_path: Path) -> None:
    process = harness(tmp_path, "up", "--run-id", "r-ctrlc")
    pid = wait_for_apply(tmp_path, "r-ctrlc", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130
    assert err.strip().splitlines() == ["interrupted"]
    assert_nothing_left(tmp_path, "r-ctrlc", pid)


def test_an_unreachable_registry_without_a_mirror(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "local" {}\n  required_providers {\n'
        '    aws = { source = "hashicorp/aws", version = "~> 5.100" }\n  }\n}\n'
    )
    # A dead proxy makes the registry unreachable even on a machine with internet access.
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HOME": str(tmp_path), "TF_PLUGIN_CACHE_DIR": ""}
    terraform = Terraform(root, tmp_path / "run", env=env, provider=provider_source(tmp_path, None, env), attempts=1)
    with pytest.raises(EnvironmentProblem, match="Terraform's AWS provider is not installed and the registry is"):
        terraform.init()


def test_malformed_hcl_names_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "local" {}\n}\n\nresource "aws_vpc" "v" {\n  cidr_block = \n}\n'
    )
    process = harness(tmp_path / "runs", "up", "--run-id", "r-broken", "--stack", str(root))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "broken/main.tf:6: " in lines[0] and lines[0].startswith("error: terraform init failed: ")
    assert_nothing_left(tmp_path / "runs", "r-broken", None)
