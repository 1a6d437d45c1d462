"""The EKS minor upgrade rehearsed end to end (`harness upgrade`), on the session's target: the gate, the platform at
versions.yaml upgrade_from_kubernetes, the upgrade by Terraform, the control plane on the new minor, Karpenter's drift
replacing the pool's nodes, the game never below its PodDisruptionBudget, and nothing of the run left afterwards.
Its failing case: in a copy of the repository whose PodDisruptionBudget forbids any disruption, the drift's drain is
refused and the upgrade stage fails at once naming the budget; the teardown still leaves nothing.

Each is a run of its own of about 8 minutes (Karpenter reads the cluster's minor every 5 minutes before it drifts), so
they run when asked: `make upgrade-test`, or HARNESS_UPGRADE_DRILL=1. On the emulator there is no cluster to upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin import stack_skip_reason
from harness.project import KUBERNETES_CAPABILITY, REFERENCE_ENV, REPO_ENV, TargetCapabilities, reference_dir, repo_root
from harness.run import RUNS_ENV

DRILL_ENV = "HARNESS_UPGRADE_DRILL"
pytestmark = pytest.mark.e2e_any_target


def rehearse(target: TargetCapabilities, runs: Path, repo: Path | None = None) -> tuple[int, str, dict[str, str]]:
    """`harness upgrade` on `target` (of the checkout `repo`, else this one): exit code, output, stage lines."""
    if not os.environ.get(DRILL_ENV):
        pytest.skip(f"the upgrade rehearsal is an 8-minute run of its own: `make upgrade-test` or {DRILL_ENV}=1")
    if reason := target.reason(KUBERNETES_CAPABILITY):
        pytest.skip(f"not applicable on {target.name}: {reason}")
    if reason := stack_skip_reason(target.name):
        pytest.skip(reason)
    # A copy has no shared/ beside it: the reference data stays this checkout's.
    elsewhere = {REPO_ENV: str(repo), REFERENCE_ENV: str(reference_dir())} if repo else {}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "upgrade", "--target", target.name, "--yes"],
        env={**os.environ, RUNS_ENV: str(runs), **elsewhere},
        cwd=runs.parent,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.startswith("stage ")]
    return done.returncode, output, {line.split(":")[0].removeprefix("stage "): line for line in lines}


def left_nothing(runs: Path) -> bool:
    (run_dir,) = runs.iterdir()
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["settings"].get("processes") in (None, [])


def test_the_upgrade_keeps_the_game_within_its_budget_and_leaves_nothing(
    harness_target: TargetCapabilities, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    code, output, stages = rehearse(harness_target, runs)
    assert code == 0, output
    assert all(stages[s].startswith(f"stage {s}: pass") for s in ("gate", "platform", "upgrade", "teardown")), output
    (run_dir,) = runs.iterdir()
    timeline = json.loads((run_dir / "upgrade-timeline.json").read_text(encoding="utf-8"))
    answered = [s["ready"] for s in timeline["samples"] if s["ready"] is not None]
    assert answered and min(answered) >= timeline["pdb_floor"], timeline
    assert (run_dir / "upgrade.png").is_file()
    assert left_nothing(runs), output


def test_a_budget_that_forbids_any_disruption_fails_the_drift_naming_it_and_leaves_nothing(
    harness_target: TargetCapabilities, tmp_path: Path
) -> None:
    copy = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo_root()), str(copy)], check=True)
    budget = copy / "gitops" / "apps" / "game-2048" / "poddisruptionbudget.yaml"
    text = budget.read_text(encoding="utf-8")
    assert text.count("minAvailable: 1") == 1, f"{budget.name} no longer says minAvailable: 1: update this test"
    budget.write_text(text.replace("minAvailable: 1", "maxUnavailable: 0"), encoding="utf-8")
    runs = tmp_path / "runs"
    code, output, stages = rehearse(harness_target, runs, copy)
    assert code != 0 and "Traceback" not in output, output
    upgrade = stages["upgrade"]
    assert upgrade.startswith("stage upgrade: fail") and "drift blocked: karpenter: Node/" in upgrade, output
    assert "PodDisruptionBudget game-2048/game-2048 allows no disruption" in upgrade, output
    assert stages["teardown"].startswith("stage teardown: pass"), output
    assert left_nothing(runs), output
