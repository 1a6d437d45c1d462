"""The EKS minor upgrade rehearsed end to end (`harness upgrade`), on the session's target: the gate, the platform at
versions.yaml upgrade_from_kubernetes, the upgrade by Terraform, the control plane on the new minor, Karpenter's drift
replacing the pool's nodes, the game never below its PodDisruptionBudget, and nothing of the run left afterwards.

It is its own run of about 15 minutes (Karpenter reads the cluster's minor every 5 minutes before it drifts), so it
runs when asked: `make upgrade-test`, or HARNESS_UPGRADE_DRILL=1. On the emulator there is no cluster to upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin import stack_skip_reason
from harness.project import KUBERNETES_CAPABILITY, TargetCapabilities
from harness.run import RUNS_ENV

DRILL_ENV = "HARNESS_UPGRADE_DRILL"
pytestmark = pytest.mark.e2e_any_target


def test_the_upgrade_keeps_the_game_within_its_budget_and_leaves_nothing(
    harness_target: TargetCapabilities, tmp_path: Path
) -> None:
    if not os.environ.get(DRILL_ENV):
        pytest.skip(f"the upgrade rehearsal is a 15-minute run of its own: `make upgrade-test` or {DRILL_ENV}=1")
    if reason := harness_target.reason(KUBERNETES_CAPABILITY):
        pytest.skip(f"not applicable on {harness_target.name}: {reason}")
    if reason := stack_skip_reason(harness_target.name):
        pytest.skip(reason)
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "upgrade", "--target", harness_target.name, "--yes"],
        env={**os.environ, RUNS_ENV: str(runs)},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    stages = {
        line.split(":")[0].removeprefix("stage "): line for line in output.splitlines() if line.startswith("stage ")
    }
    assert all(stages[s].startswith(f"stage {s}: pass") for s in ("gate", "platform", "upgrade", "teardown")), output
    (run_dir,) = runs.iterdir()
    timeline = json.loads((run_dir / "upgrade-timeline.json").read_text(encoding="utf-8"))
    answered = [s["ready"] for s in timeline["samples"] if s["ready"] is not None]
    assert answered and min(answered) >= timeline["pdb_floor"], timeline
    assert (run_dir / "upgrade.png").is_file()
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["settings"].get("processes") in (None, [])
