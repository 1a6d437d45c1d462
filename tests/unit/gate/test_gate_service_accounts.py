"""EKS047/EKS048 on this repository (passes) and on a copy with one chart value changed (fails): the
ServiceAccount each controller chart runs as is the one its Pod Identity role is given to, and the chart keeps
the RBAC and ServiceAccount its controller needs."""

from __future__ import annotations

from pathlib import Path

from harness.gate.api import Report, check

ADDONS = "infra/addons/main.tf"
KARPENTER_ACCOUNT = "      name = local.platform.karpenter_service_account.name"
LB_VALUES = "    replicaCount = 2\n"
LB_ACCOUNT = "      create = true\n      name   = local.platform.lb_controller_service_account.name"


def gate(root: Path, reference: Path, *edits: tuple[str, str]) -> Report:
    file = root / ADDONS
    text = file.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"{ADDONS} no longer contains {old!r}"
        text = text.replace(old, new, 1)
    file.write_text(text, encoding="utf-8")
    return check([root / "infra"], [root / "gitops"], reference, select=("EKS047", "EKS048"))


def values_line(root: Path, release: str) -> int:
    """The line of a release's `values` (where the gate places what its yamlencode sets)."""
    lines = (root / ADDONS).read_text(encoding="utf-8").splitlines()
    start = lines.index(f'resource "helm_release" "{release}" {{')
    return next(n for n, line in enumerate(lines[start:], start + 1) if line.strip().startswith("values "))


def test_this_repository_runs_each_controller_as_its_associated_service_account(
    repo_copy: Path, reference: Path
) -> None:
    assert gate(repo_copy, reference).findings == []


def test_a_karpenter_service_account_renamed_in_the_chart_values_only(repo_copy: Path, reference: Path) -> None:
    report = gate(repo_copy, reference, (KARPENTER_ACCOUNT, '      name = "karpenter-controller"'))
    (finding,) = report.findings
    assert finding.rule_id == "EKS047" and finding.file == ADDONS
    assert finding.line == values_line(repo_copy, "karpenter")
    assert "runs as ServiceAccount kube-system/karpenter-controller" in finding.message
    assert "pod-identity-role/main.tf" in finding.message and "kube-system/karpenter:" in finding.message
    assert "run the chart as kube-system/karpenter" in finding.fix


def test_a_release_moved_to_another_namespace(repo_copy: Path, reference: Path) -> None:
    moved = (
        "  namespace  = local.platform.lb_controller_service_account.namespace",
        '  namespace  = "aws-load-balancer-controller"',
    )
    (finding,) = gate(repo_copy, reference, moved).findings
    assert finding.rule_id == "EKS047"
    assert "aws-load-balancer-controller/aws-load-balancer-controller" in finding.message


def test_the_lb_controller_without_its_rbac(repo_copy: Path, reference: Path) -> None:
    (finding,) = gate(repo_copy, reference, (LB_VALUES, LB_VALUES + "    rbac         = { create = false }\n")).findings
    assert finding.rule_id == "EKS048" and finding.severity.value == "error"
    assert "rbac.create=false turns off its RBAC" in finding.message
    assert finding.file == ADDONS and finding.line == values_line(repo_copy, "aws_load_balancer_controller")


def test_a_chart_service_account_turned_off_needs_one_created_elsewhere(repo_copy: Path, reference: Path) -> None:
    off = (LB_ACCOUNT, LB_ACCOUNT.replace("create = true", "create = false"))
    (finding,) = gate(repo_copy, reference, off).findings
    assert finding.rule_id == "EKS048"
    assert "nothing in the checked tree creates ServiceAccount kube-system/aws-load-balancer-controller" in (
        finding.message
    )

    (repo_copy / "infra" / "addons" / "service_account.tf").write_text(
        'resource "kubernetes_service_account_v1" "lb_controller" {\n  metadata {\n'
        "    name      = local.platform.lb_controller_service_account.name\n"
        "    namespace = local.platform.lb_controller_service_account.namespace\n  }\n}\n"
    )
    assert gate(repo_copy, reference).findings == []
