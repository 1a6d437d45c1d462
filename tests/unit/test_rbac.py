"""The RBAC refusals judge over audit events as the local API server writes them (audit.k8s.io/v1, JSON lines)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from harness.kube.rbac import judge_refusals, refusals
from harness.results import Status

LB = "system:serviceaccount:kube-system:aws-load-balancer-controller"
CALLERS = {LB: "aws-load-balancer-controller"}


def event(code: int, user: str = LB, verb: str = "list", **ref: str) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": user, "groups": ["system:serviceaccounts"]},
        "objectRef": ref or {"resource": "ingresses", "apiGroup": "networking.k8s.io", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code},
    }


def test_a_refused_list_names_the_controller_verb_resource_and_scope() -> None:
    found = refusals([event(200), event(403), event(403)], CALLERS)  # the same call twice is one refusal
    verdict = judge_refusals(found, CALLERS)
    assert verdict.status is Status.FAIL
    assert verdict.why == (
        f"aws-load-balancer-controller ({LB}) was refused: list ingresses.networking.k8s.io at cluster scope"
    )


def test_namespaced_and_core_resources_and_subresources_are_named_as_kubectl_does() -> None:
    found = refusals(
        [event(403, verb="update", resource="pods", subresource="status", namespace="game-2048", apiVersion="v1")],
        CALLERS,
    )
    assert [r.line().split(": ", 1)[1] for r in found] == ["update pods/status in namespace game-2048"]


def test_allowed_calls_and_other_callers_refusals_pass() -> None:
    other = event(403, user="system:serviceaccount:kube-system:generic-garbage-collector")
    verdict = judge_refusals(refusals([event(200), other, {"kind": "Event"}], CALLERS), CALLERS)
    assert verdict.status is Status.PASS and verdict.evidence["callers"] == ["aws-load-balancer-controller"]


def test_refusals_while_a_replaced_api_server_starts_are_not_the_charts_but_those_after_are() -> None:
    """An upgrade's new API server refuses every call until it has read the RBAC; a refusal then is not counted,
    one once it is ready still is."""
    began, ready = (
        datetime(2026, 12, 7, 11, 20, tzinfo=timezone.utc),
        datetime(2026, 12, 7, 11, 20, 12, tzinfo=timezone.utc),
    )
    during = {**event(403), "requestReceivedTimestamp": "2026-12-07T11:20:05.123456Z"}
    after = {**event(403, verb="watch"), "requestReceivedTimestamp": "2026-12-07T11:20:30.000001Z"}
    assert refusals([during], CALLERS, [(began, ready)]) == []
    (found,) = refusals([during, after], CALLERS, [(began, ready)])
    assert found.verb == "watch"
