"""`--plan-json`: every value of the planned root comes from the plan (variables, resources, outputs, and what
another root reads from it through remote state); the other roots keep their static evaluation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError
from harness.gate.api import build_model, check
from harness.gate.hcl import Unknown


def plan(
    path: Path,
    *,
    variables: dict[str, Any] | None = None,
    resources: list[dict[str, Any]] | None = None,
    outputs: dict[str, Any] | None = None,
    unknown: dict[str, Any] | None = None,
) -> Path:
    document = {
        "variables": {k: {"value": v} for k, v in (variables or {}).items()},
        "planned_values": {
            "root_module": {"resources": resources or []},
            "outputs": {k: {"value": v} for k, v in (outputs or {}).items()},
        },
        "resource_changes": [{"address": a, "change": {"after_unknown": m}} for a, m in (unknown or {}).items()],
        "configuration": {"root_module": {"variables": {k: {} for k in (variables or {})}}},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_plans_variables_reach_every_layer(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree()
    other = plan(
        tmp_path / "plan.json",
        variables={"cluster_name": "other", "region": "us-east-1"},
        outputs={"cluster_name": "other", "region": "us-east-1"},
    )

    model = build_model([root / "infra"], [root / "gitops"], reference, plan_json=other)
    report = check([root / "infra"], [root / "gitops"], reference, plan_json=other)

    (cluster,) = model.terraform.of_type("aws_eks_cluster")
    assert cluster.get("name") == "other"
    assert {
        s.tags["karpenter.sh/discovery"]
        for s in model.terraform.of_type("aws_subnet")
        if "karpenter.sh/discovery" in s.tags
    } == {"other"}
    (secret,) = model.rendered.cluster_secrets  # infra/addons reads the platform through remote state
    assert secret.annotations["eks-platform/cluster-name"] == "other"
    assert model.terraform.outputs["platform"]["region"] == "us-east-1"
    assert [f.rule_id for f in report.findings] == []


def test_planned_resource_values_replace_static_ones(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    """The plan says the cluster is named otherwise than the variables would make it: the plan wins, and the gate
    reports the disagreement the plan would bring to the cluster."""
    root = platform_tree()
    renamed = plan(
        tmp_path / "plan.json",
        variables={"cluster_name": "demo"},
        resources=[
            {"address": "aws_eks_cluster.this", "values": {"name": "renamed", "version": "1.35"}},
        ],
    )

    report = check([root / "infra"], [root / "gitops"], reference, select=("EKS006",), plan_json=renamed)

    assert report.findings and all("renamed" in f.message for f in report.findings)


def test_unknown_plan_outputs_stay_unknown_through_remote_state(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree()
    unknown_name = plan(tmp_path / "plan.json", variables={"cluster_name": "demo"}, outputs={"region": "eu-west-1"})

    model = build_model([root / "infra"], [root / "gitops"], reference, plan_json=unknown_name)

    assert isinstance(model.terraform.outputs["platform"]["cluster_name"], Unknown)
    assert model.terraform.outputs["platform"]["region"] == "eu-west-1"


def test_a_count_unknown_statically_becomes_the_planned_instances(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree(
        (
            "infra/platform/main.tf",
            'resource "aws_subnet" "private" {\n  count',
            'resource "aws_subnet" "private" {\n  count = length(var.azs)\n  # count',
        )
    )
    three = plan(
        tmp_path / "plan.json",
        variables={"cluster_name": "demo"},
        resources=[
            {"address": f"aws_subnet.private[{i}]", "values": {"tags": {"karpenter.sh/discovery": "demo"}}}
            for i in range(3)
        ],
    )

    model = build_model([root / "infra"], [root / "gitops"], reference, plan_json=three)

    assert sorted(r.index for r in model.terraform.of_type("aws_subnet") if r.name == "private") == [0, 1, 2]


def test_a_plan_for_no_root_or_two_plans_for_one_root_are_input_errors(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree()
    stranger = plan(tmp_path / "stranger.json", variables={"nothing_here": 1})
    first = plan(tmp_path / "a.json", variables={"cluster_name": "demo"})
    second = plan(tmp_path / "b.json", variables={"cluster_name": "demo"})

    with pytest.raises(InputError, match="matches no single Terraform root"):
        check([root / "infra"], [root / "gitops"], reference, plan_json=stranger)
    with pytest.raises(InputError, match="a second plan for root platform"):
        check([root / "infra"], [root / "gitops"], reference, plan_json=[first, second])


def test_helm_values_and_policies_of_a_planned_root_are_read_as_documents(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree()
    addons = plan(
        tmp_path / "plan.json",
        variables={"gitops_repo_url": "https://example.com/x.git"},
        resources=[
            {
                "address": "helm_release.karpenter",
                "values": {"chart": "karpenter", "name": "karpenter", "values": ["settings:\n  clustername: demo\n"]},
            },
        ],
    )

    report = check([root / "infra"], [root / "gitops"], reference, select=("EKS018",), plan_json=addons)

    assert any("clustername" in f.message for f in report.findings)
