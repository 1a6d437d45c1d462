"""infra/addons reads the platform's outputs through terraform_remote_state: a name the platform does not
output fails only at the add-ons plan, after the cluster is up and billing. Caught here instead; the
emulator tier walks every full path in real outputs (tests/integration/test_platform_emulator.py)."""

from __future__ import annotations

from pathlib import Path

import hcl2

from harness.gate.api import build_model
from harness.gate.model import Model
from harness.project import reference_dir, repo_root


def test_the_reads_are_found_and_try_marks_the_optional_ones(
    addons_platform_reads: dict[tuple[str, ...], bool],
) -> None:
    assert addons_platform_reads[("cluster_name",)] is False
    assert addons_platform_reads[("ops_node_labels", "workload-type")] is False
    assert addons_platform_reads[("lb_controller_service_account", "namespace")] is False
    assert addons_platform_reads[("unsupported_on_target", "kubernetes")] is True  # inside try(...)


def test_every_output_the_addons_read_is_declared_by_the_platform(
    addons_platform_reads: dict[tuple[str, ...], bool],
) -> None:
    with (repo_root() / "infra" / "platform" / "outputs.tf").open(encoding="utf-8") as handle:
        declared = {name.strip('"') for block in hcl2.load(handle).get("output", []) for name in block}
    read = {path[0] for path in addons_platform_reads}
    assert read - declared == set(), "infra/addons reads outputs infra/platform does not declare"


def helm_releases() -> dict[str, dict[str, object]]:
    """infra/addons' helm_release blocks by name, as python-hcl2 reads them (strings keep their quotes)."""
    with (repo_root() / "infra" / "addons" / "main.tf").open(encoding="utf-8") as handle:
        blocks = hcl2.load(handle).get("resource", [])
    return {
        name.strip('"'): body
        for block in blocks
        for kind, named in block.items()
        if kind.strip('"') == "helm_release"
        for name, body in named.items()
    }


def test_karpenter_crds_come_from_their_own_chart_in_step_with_the_controller() -> None:
    """Helm never upgrades a chart's crds/ folder: the CRDs come from karpenter-crd (templates), at the version of
    the controller, installed before it; the karpenter release leaves its own copies out."""
    releases = helm_releases()
    crd, controller = releases["karpenter_crd"], releases["karpenter"]
    assert crd["version"] == controller["version"] == "${local.versions.karpenter}"
    assert crd["namespace"] == controller["namespace"]
    assert controller.get("skip_crds") is True
    assert "${helm_release.karpenter_crd}" in (controller.get("depends_on") or [])
    assert "${helm_release.karpenter_crd}" in (releases["bootstrap"].get("depends_on") or [])
    evaluated = {r.address: r.attrs for r in addons_model().terraform.of_type("helm_release")}
    crd, controller = evaluated["helm_release.karpenter_crd"], evaluated["helm_release.karpenter"]
    assert crd["chart"] == "karpenter-crd" and crd["repository"] == controller["repository"] is not None


def test_chart_folders_replace_the_repositories_of_the_charts_they_name(tmp_path: Path) -> None:
    """A machine without the chart repositories (the local target) installs each chart from a folder; the charts it
    does not name still come from their repositories."""
    folder = tmp_path / "argo-cd"
    evaluated = {
        r.address: r.attrs
        for r in addons_model({"chart_folders": {"argo-cd": str(folder)}}).terraform.of_type("helm_release")
    }
    assert evaluated["helm_release.argocd"]["chart"] == str(folder)
    assert evaluated["helm_release.argocd"].get("repository") is None
    assert evaluated["helm_release.karpenter"]["chart"] == "karpenter"
    assert evaluated["helm_release.karpenter"]["repository"] == "oci://public.ecr.aws/karpenter"


def addons_model(variables: dict[str, object] | None = None) -> Model:
    return build_model([repo_root() / "infra" / "addons"], [], reference_dir(), variables=variables)
