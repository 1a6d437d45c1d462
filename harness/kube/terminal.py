"""When waiting is hopeless: the Warning events after which what a wait awaits cannot happen without a change by a
person, in the words of the controller that emits them, and which waits each one ends (``harness.waits.wait_for``'s
``terminal``).

Each rule is data: who reports it (the event's reporting component), its reason, the kind of object it is about
and, where the reason alone also covers passing trouble, the part of the message that makes it final. The texts are
Karpenter 1.14's (sigs.k8s.io/karpenter pkg/controllers/provisioning/scheduling: ``NoCompatibleInstanceTypes`` on
the NodePool, "NodePool requirements filtered out all compatible available instance types"; ``FailedScheduling``
on each pod it cannot place, "Failed to schedule pod, nodepool requirements filtered out all available instance
types") and the AWS Load Balancer Controller's (``FailedBuildModel`` on the Ingress: the Ingress, its annotations or
the subnets' tags cannot make an ALB; its ``FailedDeployModel`` is an AWS call that failed and is retried, so it is
not final). The kube-scheduler's own ``FailedScheduling`` ("0/3 nodes are available...") is how every scale-out
starts, so only Karpenter's counts.

An Application Degraded past its grace is final too; argocd.judge_application says so itself (DEGRADED_GRACE_S).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from harness.kube.api import KubeObject
from harness.kube.core import parse_time

T = TypeVar("T")


@dataclass(frozen=True)
class TerminalEvent:
    """A Warning event that ends a wait: from ``component``, with ``reason``, about a ``kind``, saying ``message``."""

    component: str
    reason: str
    kind: str
    message: str = ""  # a part of the event's message that makes it final; "" = the reason alone does


NODEPOOL_FITS_NO_INSTANCE_TYPE = TerminalEvent("karpenter", "NoCompatibleInstanceTypes", "NodePool")
POD_FITS_NO_NODEPOOL = TerminalEvent(
    "karpenter", "FailedScheduling", "Pod", "nodepool requirements filtered out all available instance types"
)
INGRESS_MODEL_UNBUILDABLE = TerminalEvent("ingress", "FailedBuildModel", "Ingress")

KARPENTER_CANNOT_LAUNCH = (NODEPOOL_FITS_NO_INSTANCE_TYPE, POD_FITS_NO_NODEPOOL)

# Which waits each rule ends: every wait for the game's pods to run needs Karpenter to launch nodes for them.
APPLICATIONS_WAIT, GAME_PLACEMENT_WAIT, SCALE_OUT_WAIT, INTERRUPTION_WAIT, INGRESS_WAIT = (
    "applications synced",
    "game pods placed",
    "scale-out",
    "spot interruption",
    "ingress address",
)
ENDS: Mapping[str, tuple[TerminalEvent, ...]] = {
    APPLICATIONS_WAIT: KARPENTER_CANNOT_LAUNCH,
    GAME_PLACEMENT_WAIT: KARPENTER_CANNOT_LAUNCH,
    SCALE_OUT_WAIT: KARPENTER_CANNOT_LAUNCH,
    INTERRUPTION_WAIT: KARPENTER_CANNOT_LAUNCH,
    INGRESS_WAIT: (INGRESS_MODEL_UNBUILDABLE,),
}


def _component(event: KubeObject) -> str:
    return str(event.get("reportingComponent") or (event.get("source") or {}).get("component") or "")


def last_seen(event: KubeObject) -> datetime | None:
    """When an event was last seen (a core/v1 Event's lastTimestamp, else its eventTime, else firstTimestamp)."""
    return parse_time(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"))


def terminal_reason(
    events: Sequence[KubeObject], rules: Sequence[TerminalEvent], since: datetime | None = None
) -> str | None:
    """The latest event matching one of ``rules`` (seen at or after ``since``, so an old one from an earlier phase
    does not count), as ``<component>: <Kind>/<name> <reason>: <message>``; None when there is none."""
    found: list[tuple[str, str]] = []
    for event in events:
        involved = event.get("involvedObject") or {}
        message = str(event.get("message", ""))
        seen = last_seen(event)
        if event.get("type") != "Warning" or (since is not None and (seen is None or seen < since)):
            continue
        for rule in rules:
            if (_component(event), event.get("reason"), involved.get("kind")) == (
                rule.component,
                rule.reason,
                rule.kind,
            ) and (rule.message.lower() in message.lower()):
                found.append(
                    (str(seen or ""), f"{rule.component}: {rule.kind}/{involved.get('name')} {rule.reason}: {message}")
                )
    return max(found)[1] if found else None


def ends(
    wait: str, events_of: Callable[[T], Sequence[KubeObject]], since: datetime | None
) -> Callable[[T], str | None]:
    """``wait_for``'s ``terminal`` for the wait named ``wait``: its rules over the events in what it observes."""
    rules = ENDS[wait]
    return lambda observed: terminal_reason(events_of(observed), rules, since)
