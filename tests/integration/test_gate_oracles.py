"""Oracle tests of the gate: what it computes offline, compared with what the real tools compute.

- kustomize: the gate's `build` of every kustomization in gitops/ and in the gate's test fixtures against
  `kustomize build` of the pinned kustomize (from the toolchain; skipped with one line when it is not built).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.gate.effective import build
from harness.gate.model import Location
from harness.project import repo_root
from harness.toolchain.build import locate, missing

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "unit" / "gate" / "fixtures"
# RFC 6902 refuses these patches; kustomize fails the build on all of them but `replace-missing`, which it applies
# as an `add` (evanphx/json-patch v4): the gate reports all of them (EKS040) and renders what kustomize renders.
REFUSED = {"replace-missing", "remove-missing", "add-missing-parent", "test-fails"}


def _kustomizations() -> list[Path]:
    roots = [repo_root() / "gitops", FIXTURES]
    return sorted({p.parent for root in roots for p in root.rglob("kustomization.yaml")})


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    metadata = doc.get("metadata") or {}
    return (str(doc.get("kind")), str(metadata.get("namespace", "")), str(metadata.get("name")))


@pytest.mark.parametrize("directory", _kustomizations(), ids=lambda p: str(p.relative_to(repo_root())))
def test_the_gate_builds_what_kustomize_builds(directory: Path) -> None:
    if reason := missing(["kustomize"]):
        pytest.skip(reason)
    real = subprocess.run(
        [str(locate("kustomize")), "build", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    problems: list[tuple[Location, str]] = []

    built = build(directory.resolve(), {}, set(), problems=problems)

    refused = directory.name in REFUSED
    assert bool(problems) == refused, problems
    if real.returncode != 0:
        assert refused, real.stderr
        return
    assert real.returncode == 0, real.stderr
    expected = {_key(d): d for d in yaml.safe_load_all(real.stdout) if d}
    assert {_key(m.doc): m.doc for m in built} == expected
