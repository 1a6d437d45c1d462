"""Argo CD judges on Applications and ApplicationSets in each state they go through, all recorded from local-target
runs (tests/fixtures/kube/recorded): the failures from Applications and ApplicationSets given broken inputs, and
per-resource health both kept in Argo CD's app tree and persisted in the Application (as infra/addons asks)."""

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


def recorded(state: str, name: str) -> dict[str, Any]:
    """One Application of recorded/<state>/: a local run's, beside the platform's own, given a broken input (each
    file's header says which). degraded_inline/ and progressing_inline/ come from a run whose controller persists
    per-resource health in the Application, as infra/addons asks; the older runs' (synced/, deadline/) did not."""
    return named(items(f"recorded/{state}/applications.yaml"), name)


# recorded/degraded_inline/: gitops/apps/game-2048 as game-2048-stuck, its pods selecting no node, a 10 s deadline.
STUCK = "game-2048-stuck"


# recorded/comparison_error/: its inline kustomize patch names an EC2NodeClass gitops/ops/karpenter does not have.
UNRENDERABLE = "ops-karpenter-patch-matches-nothing"
# recorded/sync_retrying/ and sync_failed/: its EC2NodeClass, without amiSelectorTerms, refused by the API server.
REJECTED = "ops-karpenter-rejected"
REFUSAL = (
    'EC2NodeClass.karpenter.k8s.aws "apps-rejected" is invalid: [spec.amiSelectorTerms: Required value, <nil>: '
    "Invalid value: null: some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation]"
)


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
# The run's game and ops beside game-template-typo, whose template reads an annotation the cluster secret lacks.
TEMPLATE_ERROR_SETS = "recorded/applicationset_template_error/applicationsets.yaml"


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
    result = judge_application(recorded("progressing_inline", GAME))
    assert result.status is Status.PENDING
    assert result.why == (
        f"argocd/{GAME}: Synced/Progressing (Deployment game-2048/game-2048: Synced/Progressing "
        "Waiting for rollout to finish: 0 of 2 updated replicas are available...)"
    )
    # The one row not settled: the Service, Ingress and PodDisruptionBudget are Healthy, the Namespace has no health.
    assert [(r["kind"], r["health"]) for r in result.evidence["failing_resources"]] == [("Deployment", "Progressing")]
    assert result.evidence["resource_health_source"] == "inline"


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
    result = judge_application(recorded("degraded_inline", STUCK))
    assert result.status is Status.FAIL
    assert result.why == (
        f"argocd/{STUCK}: Degraded (Deployment game-2048/{STUCK}: Synced/Degraded "
        f'Deployment "{STUCK}" exceeded its progress deadline)'
    )
    assert result.evidence["failing_resources"] == [
        {
            "kind": "Deployment",
            "namespace": "game-2048",
            "name": STUCK,
            "sync": "Synced",
            "health": "Degraded",
            "message": f'Deployment "{STUCK}" exceeded its progress deadline',
        }
    ]
    assert result.evidence["health_message"] == f"Caused by apps/Deployment:game-2048/{STUCK}"


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
    result = judge_application(recorded("comparison_error", UNRENDERABLE))
    assert result.status is Status.FAIL
    assert result.why.startswith(f"argocd/{UNRENDERABLE}: ComparisonError: Failed to load target state")
    assert "no matches for Id EC2NodeClass.v1.karpenter.k8s.aws/default" in result.why  # kustomize's words
    assert result.evidence["sync"] == "Unknown"
    assert result.evidence["health"] == "Healthy"  # nothing rendered, so nothing unhealthy: the condition says it


def test_a_refused_sync_still_retrying_is_pending_with_the_operation_message() -> None:
    result = judge_application(recorded("sync_retrying", REJECTED))
    assert result.status is Status.PENDING
    assert result.why.startswith(
        f"argocd/{REJECTED}: OutOfSync/Missing, sync operation Running: one or more objects failed to apply, reason: "
    )
    assert "Retrying attempt #1" in result.why
    assert result.evidence["operation"]["retry_count"] == 1
    assert result.evidence["conditions"] == []  # no SyncError until the retries are spent


def test_a_failed_operation_fails_and_lists_the_resource_the_api_server_rejected() -> None:
    result = judge_application(recorded("sync_failed", REJECTED))
    assert result.status is Status.FAIL
    assert result.why.startswith(f"argocd/{REJECTED}: SyncError: Failed last sync attempt to [")
    assert "spec.amiSelectorTerms: Required value" in result.why and result.why.endswith("(retried 2 times).")
    # One row: the tree's (cluster-scoped, no namespace) with the sync result's refusal (stamped "argocd").
    assert result.evidence["failing_resources"] == [
        {
            "kind": "EC2NodeClass",
            "namespace": "",
            "name": "apps-rejected",
            "sync": "OutOfSync",
            "health": None,
            "message": REFUSAL,
        }
    ]
    assert (result.evidence["health"], result.evidence["operation"]["retry_count"]) == ("Missing", 2)


def test_a_failed_operation_fails_even_without_an_error_condition() -> None:
    failed = recorded("sync_failed", REJECTED)
    del failed["status"]["conditions"]
    result = judge_application(failed)
    assert result.status is Status.FAIL
    assert result.why.startswith(f"argocd/{REJECTED}: sync operation Failed: one or more objects failed to apply")


def test_warning_conditions_do_not_fail_an_application() -> None:
    warned = synced(BOOTSTRAP)
    warned["status"]["conditions"] = [
        {"type": "OrphanedResourceWarning", "message": "Application has 1 orphaned resources"}
    ]
    assert judge_application(warned).status is Status.PASS


def test_sync_result_rows_add_resources_missing_from_the_tree() -> None:
    failed = recorded("sync_failed", REJECTED)
    failed["status"]["resources"] = []
    rows = failing_resources(failed)
    assert [(r["kind"], r["namespace"], r["sync"], r["message"]) for r in rows] == [
        ("EC2NodeClass", "argocd", "SyncFailed", REFUSAL)
    ]


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

    # Recorded with inline health: the platform's three Synced and Healthy beside the stuck one.
    result = judge_applications(items("recorded/degraded_inline/applications.yaml"), expected=[BOOTSTRAP, GAME, OPS])
    assert result.status is Status.FAIL
    (problem,) = result.evidence["problems"]
    assert problem["application"] == f"argocd/{STUCK}"
    assert problem["failing_resources"][0]["health"] == "Degraded"  # inline health names the resource


def test_failures_outrank_pending_applications() -> None:
    result = judge_applications([synced(GAME), recorded("comparison_error", UNRENDERABLE)])
    assert result.status is Status.FAIL
    assert [p["application"] for p in result.evidence["problems"]] == [f"argocd/{UNRENDERABLE}", f"argocd/{GAME}"]
    # As recorded: the platform's three Synced and Healthy beside the one Argo CD cannot render.
    together = judge_applications(items("recorded/comparison_error/applications.yaml"), expected=[BOOTSTRAP, GAME, OPS])
    assert together.status is Status.FAIL and together.why.startswith(f"argocd/{UNRENDERABLE}: ComparisonError:")
    assert [p["application"] for p in together.evidence["problems"]] == [f"argocd/{UNRENDERABLE}"]


def test_an_application_progressing_on_one_resource_names_it_from_its_health_message() -> None:
    # recorded/ingress_no_subnets/: the game's Ingress re-created where the LB controller finds no subnets.
    result = judge_application(recorded("ingress_no_subnets", GAME))
    assert result.status is Status.PENDING
    assert result.why == f"argocd/{GAME}: Synced/Progressing (Caused by networking.k8s.io/Ingress:game-2048/game-2048)"
    assert result.evidence["failing_resources"] == []  # appTree: no health in the rows, Argo CD's message says it


def test_applicationsets_generated_or_failing_with_the_template_error() -> None:
    sets = items(SYNCED_SETS)
    for name in ("ops", "game"):
        verdict = judge_application_set(named(sets, name))
        assert (verdict.status, verdict.why) == (
            Status.PASS,
            f"argocd/{name}: All applications have been generated successfully",
        )
    typo = judge_application_set(named(items(TEMPLATE_ERROR_SETS), "game-template-typo"))
    assert typo.status is Status.FAIL
    assert typo.why == (
        "argocd/game-template-typo: RenderTemplateParamsError: failed to execute go template "
        '{{ .metadata.annotations.gitopsRevision }}: template: base:1:12: executing "base" at '
        '<.metadata.annotations.gitopsRevision>: map has no entry for key "gitopsRevision"'
    )


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
    failing = judge_application_sets(items(TEMPLATE_ERROR_SETS), expected=["game", "ops"])
    assert failing.status is Status.FAIL  # game and ops generated; game-template-typo could not render
    assert failing.why.startswith("argocd/game-template-typo: RenderTemplateParamsError:")
    assert failing.evidence["verdicts"] == {
        f"applicationset argocd/{name} generated its applications": status
        for name, status in (("game", "pass"), ("game-template-typo", "fail"), ("ops", "pass"))
    }
    early = judge_application_sets(items(SYNCING_SETS), expected=["ops", "game"])
    assert (early.status, early.why) == (Status.PENDING, "argocd/game: not reconciled yet")
    missing = judge_application_sets([named(sets, "ops")], expected=["ops", "game"])
    assert missing.status is Status.PENDING and "game" in missing.why
    assert judge_application_sets([]).status is Status.PENDING
