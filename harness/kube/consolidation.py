"""Consolidation after the scale back, judged as consolidation: Karpenter removed capacity.

Karpenter 1.14 (``pkg/controllers/disruption``) marks a pool node ``Consolidatable`` ``consolidateAfter`` after its
last pod change; emptiness then deletes an empty node, single-node consolidation deletes one whose pods fit on the
nodes left (no replacement, no feature gate), and replacing a spot node by a cheaper spot node needs the
``SpotToSpotConsolidation`` gate. Each decision is a ``DisruptionTerminating`` event on the NodeClaim ("Disrupting
NodeClaim: Empty" / "...: Underutilized"); a node Karpenter keeps gets ``Unconsolidatable`` with its reason. Each
method looks again only after a change of the cluster state or its 5-minute refresh (docs/harness.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from harness.kube.core import Before, bin_packing_minimum, parse_time
from harness.kube.karpenter import (
    NODECLAIM_STEPS,
    KubeObject,
    claim_progress,
    in_pool,
    live_objects,
    nodeclaim_state,
    object_name,
    placement,
    placement_verdict,
)
from harness.results import Result

CONSOLIDATION_EVENT = "DisruptionTerminating"  # Karpenter 1.14 (pkg/controllers/disruption/events), on NodeClaim
CONSOLIDATION_REASONS = ("Empty", "Underutilized")  # the disruption reasons of consolidation (not Drifted, Expired)
UNCONSOLIDATABLE_EVENT = "Unconsolidatable"  # why Karpenter leaves a Consolidatable node where it is
DISRUPTING_PREFIX = "Disrupting NodeClaim: "


def _event_time(event: KubeObject) -> datetime | None:
    return parse_time(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"))


def consolidations(events: Sequence[KubeObject]) -> dict[str, tuple[str, datetime | None]]:
    """NodeClaim -> (reason, time) of Karpenter's ``DisruptionTerminating`` "Disrupting NodeClaim: Empty" or
    "...: Underutilized" event: the NodeClaims consolidation decided to remove."""
    found: dict[str, tuple[str, datetime | None]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        message = str(event.get("message", ""))
        if event.get("reason") != CONSOLIDATION_EVENT or involved.get("kind") != "NodeClaim":
            continue
        reason = message.removeprefix(DISRUPTING_PREFIX)
        if message.startswith(DISRUPTING_PREFIX) and reason in CONSOLIDATION_REASONS:
            found[str(involved.get("name"))] = (reason, _event_time(event))
    return found


def unconsolidatable(events: Sequence[KubeObject], claims: Sequence[KubeObject]) -> dict[str, str]:
    """NodeClaim -> Karpenter's latest ``Unconsolidatable`` word on it (e.g. "SpotToSpotConsolidation is
    disabled, can't replace a spot node with a spot node"), for ``claims``."""
    names = {object_name(claim) for claim in claims}
    latest: dict[str, tuple[str, str]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        name = str(involved.get("name"))
        if event.get("reason") != UNCONSOLIDATABLE_EVENT or involved.get("kind") != "NodeClaim" or name not in names:
            continue
        when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
        if name not in latest or when >= latest[name][0]:
            latest[name] = (when, str(event.get("message", "")))
    return {name: message for name, (_, message) in sorted(latest.items())}


def judge_scale_in(
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    events: Sequence[KubeObject],
    *,
    nodepool: str,
    pods: Sequence[KubeObject],
    replicas: int,
    request: str,
    before: Before,
) -> Result:
    """Karpenter consolidated ``nodepool`` after the scale back to ``replicas``: the replicas are Ready on the
    pool's spot nodes, the NodeClaims and Nodes left are no more than the bin-packing minimum for ``request`` CPU a
    pod (none for 0 replicas), and at least one NodeClaim of ``before`` (the pool at the scale back) is gone by
    consolidation: Karpenter's ``DisruptionTerminating`` event says ``Empty`` or ``Underutilized`` for it.

    PENDING while the old replicas terminate, a NodeClaim is being removed, or the pool is above the minimum (the
    why quotes Karpenter's ``Unconsolidatable`` reason for each NodeClaim it keeps; the wait's timeout turns that
    into the failure). FAIL when a replica runs off the pool's spot nodes or Failed, when the pool held no more than
    the minimum at the scale back (nothing to consolidate: this shows nothing of Karpenter), or when NodeClaims of
    ``before`` are gone without a consolidation event (something else removed them).
    """
    name = f"karpenter consolidates {nodepool} to the bin-packing minimum"
    claims, pool_nodes = in_pool(nodeclaims, nodepool), in_pool(nodes, nodepool)
    present = {object_name(claim) for claim in claims}
    had = sorted(claim for claim in before.nodeclaims if claim not in present or claim in _deleting(claims))
    at_scale_back = sorted(before.nodeclaims)
    decided = consolidations(events)
    consolidated = {claim: decided[claim][0] for claim in had if claim in decided}
    kept = live_objects(claims)
    declined = unconsolidatable(events, kept)
    evidence: dict[str, Any] = {
        "nodeclaims": [{**nodeclaim_state(c), "conditions": _other_conditions(c)} for c in claims],
        "nodeclaims_at_scale_back": at_scale_back,
        "consolidated": {claim: {"reason": decided[claim][0], "at": decided[claim][1]} for claim in consolidated},
        "unconsolidatable": declined,
    }
    live = len(live_objects(pods))
    if live != replicas:
        return Result.pending(name, f"{live} pod(s) left of the {replicas} scaled to", **evidence)
    seen = placement(pods, nodeclaims, nodes, nodepool=nodepool)
    unsettled = placement_verdict(name, seen, replicas, nodepool, claim_progress(kept))
    if unsettled is not None:
        return replace(unsettled, evidence={**unsettled.evidence, **evidence})
    minimum = bin_packing_minimum(replicas, request, claims, nodepool) if replicas else 0
    evidence["bin_packing_minimum"] = minimum
    if minimum is None:
        return Result.pending(name, f"no NodeClaim of {nodepool} reports its allocatable CPU yet", **evidence)
    removing = sorted(_deleting(claims) | _deleting(pool_nodes))
    live_nodes = live_objects(pool_nodes)
    if removing or len(kept) > minimum or len(live_nodes) > minimum:
        why = "; ".join(f"{claim}: {message}" for claim, message in declined.items())
        return Result.pending(
            name,
            f"{len(kept)} NodeClaim(s) and {len(live_nodes)} Node(s) of {nodepool} for {replicas} pod(s) of {request} "
            f"CPU, the bin-packing minimum is {minimum}"
            + (f"; removing {', '.join(removing)}" if removing else "")
            + (f"; Karpenter: Unconsolidatable ({why})" if why else ""),
            **evidence,
        )
    if len(before.nodeclaims) <= minimum:
        return Result.failed(
            name,
            f"{nodepool} had {len(before.nodeclaims)} NodeClaim(s) at the scale back, no more than the "
            f"bin-packing minimum of {minimum}: nothing to consolidate, so this shows nothing of Karpenter",
            **evidence,
        )
    if not consolidated:
        return Result.failed(
            name,
            f"{', '.join(had)} gone without Karpenter's {CONSOLIDATION_EVENT} event for consolidation "
            f"({' or '.join(CONSOLIDATION_REASONS)}): something else removed them",
            **evidence,
        )
    return Result.passed(
        name,
        f"Karpenter consolidated {', '.join(f'{claim} ({reason})' for claim, reason in consolidated.items())}; "
        f"{len(kept)} NodeClaim(s) of {nodepool} left for {replicas} pod(s), the bin-packing minimum",
        **evidence,
    )


def _deleting(objects: Sequence[KubeObject]) -> set[str]:
    return {object_name(obj) for obj in objects if (obj.get("metadata") or {}).get("deletionTimestamp")}


def _other_conditions(claim: KubeObject) -> dict[str, str]:
    """Disruption-related conditions (Consolidatable, Drifted, Empty...): everything but the launch steps."""
    return {
        str(c.get("type")): str(c.get("status"))
        for c in (claim.get("status") or {}).get("conditions") or []
        if c.get("type") not in NODECLAIM_STEPS
    }
