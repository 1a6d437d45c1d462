"""`harness upgrade` proves the step before it changes anything: in a copy of the repository whose old side runs an
add-on of another minor (kube-proxy of 1.34 on the 1.35 cluster the upgrade starts from), the gate stage refuses in
one line naming the rule, the file and the fix, no later stage runs, and nothing of the run is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.project import REFERENCE_ENV, REPO_ENV, reference_dir, repo_root
from harness.run import RUNS_ENV

pytestmark = pytest.mark.integration
DECLARED = 'upgrade_from_eks_addon_kube_proxy: "v1.35.3-eksbuild.2"'
BROKEN = 'upgrade_from_eks_addon_kube_proxy: "v1.34.6-eksbuild.2"'


def test_an_add_on_of_another_minor_is_refused_by_the_gate_before_anything_is_created(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo_root()), str(copy)], check=True)
    text = (copy / "versions.yaml").read_text(encoding="utf-8")
    assert text.count(DECLARED) == 1, f"versions.yaml no longer says {DECLARED!r}: update this test"
    (copy / "versions.yaml").write_text(text.replace(DECLARED, BROKEN), encoding="utf-8")
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "upgrade", "--target", "local", "--yes"],
        env={**os.environ, RUNS_ENV: str(runs), REPO_ENV: str(copy), REFERENCE_ENV: str(reference_dir())},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    gate = next(line for line in output.splitlines() if line.startswith("stage gate:"))
    assert gate.startswith("stage gate: fail") and "EKS049 versions.yaml:" in gate and "kube-proxy" in gate, output
    assert "stage platform: not run" in output and "stage upgrade: not run" in output, output
    (run_dir,) = runs.iterdir()
    assert not (run_dir / "platform.tfstate").exists() or not json.loads(
        (run_dir / "platform.tfstate").read_text(encoding="utf-8")
    ).get("resources"), output
    settings = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["settings"]
    assert settings.get("processes") in (None, []) and not settings.get("emulator", {}).get("pid"), output
