"""`harness check` on a layout that is not this project's: tests/fixtures/other-layout.

The fixture is shaped like the well-known "EKS + Karpenter + Argo CD + game-2048" learning repos
(terraform/ built from terraform-aws-modules, argocd_apps/ synced by Argo CD) with defects planted on
purpose (its README lists them). The gate must run on it, report every planted defect at the right
place, and report nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from harness.gate.api import Report, check

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "other-layout"
INFRA, GITOPS = FIXTURE / "terraform", FIXTURE / "argocd_apps"


@dataclass(frozen=True)
class Planted:
    """One defect: the rule that must report it, in which file, on which lines (the construct's span)."""

    name: str
    rule_id: str
    file: str
    lines: range


PLANTED = [
    Planted(
        "NodePool on the removed karpenter.sh/v1beta1 API", "EKS001", "argocd_apps/karpenter/nodepool.yaml", range(1, 3)
    ),
    Planted(
        "EC2NodeClass on the removed karpenter.k8s.aws/v1beta1 API",
        "EKS001",
        "argocd_apps/karpenter/ec2nodeclass.yaml",
        range(1, 3),
    ),
    Planted(
        "v1beta1 nodeClassRef without group and kind", "EKS009", "argocd_apps/karpenter/nodepool.yaml", range(8, 10)
    ),
    Planted("NodePool allows on-demand, no spot", "EKS024", "argocd_apps/karpenter/nodepool.yaml", range(10, 22)),
    Planted(
        "EC2NodeClass role is not the Terraform node role",
        "EKS005",
        "argocd_apps/karpenter/ec2nodeclass.yaml",
        range(9, 10),
    ),
    Planted(
        "subnet selector matches no subnet Terraform tags",
        "EKS002",
        "argocd_apps/karpenter/ec2nodeclass.yaml",
        range(10, 13),
    ),
    Planted("IMDS hop limit 2", "EKS021", "argocd_apps/karpenter/ec2nodeclass.yaml", range(16, 21)),
    Planted(
        "Ingress backend names a Service port that does not exist",
        "EKS010",
        "argocd_apps/game-2048/ingress.yaml",
        range(16, 21),
    ),
    Planted(
        "deprecated kubernetes.io/ingress.class annotation", "EKS017", "argocd_apps/game-2048/ingress.yaml", range(6, 8)
    ),
    Planted(
        "subnet selector's discovery tag is not the cluster name",
        "EKS006",
        "argocd_apps/karpenter/ec2nodeclass.yaml",
        range(10, 13),
    ),
    Planted("EKS API endpoint open to 0.0.0.0/0", "EKS022", "terraform/eks.tf", range(9, 11)),
    Planted("ops node group keeps the eks module's IMDS hop limit 2", "EKS021", "terraform/eks.tf", range(24, 39)),
    Planted("Argo CD internet-facing over plain HTTP", "EKS020", "terraform/argocd.tf", range(19, 31)),
    Planted(
        "game-2048 image on the moving :latest tag", "EKS028", "argocd_apps/game-2048/deployment.yaml", range(20, 21)
    ),
    Planted("game-2048 Application in the default project", "EKS030", "argocd_apps/game-2048.yaml", range(9, 10)),
    Planted("karpenter Application in the default project", "EKS030", "argocd_apps/karpenter.yaml", range(9, 10)),
]


@pytest.fixture(scope="module")
def report(reference: Path) -> Report:
    return check([INFRA], [GITOPS], reference)


def where(report: Report, file: str) -> Path:
    """A finding's file relative to the fixture (reports give paths relative to the checked repo)."""
    return (Path(report.base or Path.cwd()) / file).resolve().relative_to(FIXTURE)


def explains(defect: Planted, report: Report, rule_id: str, file: str, line: int) -> bool:
    return rule_id == defect.rule_id and where(report, file) == Path(defect.file) and line in defect.lines


@pytest.mark.parametrize("defect", [pytest.param(d, id=d.name) for d in PLANTED])
def test_reports_the_planted_defect(defect: Planted, report: Report) -> None:
    found = [f for f in report.findings if explains(defect, report, f.rule_id, f.file, f.line)]

    got = [(f.rule_id, f.file, f.line) for f in report.findings]
    assert found, f"{defect.rule_id} not reported for {defect.name}; got: {got}"


def test_reports_nothing_but_the_planted_defects(report: Report) -> None:
    unexplained = [
        (f.rule_id, f"{where(report, f.file).as_posix()}:{f.line}", f.message)
        for f in report.findings
        if not any(explains(d, report, f.rule_id, f.file, f.line) for d in PLANTED)
    ]

    assert unexplained == []


def test_no_rule_crashes_on_the_layout(report: Report) -> None:
    crashed = [f for f in report.findings if "could not evaluate" in f.message]

    assert crashed == []
    assert report.files == len(list(INFRA.rglob("*.tf"))) + len(list(GITOPS.rglob("*.yaml")))


def test_cli_writes_sarif_for_the_layout_and_fails(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "check.sarif"

    code = main(
        [
            "check",
            "--infra",
            str(INFRA),
            "--gitops",
            str(GITOPS),
            "--reference",
            str(reference),
            "--format",
            "sarif",
            "--output",
            str(output),
        ]
    )

    assert code == 1
    assert capsys.readouterr().err == ""
    sarif = json.loads(output.read_text())
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"EKS001", "EKS010", "EKS020", "EKS021", "EKS024"}
    for result in results:
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1
