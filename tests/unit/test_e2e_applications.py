"""The Applications the e2e waits for come from one source: the gate's rendering of gitops/ for the cluster secret
infra/addons creates, plus the bootstrap chart's root Application (harness.e2e.orchestration.expected_applications)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.e2e.orchestration import expected_applications
from harness.errors import InputError
from harness.gate.api import build_model
from harness.gate.rules.argocd import platform_applications
from harness.project import repo_root

REPO = repo_root()
SECRET_NAME = '    name   = "in-cluster"\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "gitops", root / "gitops")
    shutil.copytree(
        REPO / "infra", root / "infra", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "terraform.tfvars*")
    )
    shutil.copy(REPO / "versions.yaml", root / "versions.yaml")
    return root


def replace(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{file.name} no longer contains {old!r}"
    file.write_text(text.replace(old, new), encoding="utf-8")


def test_the_e2e_waits_for_the_per_cluster_names_the_gate_renders(reference: Path) -> None:
    names = expected_applications(REPO)

    assert names == ("bootstrap", "game-2048-in-cluster", "ops-karpenter-in-cluster")
    gate = build_model([REPO / "infra"], [REPO / "gitops"], reference)
    assert names == tuple(sorted(a.name for a in platform_applications(gate)))


def test_the_names_follow_the_cluster_secret_infra_addons_creates(tree: Path) -> None:
    replace(tree / "infra" / "addons" / "main.tf", SECRET_NAME, '    name   = "Prod EKS"\n')

    assert expected_applications(tree) == ("bootstrap", "game-2048-prod-eks", "ops-karpenter-prod-eks")


def test_the_names_follow_the_templates(tree: Path) -> None:
    replace(
        tree / "gitops" / "bootstrap" / "game.yaml",
        "name: 'game-2048-{{ .nameNormalized }}'",
        "name: 'game-{{ .nameNormalized }}'",
    )

    assert "game-in-cluster" in expected_applications(tree)


def test_a_name_the_gate_cannot_render_stops_the_e2e_before_it_waits(tree: Path) -> None:
    replace(tree / "gitops" / "bootstrap" / "game.yaml", "{{ .nameNormalized }}", "{{ .cluster }}")

    with pytest.raises(InputError, match="cannot tell which Applications"):
        expected_applications(tree)
