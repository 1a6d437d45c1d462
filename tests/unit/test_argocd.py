"""Argo CD judges on Applications and ApplicationSets in each state they go through: recorded from a local-target
run (tests/fixtures/kube/recorded) where a run reaches the state, hand-written (and labelled so) where it cannot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kube_fixtures import FakeKubeClient, items, load, named

from harness.kube.api import APPLICATION
from harness.kube.argocd import (
    APP_TREE_NOTE,
    DEGRADED_GRACE_S,
    failing_resources,
    judge_application,
    judge_application_set,
    judge_application_sets,
    judge_applications,
)
from harness.kube.core import parse_time
from harness.results import Status

# The Applications a run of this tree shows (harness.e2e.orchestration.expected_applications).
BOOTSTRAP, GAME, OPS = "bootstrap", "game-2048-in-cluster", "ops-karpenter-in-cluster"
REVISION = "b8b27c9be1b041a06ff43622d588374be3395710"  # the commit the run's Git endpoint served


def app(state: str) -> dict[str, Any]:
    """A hand-written Application in a state a local run does not reach (see each file's label)."""
    written: dict[str, Any] = load(f"applications/{state}.yaml")
    return written


def synced(name: str) -> dict[str, Any]:
    """Recorded once Argo CD had synced gitops/: bootstrap Healthy, the game and ops-karpenter Progressing."""
    return named(items(SYNCED_APPS), name)


def syncing(name: str) -> dict[str, Any]:
    """Recorded while the first sync of bootstrap was still running."""
    return named(items(SYNCING_APPS), name)


def deadline(name: str) -> dict[str, Any]:
    """Recorded 10 minutes after synced(): the game's Deployment exceeded its progress deadline."""
    return named(items(DEADLINE_APPS), name)


SYNCED_APPS, SYNCING_APPS = "recorded/synced/applications.yaml", "recorded/syncing/applications.yaml"
DEADLINE_APPS = "recorded/deadline/applications.yaml"
SYNCED_SETS, SYNCING_SETS = "recorded/synced/applicationsets.yaml", "recorded/syncing/applicationsets.yaml"


def test_synced_and_healthy_passes() -> None:
    result = judge_application(synced(BOOTSTRAP))
    assert result.status is Status.PASS
    assert result.why == f"argocd/bootstrap: Synced and Healthy at {REVISION}"
    assert result.evidence["failing_resources"] == []
    assert result.evidence["operation"]["phase"] == "Succeeded"


def test_progressing_without_inline_health_is_pending_and_says_where_health_is_kept() -> None:
    # The game's pods stay Pending (no Karpenter nodes yet), so its Deployment is still rolling out.
    for name in (GAME, OPS):
        result = judge_application(synced(name))
        assert result.status is Status.PENDING
        assert result.why == f"argocd/{name}: Synced/Progressing ({APP_TREE_NOTE})"
        assert result.evidence["failing_resources"] == []  # every row Synced, no health kept in the CR
        assert result.evidence["resource_health_source"] == "appTree"


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
    result = judge_application(syncing(BOOTSTRAP))
    assert result.status is Status.PENDING
    assert result.why == (
        "argocd/bootstrap: OutOfSync/Healthy, sync operation Running: "
        "waiting for healthy state of argoproj.io/ApplicationSet/ops"
    )
    assert result.evidence["operation"]["phase"] == "Running"
    assert [(r["kind"], r["name"], r["sync"]) for r in result.evidence["failing_resources"]] == [
        ("ApplicationSet", "game", "OutOfSync")
    ]


def test_out_of_sync_without_an_operation_is_pending_until_automated_sync_starts() -> None:
    idle = syncing(BOOTSTRAP)
    del idle["status"]["operationState"]
    result = judge_application(idle)
    assert result.status is Status.PENDING
    assert result.evidence["operation"] is None
    assert result.why == "argocd/bootstrap: OutOfSync/Healthy (ApplicationSet argocd/game: OutOfSync/None)"


def test_a_just_generated_application_without_status_is_pending() -> None:
    result = judge_application(syncing(OPS))
    assert result.status is Status.PENDING
    assert result.why == f"argocd/{OPS}: Unknown/Unknown (no resource reports a problem)"


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


def test_a_freshly_degraded_application_is_pending_until_it_outlasts_the_grace() -> None:
    # Recorded: the game's Deployment passed its progress deadline; judged as a wait would, with the wall clock.
    app = deadline(GAME)
    since = parse_time(app["status"]["health"]["lastTransitionTime"])
    assert since is not None
    fresh = judge_application(app, since + timedelta(seconds=10))
    assert fresh.status is Status.PENDING and "Degraded for 10 s, may still converge" in fresh.why
    assert judge_application(app, since + timedelta(seconds=DEGRADED_GRACE_S)).status is Status.FAIL
    together = judge_applications(items(DEADLINE_APPS), now=since + timedelta(seconds=10))
    assert together.status is Status.PENDING


def test_degraded_without_inline_resource_health_says_where_health_is_kept() -> None:
    # Recorded 10 minutes on: the game's pods never scheduled and its Deployment passed its progress deadline.
    result = judge_application(deadline(GAME))
    assert result.status is Status.FAIL
    assert result.why == f"argocd/{GAME}: Degraded ({APP_TREE_NOTE})"
    assert "controller.resource.health.persist" in result.why
    assert result.evidence["resource_health_source"] == "appTree"
    assert result.evidence["sync"] == "Synced"


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
    warned = synced(BOOTSTRAP)
    warned["status"]["conditions"] = [
        {"type": "OrphanedResourceWarning", "message": "Application has 1 orphaned resources"}
    ]
    assert judge_application(warned).status is Status.PASS


def test_sync_result_rows_add_resources_missing_from_the_tree() -> None:
    failed = app("sync_failed")
    failed["status"]["resources"] = []
    rows = failing_resources(failed)
    assert [(r["kind"], r["sync"]) for r in rows] == [("EC2NodeClass", "SyncFailed")]


def test_the_recorded_run_is_pending_on_the_two_applications_still_progressing() -> None:
    reader = FakeKubeClient(load(SYNCED_APPS))
    result = judge_applications(reader.list_custom(APPLICATION, "argocd"), expected=[BOOTSTRAP, GAME, OPS])
    assert result.status is Status.PENDING
    assert result.evidence["applications"] == {
        "argocd/bootstrap": "Synced/Healthy",
        f"argocd/{GAME}": "Synced/Progressing",
        f"argocd/{OPS}": "Synced/Progressing",
    }
    assert [p["application"] for p in result.evidence["problems"]] == [f"argocd/{GAME}", f"argocd/{OPS}"]


def test_all_applications_pass_only_when_every_one_passes_and_all_exist() -> None:
    recorded = load(SYNCED_APPS)
    for application in recorded["items"]:  # as they turn once Karpenter runs and the game's pods are Ready
        application["status"]["health"]["status"] = "Healthy"
    reader = FakeKubeClient(recorded)
    result = judge_applications(reader.list_custom(APPLICATION, "argocd"), expected=[BOOTSTRAP, GAME, OPS])
    assert result.status is Status.PASS, result.why
    assert result.why == "3 Application(s) Synced and Healthy"
    assert result.evidence["applications"] == {
        "argocd/bootstrap": "Synced/Healthy",
        f"argocd/{GAME}": "Synced/Healthy",
        f"argocd/{OPS}": "Synced/Healthy",
    }


def test_a_missing_application_keeps_the_whole_pending() -> None:
    result = judge_applications(items(SYNCING_APPS), expected=[BOOTSTRAP, GAME, OPS])
    assert (result.status, result.why) == (Status.PENDING, f"not generated yet: {GAME}")
    assert judge_applications([]).status is Status.PENDING


def test_one_failing_application_fails_the_whole_with_its_summary() -> None:
    result = judge_applications(items(DEADLINE_APPS), expected=[BOOTSTRAP, GAME, OPS])
    assert result.status is Status.FAIL
    assert result.why == f"argocd/{GAME}: Degraded ({APP_TREE_NOTE})"
    failed, waiting = result.evidence["problems"]  # the failure first, then the one still converging
    assert (failed["application"], failed["health"]) == (f"argocd/{GAME}", "Degraded")
    assert (waiting["application"], waiting["health"]) == (f"argocd/{OPS}", "Progressing")

    result = judge_applications([synced(BOOTSTRAP), app("degraded")], expected=[BOOTSTRAP])
    assert result.status is Status.FAIL
    (problem,) = result.evidence["problems"]
    assert problem["application"] == "argocd/game-2048"
    assert problem["failing_resources"][0]["health"] == "Degraded"  # inline health names the resource


def test_failures_outrank_pending_applications() -> None:
    result = judge_applications([synced(GAME), app("comparison_error")])
    assert result.status is Status.FAIL
    assert [p["application"] for p in result.evidence["problems"]] == ["argocd/ops-karpenter", f"argocd/{GAME}"]


def test_applicationsets_generated_or_failing_with_the_template_error() -> None:
    sets = items(SYNCED_SETS)
    for name in ("ops", "game"):
        verdict = judge_application_set(named(sets, name))
        assert (verdict.status, verdict.why) == (
            Status.PASS,
            f"argocd/{name}: All applications have been generated successfully",
        )
    game = judge_application_set(named(items("applicationset_template_error.yaml"), "game"))
    assert game.status is Status.FAIL
    assert game.why.startswith("argocd/game: ApplicationGenerationFromParamsError: failed to execute go template")


def test_an_applicationset_without_status_is_pending() -> None:
    fresh = named(items(SYNCING_SETS), "game")  # created by bootstrap's sync, not reconciled yet
    assert fresh["status"] == {}  # as the API serves it before the controller writes conditions
    assert (judge_application_set(fresh).status, judge_application_set(fresh).why) == (
        Status.PENDING,
        "argocd/game: not reconciled yet",
    )


def test_the_applicationsets_pass_together_only_when_each_expected_one_generated_its_applications() -> None:
    sets = items(SYNCED_SETS)
    together = judge_application_sets(sets, expected=["game", "ops"])
    assert together.status is Status.PASS, together.why
    failing = [named(sets, "ops"), *items("applicationset_template_error.yaml")]
    assert judge_application_sets(failing, expected=["ops", "game"]).status is Status.FAIL  # game's template error
    early = judge_application_sets(items(SYNCING_SETS), expected=["ops", "game"])
    assert (early.status, early.why) == (Status.PENDING, "argocd/game: not reconciled yet")
    missing = judge_application_sets([named(sets, "ops")], expected=["ops", "game"])
    assert missing.status is Status.PENDING and "game" in missing.why
    assert judge_application_sets([]).status is Status.PENDING
