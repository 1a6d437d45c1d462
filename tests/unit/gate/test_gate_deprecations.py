"""EKS042 judges against the pinned versions: what a version deprecates is reported only from that version on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.gate.api import Report, check

DEPLOYMENT = "gitops/apps/game/deployment.yaml"
APPARMOR = (
    DEPLOYMENT,
    "  template:\n    metadata:\n",
    "  template:\n    metadata:\n      annotations:\n"
    "        container.apparmor.security.beta.kubernetes.io/game: runtime/default\n",
)


def test_apparmor_annotations_are_deprecated_from_kubernetes_1_30(platform: Callable[..., Report]) -> None:
    on_135 = platform(APPARMOR, select=("EKS042",))
    on_129 = platform(APPARMOR, ("versions.yaml", 'kubernetes: "1.35"', 'kubernetes: "1.29"'), select=("EKS042",))

    assert [f.file for f in on_135.findings] == [DEPLOYMENT]
    assert on_135.findings[0].message.endswith(
        "annotation container.apparmor.security.beta.kubernetes.io/game is deprecated since Kubernetes 1.30"
    )
    assert "securityContext.appArmorProfile" in on_135.findings[0].fix
    assert on_129.findings == []


def test_annotations_eks017_owns_are_not_reported_twice(platform: Callable[..., Report]) -> None:
    report = platform(
        ("gitops/apps/game/ingress.yaml", "  annotations:\n", "  annotations:\n    kubernetes.io/ingress.class: alb\n"),
        select=("EKS017", "EKS042"),
    )

    assert [f.rule_id for f in report.findings] == ["EKS017"]


def test_a_literal_cluster_name_gets_its_injection_path_as_the_fix(platform: Callable[..., Report]) -> None:
    """EKS043: the fix names the cluster secret annotation that carries the value."""
    report = platform(
        ("gitops/ops/karpenter/ec2nodeclass.yaml", "role: placeholder", "role: demo-karpenter-node"), select=("EKS043",)
    )

    (finding,) = report.findings
    assert finding.severity.value == "warning"
    assert "IAM role name 'demo-karpenter-node'" in finding.message
    assert '{{ index .metadata.annotations "eks-platform/karpenter-node-role" }}' in finding.fix


def test_a_project_named_like_the_cluster_is_not_a_literal_cluster_name(platform: Callable[..., Report]) -> None:
    report = platform(("gitops/bootstrap/game.yaml", "project: platform", "project: demo"), select=("EKS043",))

    assert report.findings == []


# ---------------------------------------------------------------- where users write them: chart values, stray files

ADDONS = "infra/addons/main.tf"
LB_VALUES = "    replicaCount = 2\n"


def repo_check(root: Path, reference: Path, *edits: tuple[str, str, str]) -> Report:
    for relative, old, new in edits:
        file = root / relative
        text = file.read_text(encoding="utf-8") if file.exists() else ""
        assert old in text, f"{relative} no longer contains {old!r}"
        file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return check([root / "infra"], [root / "gitops"], reference, select=("EKS042", "EKS043"))


def test_this_repository_writes_nothing_deprecated_or_cluster_specific(repo_copy: Path, reference: Path) -> None:
    assert repo_check(repo_copy, reference).findings == []


def test_deprecated_annotations_and_labels_in_chart_values(repo_copy: Path, reference: Path) -> None:
    report = repo_check(
        repo_copy,
        reference,
        (
            ADDONS,
            LB_VALUES,
            LB_VALUES
            + (
                '    podAnnotations = { "scheduler.alpha.kubernetes.io/critical-pod" = "" }\n'
                '    service        = { annotations = { "kubernetes.io/ingress.class" = "alb" } }\n'
                '    affinity       = { nodeSelector = { "failure-domain.beta.kubernetes.io/zone" = "a" } }\n'
            ),
        ),
    )
    assert [(f.rule_id, f.file) for f in report.findings] == [("EKS042", ADDONS)] * 2
    critical, zone = sorted(report.findings, key=lambda f: "zone" in f.message)
    assert "chart value podAnnotations sets annotation scheduler.alpha.kubernetes.io/critical-pod" in critical.message
    assert critical.fix == "use spec.priorityClassName"
    assert "node label failure-domain.beta.kubernetes.io/zone" in zone.message  # ingress.class is EKS017's


def test_a_literal_cluster_name_in_chart_values_names_the_platform_output(repo_copy: Path, reference: Path) -> None:
    report = repo_check(
        repo_copy,
        reference,
        (ADDONS, "    clusterName  = local.platform.cluster_name", '    clusterName  = "eks-platform"'),
    )
    (finding,) = report.findings
    assert finding.rule_id == "EKS043" and finding.file == ADDONS
    assert "cluster name 'eks-platform' written literally in chart value clusterName" in finding.message
    assert "platform output cluster_name" in finding.fix


def test_a_manifest_no_kustomization_lists_is_still_judged(repo_copy: Path, reference: Path) -> None:
    stray = "gitops/apps/game-2048/stray.yaml"
    report = repo_check(
        repo_copy,
        reference,
        (
            stray,
            "",
            (
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: stray\n  namespace: game-2048\n  annotations:\n"
                "    service.alpha.kubernetes.io/tolerate-unready-endpoints: 'true'\n"
                "    example.com/cluster: eks-platform\n"
                "spec:\n  ports:\n    - port: 80\n"
            ),
        ),
    )
    assert sorted((f.rule_id, f.file, f.line) for f in report.findings) == [("EKS042", stray, 7), ("EKS043", stray, 8)]
