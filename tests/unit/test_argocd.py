"""Argo CD judges on recorded Applications and ApplicationSets in each state they go through."""

from __future__ import annotations

from typing import Any

from kube_fixtures import FakeKubeClient, items, load, named

from harness.kube.api import APPLICATION
from harness.kube.argocd import (
    failing_resources,
    judge_application,
    judge_application_set,
    judge_application_sets,
    judge_applications,
)
from harness.results import Status


def app(state: str) -> dict[str, Any]:
    recorded: dict[str, Any] = load(f"applications/{state}.yaml")
    return recorded


def test_synced_and_healthy_passes() -> None:
    result = judge_application(app("synced_healthy"))
    assert result.status is Status.PASS
    assert result.why == "argocd/ops-karpenter: Synced and Healthy at 9c1e4b7a2d3f5e6a8b0c1d2e3f4a5b6c7d8e9f01"
    assert result.evidence["failing_resources"] == []


def test_progressing_is_pending_and_names_the_resource_still_converging() -> None:
    result = judge_application(app("progressing"))
    assert result.status is Status.PENDING
    assert result.why == (
        "argocd/game-2048: Synced/Progressing (Deployment game-2048/game-2048: Synced/Progressing "
        "Waiting for rollout to finish: 0 of 2 updated replicas are available...)"
    )
    assert [(r["kind"], r["health"]) for r in result.evidence["failing_resources"]] == [
        ("Deployment", "Progressing"),
        ("Ingress", "Progressing"),
    ]


def test_out_of_sync_with_a_running_operation_is_pending_with_the_operation_message() -> None:
    result = judge_application(app("out_of_sync_running"))
    assert result.status is Status.PENDING
    assert result.why == (
        "argocd/game-2048: OutOfSync/Missing, sync operation Running: waiting for healthy state of /Namespace/game-2048"
    )
    assert result.evidence["operation"]["phase"] == "Running"


def test_out_of_sync_without_an_operation_is_pending_until_automated_sync_starts() -> None:
    idle = app("out_of_sync_running")
    del idle["status"]["operationState"]
    result = judge_application(idle)
    assert result.status is Status.PENDING
    assert result.evidence["operation"] is None
    assert "Namespace game-2048: OutOfSync/None" in result.why


def test_degraded_fails_with_each_failing_resource_and_its_message() -> None:
    result = judge_application(app("degraded"))
    assert result.status is Status.FAIL
    assert result.why == (
        "argocd/game-2048: Degraded (Deployment game-2048/game-2048: Synced/Degraded "
        'Deployment "game-2048" exceeded its progress deadline)'
    )
    assert result.evidence["failing_resources"] == [
        {
            "kind": "Deployment",
            "namespace": "game-2048",
            "name": "game-2048",
            "sync": "Synced",
            "health": "Degraded",
            "message": 'Deployment "game-2048" exceeded its progress deadline',
        }
    ]


def test_degraded_without_inline_resource_health_says_where_health_is_kept() -> None:
    degraded = app("degraded")
    degraded["status"]["resourceHealthSource"] = "appTree"
    for resource in degraded["status"]["resources"]:
        del resource["health"]
    result = judge_application(degraded)
    assert result.status is Status.FAIL
    assert "controller.resource.health.persist" in result.why
    assert result.evidence["resource_health_source"] == "appTree"


def test_comparison_error_fails_with_the_condition_message() -> None:
    result = judge_application(app("comparison_error"))
    assert result.status is Status.FAIL
    assert result.why.startswith("argocd/ops-karpenter: ComparisonError: Failed to load target state")
    assert "no matches for Id EC2NodeClass.v1.karpenter.k8s.aws/default" in result.why
    assert result.evidence["sync"] == "Unknown"


def test_a_failed_operation_fails_and_lists_the_resource_the_api_server_rejected() -> None:
    result = judge_application(app("sync_failed"))
    assert result.status is Status.FAIL
    assert "SyncError" in result.why and "spec.amiSelectorTerms: Required value" in result.why
    rows = {(r["kind"], r["name"]): r for r in result.evidence["failing_resources"]}
    assert rows[("EC2NodeClass", "apps")]["message"] == (
        'EC2NodeClass.karpenter.k8s.aws "apps" is invalid: spec.amiSelectorTerms: Required value'
    )
    assert rows[("NodePool", "apps")]["sync"] == "OutOfSync"
    assert result.evidence["operation"]["retry_count"] == 10


def test_a_failed_operation_fails_even_without_an_error_condition() -> None:
    failed = app("sync_failed")
    del failed["status"]["conditions"]
    result = judge_application(failed)
    assert result.status is Status.FAIL
    assert result.why.startswith("argocd/ops-karpenter: sync operation Failed: one or more objects failed to apply")


def test_warning_conditions_do_not_fail_an_application() -> None:
    warned = app("synced_healthy")
    warned["status"]["conditions"] = [
        {"type": "OrphanedResourceWarning", "message": "Application has 1 orphaned resources"}
    ]
    assert judge_application(warned).status is Status.PASS


def test_sync_result_rows_add_resources_missing_from_the_tree() -> None:
    failed = app("sync_failed")
    failed["status"]["resources"] = []
    rows = failing_resources(failed)
    assert [(r["kind"], r["sync"]) for r in rows] == [("EC2NodeClass", "SyncFailed")]


def test_all_applications_pass_only_when_every_one_passes_and_all_exist() -> None:
    healthy = app("synced_healthy")
    game = app("degraded")
    game["status"]["health"] = {"status": "Healthy"}
    game["status"]["resources"][2]["health"] = {"status": "Healthy"}
    reader = FakeKubeClient(healthy, game)
    result = judge_applications(reader.list_custom(APPLICATION, "argocd"), expected=["ops-karpenter", "game-2048"])
    assert result.status is Status.PASS
    assert result.evidence["applications"] == {
        "argocd/ops-karpenter": "Synced/Healthy",
        "argocd/game-2048": "Synced/Healthy",
    }


def test_a_missing_application_keeps_the_whole_pending() -> None:
    result = judge_applications([app("synced_healthy")], expected=["ops-karpenter", "game-2048"])
    assert (result.status, result.why) == (Status.PENDING, "not generated yet: game-2048")
    assert judge_applications([]).status is Status.PENDING


def test_one_failing_application_fails_the_whole_with_its_summary() -> None:
    result = judge_applications([app("synced_healthy"), app("degraded")], expected=["ops-karpenter"])
    assert result.status is Status.FAIL
    (problem,) = result.evidence["problems"]
    assert problem["application"] == "argocd/game-2048"
    assert problem["failing_resources"][0]["health"] == "Degraded"


def test_failures_outrank_pending_applications() -> None:
    result = judge_applications([app("progressing"), app("comparison_error")])
    assert result.status is Status.FAIL
    assert [p["application"] for p in result.evidence["problems"]] == ["argocd/ops-karpenter", "argocd/game-2048"]


def test_applicationsets_generated_or_failing_with_the_template_error() -> None:
    sets = items("applicationsets.yaml")
    ops = judge_application_set(named(sets, "ops"))
    assert (ops.status, ops.why) == (Status.PASS, "argocd/ops: All applications have been generated successfully")
    game = judge_application_set(named(sets, "game"))
    assert game.status is Status.FAIL
    assert game.why.startswith("argocd/game: ApplicationGenerationFromParamsError: failed to execute go template")


def test_an_applicationset_without_status_is_pending() -> None:
    fresh = named(items("applicationsets.yaml"), "ops")
    del fresh["status"]
    assert judge_application_set(fresh).status is Status.PENDING


def test_the_applicationsets_pass_together_only_when_each_expected_one_generated_its_applications() -> None:
    sets = items("applicationsets.yaml")
    ops = named(sets, "ops")
    together = judge_application_sets([ops], expected=["ops"])
    assert together.status is Status.PASS, together.why
    assert judge_application_sets(sets, expected=["ops", "game"]).status is Status.FAIL  # game's template error
    missing = judge_application_sets([ops], expected=["ops", "game"])
    assert missing.status is Status.PENDING and "game" in missing.why
    assert judge_application_sets([]).status is Status.PENDING
