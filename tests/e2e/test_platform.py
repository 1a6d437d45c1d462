"""The AWS side and the cluster's nodes: the discovery tags Karpenter and the LB controller depend on, and the
ops node group's labels and taint on the Node objects the scheduler uses."""

from __future__ import annotations

import pytest

from harness.aws import checks
from harness.e2e.orchestration import E2E
from harness.kube.api import KubeClient
from harness.results import Result, Status

pytestmark = pytest.mark.e2e_any_target


def verified(e2e: E2E, name: str) -> Result:
    results = {r.name: r for r in e2e.stack.verify()}
    assert name in results, f"verify reported no {name!r}: {sorted(results)}"
    return results[name]


@pytest.mark.parametrize("check", [checks.PUBLIC_SUBNETS, checks.PRIVATE_SUBNETS, checks.DISCOVERY_GROUP])
def test_the_discovery_tags_are_on_the_subnets_and_the_security_group(harness_e2e: E2E, check: str) -> None:
    result = verified(harness_e2e, check)
    assert result.status is Status.PASS, result.why


def test_everything_the_platform_created_carries_the_run_tags(harness_e2e: E2E) -> None:
    result = verified(harness_e2e, checks.RUN_TAGS)
    assert result.status is Status.PASS, result.why


def test_the_ops_nodes_carry_the_node_group_labels_and_taint(harness_e2e: E2E, harness_cluster: KubeClient) -> None:
    result = harness_e2e.ops_nodes()
    assert result.status is Status.PASS, result.why


def test_the_ops_nodes_are_the_node_groups_instances(harness_e2e: E2E, harness_cluster: KubeClient) -> None:
    result = harness_e2e.ops_node_instances()
    if result.status is Status.NOT_APPLICABLE:
        pytest.skip(result.why)
    assert result.status is Status.PASS, result.why
