"""The experiment the project exists for: scale game-2048 until Karpenter must bring spot nodes, interrupt one,
scale back and watch consolidation remove them. Karpenter's own code runs against our NodePool and EC2NodeClass
(on `local`: the real AWS provider against the emulator; on `aws`: the real thing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.e2e.orchestration import E2E, GAME_DEPLOYMENT, GAME_NAMESPACE, scale_out_replicas
from harness.results import Status

pytestmark = pytest.mark.e2e_any_target


@dataclass(frozen=True)
class Experiment:
    e2e: E2E
    baseline: int
    replicas: int


@pytest.fixture(scope="module")
def experiment(harness_synced: E2E) -> Iterator[Experiment]:
    deployment = harness_synced.kube().get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT)
    assert deployment is not None, "Argo CD synced no game-2048 Deployment"
    baseline = int(deployment["spec"]["replicas"])
    yield Experiment(harness_synced, baseline, scale_out_replicas(deployment))
    # Whatever failed, the spot nodes must not outlive the module.
    harness_synced.kube().scale_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT, baseline)


def test_the_ec2nodeclass_discovers_the_platforms_subnets_security_group_and_ami(experiment: Experiment) -> None:
    ready = experiment.e2e.karpenter_pool()
    assert ready.status is Status.PASS, f"{ready.why}: {ready.evidence}"
    discovered = experiment.e2e.node_class_discovery()
    assert discovered.status is Status.PASS, f"{discovered.why}: {discovered.evidence}"


def test_pending_game_pods_become_spot_nodes_of_the_pool(experiment: Experiment) -> None:
    results = experiment.e2e.scale_out(experiment.replicas)
    for result in results:
        if result.status is Status.NOT_APPLICABLE:
            print(f"{result.name}: {result.why}")
            continue
        assert result.status is Status.PASS, f"{result.name}: {result.why}: {result.evidence}"
    assert experiment.e2e.timeline is not None and experiment.e2e.timeline.nodes


def test_a_spot_interruption_warning_drains_and_replaces_the_node(experiment: Experiment) -> None:
    replaced = experiment.e2e.spot_interruption(experiment.replicas)
    assert replaced.status is Status.PASS, f"{replaced.why}: {replaced.evidence}"


def test_scaling_back_consolidates_the_spot_nodes_away(experiment: Experiment) -> None:
    gone = experiment.e2e.scale_in(experiment.baseline)
    assert gone.status is Status.PASS, f"{gone.why}: {gone.evidence}"
