"""The game's Ingress, synced by Argo CD, becomes an internet-facing ALB that the LB controller builds in the
public subnets, with ip targets; where the target can serve traffic, the page answers through it. What the
controllers created carries the run's tags."""

from __future__ import annotations

import pytest

from harness.e2e.orchestration import E2E, GAME_DEPLOYMENT, GAME_NAMESPACE
from harness.kube import ingress
from harness.results import Status

pytestmark = pytest.mark.e2e_any_target


@pytest.fixture(scope="module")
def hostname(harness_addons: E2E) -> str:
    address = harness_addons.ingress_address()
    assert address.status is Status.PASS, address.why
    name = ingress.ingress_hostname(harness_addons.kube().get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT))
    assert name, "the Ingress status names no load balancer"
    return name


def test_the_ingress_gets_an_active_internet_facing_alb_targeting_the_game(harness_addons: E2E, hostname: str) -> None:
    balancer, targets, health = harness_addons.load_balancer(hostname)
    assert balancer.status is Status.PASS, balancer.why
    assert targets.status is Status.PASS, targets.why
    # Target health is judged only where ELB runs health checks (infra/targets.yaml says where it does not).
    assert health.status in (Status.PASS, Status.NOT_APPLICABLE), health.why


def test_the_game_page_answers_through_the_alb(harness_addons: E2E, hostname: str) -> None:
    page = harness_addons.game_page(hostname)
    if page.status is Status.NOT_APPLICABLE:
        pytest.skip(page.why)
    assert page.status is Status.PASS, page.why


def test_what_the_controllers_created_carries_the_run_tags(harness_synced: E2E, hostname: str) -> None:
    """The NodeClaims' instances and volumes, Karpenter's launch templates, the ALB, its target groups and security
    groups: found through the controllers' own records, tagged by the run (EC2NodeClass tags, LB defaultTags)."""
    placed = harness_synced.game_off_ops()  # the game's pods on Karpenter's nodes: the NodeClaims exist
    assert placed.status is Status.PASS, placed.why
    result = harness_synced.controllers_tagged(hostname)
    assert result.status is Status.PASS, result.why
