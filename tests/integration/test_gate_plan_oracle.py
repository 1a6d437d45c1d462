"""Oracle test of `harness check --plan-json`: for the same root and the same variables, the findings from the
.tf files alone and from the real plan JSON (infra/platform planned against a moto server) must agree.

Run with the variables' defaults and with non-default ones (another cluster name, VPC range, tags): a value the
gate took from a default while the plan says otherwise shows up as a difference. Skips with one line when
Terraform or its AWS provider is missing (as the rest of the emulator tier).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.gate.api import Report, build_model, check
from harness.plugin import stack_skip_reason
from harness.project import reference_dir, repo_root

pytestmark = pytest.mark.integration

DEFAULTS: dict[str, Any] = {}
OTHERS: dict[str, Any] = {
    "cluster_name": "eks-oracle",
    "vpc_cidr": "10.20.0.0/16",
    "ops_instance_types": ["m6i.large"],
    "run_id": "oracle1",
    "expires_at": "2030-01-01T00:00:00Z",
    "tags": {"team": "gate"},
}


def _hcl(value: Any) -> str:
    return json.dumps(value)  # JSON literals are HCL literals (strings, lists, maps with quoted keys)


@pytest.fixture(scope="module")
def emulator_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if reason := stack_skip_reason("emulator"):
        pytest.skip(reason)
    from harness.targets.stack import Stack

    stack = Stack.create("emulator")
    stack.emulator(start=True)
    try:
        yield stack
    finally:
        stack.down()


def _checkout(base: Path) -> Path:
    """The part of the checkout the gate and Terraform read, copied so variables can be written beside it."""
    for part in ("infra", "gitops"):
        shutil.copytree(
            repo_root() / part,
            base / part,
            ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
        )
    shutil.copy(repo_root() / "versions.yaml", base / "versions.yaml")
    return base


def _findings(report: Report) -> list[tuple[str, str, int, str]]:
    return sorted((f.rule_id, f.file, f.line, f.message) for f in report.findings)


@pytest.mark.parametrize("variables", [DEFAULTS, OTHERS], ids=["default-variables", "non-default-variables"])
def test_findings_from_the_tf_files_and_from_the_real_plan_agree(
    variables: dict[str, Any], emulator_stack: Any, tmp_path: Path
) -> None:
    from harness.targets.stack import Stack

    given = {
        "target": "emulator",
        "region": emulator_stack.region,
        "api_public_cidrs": ["198.51.100.0/24"],
        **variables,
    }
    # The .tf side reads the variables from a tfvars file; the plan gets them on the command line (a var file
    # outside the tree), so the gate sees them only through the plan.
    with_tfvars = _checkout(tmp_path / "tf")
    (with_tfvars / "infra" / "platform" / "oracle.auto.tfvars").write_text(
        "".join(f"{name} = {_hcl(value)}\n" for name, value in given.items()), encoding="utf-8"
    )
    planned = _checkout(tmp_path / "planned")
    stack = Stack(emulator_stack.run, root=planned / "infra" / "platform")
    stack.terraform.init()
    plan = stack.terraform.plan(given)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan.document), encoding="utf-8")
    assert {k: v["value"] for k, v in plan.document["variables"].items() if k in given} == given

    from_tf = check([with_tfvars / "infra"], [with_tfvars / "gitops"], reference_dir())
    from_plan = check([planned / "infra"], [planned / "gitops"], reference_dir(), plan_json=plan_file)

    assert _findings(from_plan) == _findings(from_tf)
    assert from_tf.errors == 0, _findings(from_tf)
    model = build_model([planned / "infra"], [planned / "gitops"], reference_dir(), plan_json=plan_file)
    (secret,) = model.rendered.cluster_secrets  # the add-ons root reads the platform's outputs from the plan
    assert secret.annotations["eks-platform/cluster-name"] == given.get("cluster_name", "eks-platform")
    (cluster,) = model.terraform.of_type("aws_eks_cluster")
    assert cluster.get("name") == given.get("cluster_name", "eks-platform")
