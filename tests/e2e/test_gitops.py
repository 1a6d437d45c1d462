"""Argo CD syncs gitops/: the root Application creates the ApplicationSets, they generate an Application per
cluster secret, and Argo CD's own status says each is Synced and Healthy. The add-on controllers run on the ops
nodes, the game off them."""

from __future__ import annotations

import pytest

from harness.e2e.orchestration import E2E
from harness.results import Status

pytestmark = pytest.mark.e2e_any_target


def test_the_applicationsets_generate_their_applications(harness_addons: E2E) -> None:
    result = harness_addons.application_sets()
    assert result.status is Status.PASS, f"{result.why}: {result.evidence}"


def test_argo_cd_reports_every_application_synced_and_healthy(harness_addons: E2E) -> None:
    result = harness_addons.applications_synced()
    assert result.status is Status.PASS, f"{result.why}: {result.evidence}"


def test_the_add_on_controllers_run_on_the_ops_nodes(harness_addons: E2E) -> None:
    result = harness_addons.controllers_on_ops()
    assert result.status is Status.PASS, f"{result.why}: {result.evidence}"


def test_the_game_runs_off_the_ops_nodes(harness_synced: E2E) -> None:
    result = harness_synced.game_off_ops()
    assert result.status is Status.PASS, f"{result.why}: {result.evidence}"


def test_the_game_pods_are_ready_by_their_readiness_probe(harness_synced: E2E) -> None:
    result = harness_synced.readiness_probes()
    if result.status is Status.NOT_APPLICABLE:
        pytest.skip(result.why)
    assert result.status is Status.PASS, f"{result.why}: {result.evidence}"
