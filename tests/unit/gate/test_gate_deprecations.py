"""EKS042 judges against the pinned versions: what a version deprecates is reported only from that version on."""

from __future__ import annotations

from collections.abc import Callable

from harness.gate.api import Report

DEPLOYMENT = "gitops/apps/game/deployment.yaml"
APPARMOR = (DEPLOYMENT, "  template:\n    metadata:\n",
            "  template:\n    metadata:\n      annotations:\n"
            "        container.apparmor.security.beta.kubernetes.io/game: runtime/default\n")


def test_apparmor_annotations_are_deprecated_from_kubernetes_1_30(platform: Callable[..., Report]) -> None:
    on_135 = platform(APPARMOR, select=("EKS042",))
    on_129 = platform(APPARMOR, ("versions.yaml", 'kubernetes: "1.35"', 'kubernetes: "1.29"'), select=("EKS042",))

    assert [f.file for f in on_135.findings] == [DEPLOYMENT]
    assert on_135.findings[0].message.endswith(
        "annotation container.apparmor.security.beta.kubernetes.io/game is deprecated since Kubernetes 1.30")
    assert "securityContext.appArmorProfile" in on_135.findings[0].fix
    assert on_129.findings == []


def test_annotations_eks017_owns_are_not_reported_twice(platform: Callable[..., Report]) -> None:
    report = platform(("gitops/apps/game/ingress.yaml", "  annotations:\n",
                       "  annotations:\n    kubernetes.io/ingress.class: alb\n"), select=("EKS017", "EKS042"))

    assert [f.rule_id for f in report.findings] == ["EKS017"]


def test_a_literal_cluster_name_gets_its_injection_path_as_the_fix(platform: Callable[..., Report]) -> None:
    """EKS043: the fix names the cluster secret annotation that carries the value."""
    report = platform(("gitops/ops/karpenter/ec2nodeclass.yaml", "role: placeholder", "role: demo-karpenter-node"),
                      select=("EKS043",))

    (finding,) = report.findings
    assert finding.severity.value == "warning"
    assert "IAM role name 'demo-karpenter-node'" in finding.message
    assert '{{ index .metadata.annotations "eks-platform/karpenter-node-role" }}' in finding.fix


def test_a_project_named_like_the_cluster_is_not_a_literal_cluster_name(platform: Callable[..., Report]) -> None:
    report = platform(("gitops/bootstrap/game.yaml", "project: platform", "project: demo"), select=("EKS043",))

    assert report.findings == []
