"""The spot experiment beyond scale-out and scale-in: a spot interruption warning for one pool node and its
judgement (Karpenter's event, drained, pods Ready again, terminated), and the numbers of a scale-out (from the
scale: first and last new node Ready, all new pods Ready, Pending -> Running per new pod, nodes against the
bin-packing minimum) that the report and the bench show."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from harness.kube.api import KubeObject
from harness.kube.core import Before, bin_packing_minimum, cpu_cores
from harness.kube.karpenter import (
    ScaleOutTimeline,
    in_pool,
    object_name,
    placement,
    placement_verdict,
)
from harness.results import Result

# ---------------------------------------------------------------- spot interruption

INTERRUPTION_CHECK = "karpenter drains and replaces an interrupted spot node"
GONE_STATES = ("shutting-down", "terminated")


@dataclass(frozen=True)
class InterruptionVictim:
    """The pool node a spot interruption warning is sent for, with its NodeClaim and EC2 instance."""

    nodeclaim: str
    node: str
    instance_id: str


def instance_id(nodeclaim: Mapping[str, Any]) -> str | None:
    """The EC2 instance of a NodeClaim (status.providerID aws:///zone/id), or None before it has one."""
    provider_id = str((nodeclaim.get("status") or {}).get("providerID") or "")
    return provider_id.rsplit("/", 1)[1] if provider_id.startswith("aws:///") else None


def interruption_victim(nodeclaims: Sequence[KubeObject], nodepool: str) -> InterruptionVictim | None:
    """The first (by name) NodeClaim of `nodepool` with a node and an instance (providerID aws:///zone/id)."""
    for claim in sorted(in_pool(nodeclaims, nodepool), key=object_name):
        status = claim.get("status") or {}
        ident, node = instance_id(claim), str(status.get("nodeName") or "")
        if ident and node:
            return InterruptionVictim(object_name(claim), node, ident)
    return None


def spot_interruption_warning(victim: InterruptionVictim, region: str, account: str) -> dict[str, Any]:
    """EC2's Spot Instance Interruption Warning, as the platform's EventBridge rule puts it on the queue."""
    return {
        "version": "0",
        "id": f"eks-platform-interruption-{victim.instance_id}",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": account,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{victim.instance_id}"],
        "detail": {"instance-id": victim.instance_id, "instance-action": "terminate"},
    }


# ---------------------------------------------------------------- the pool's instances

SPOT_PRICES_CHECK = "the pool's spot instances have EC2 spot prices"

POOL_INSTANCES_CHECK = "karpenter launches the pool's nodes as its NodePool and EC2NodeClass say"


def judge_pool_instances(
    nodepool: KubeObject,
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    instances: Mapping[str, Mapping[str, Any]],
    *,
    security_groups: Sequence[str],
) -> Result:
    """Every launched NodeClaim of the NodePool: its Node carries the NodePool's taints, its EC2 instance (from
    ``instances``, id -> DescribeInstances entry) is a spot instance in exactly ``security_groups`` (the platform's
    discovery group, which the EC2NodeClass selects), and the pool's launched CPU stays within ``spec.limits.cpu``."""
    pool = object_name(nodepool)
    spec = nodepool.get("spec") or {}
    taints = [dict(t) for t in ((spec.get("template") or {}).get("spec") or {}).get("taints") or []]
    claims = [c for c in in_pool(nodeclaims, pool) if instance_id(c)]
    by_name = {object_name(n): n for n in nodes}
    problems: list[str] = []
    launched_cpu = 0.0
    for claim in claims:
        status = claim.get("status") or {}
        launched_cpu += cpu_cores(str((status.get("capacity") or {}).get("cpu") or "0"))
        ident, node = str(instance_id(claim)), by_name.get(str(status.get("nodeName") or ""))
        if node is not None:
            missing = [t for t in taints if t not in ((node.get("spec") or {}).get("taints") or [])]
            problems += [f"node {object_name(node)} lacks the taint {t['key']}={t.get('value', '')}" for t in missing]
        instance = instances.get(ident)
        if instance is None:
            problems.append(f"{object_name(claim)}'s instance {ident} is not in EC2")
            continue
        if instance.get("InstanceLifecycle") != "spot":
            problems.append(f"instance {ident} is {instance.get('InstanceLifecycle') or 'on-demand'}, not spot")
        groups = sorted(g["GroupId"] for g in instance.get("SecurityGroups") or [])
        if groups != sorted(security_groups):
            wanted = ", ".join(security_groups)
            problems.append(f"instance {ident} is in {', '.join(groups) or 'no group'}, not {wanted}")
    limit = (spec.get("limits") or {}).get("cpu")
    if limit is not None and launched_cpu > cpu_cores(str(limit)):
        problems.append(f"the pool launched {launched_cpu:g} CPU, over its limit {limit}")
    evidence = {
        "instances": {str(instance_id(c)): object_name(c) for c in claims},
        "launched_cpu": launched_cpu,
        "cpu_limit": limit,
        "taints": taints,
    }
    if not claims:
        return Result.failed(POOL_INSTANCES_CHECK, f"no NodeClaim of {pool} has an instance", **evidence)
    if problems:
        return Result.failed(POOL_INSTANCES_CHECK, "; ".join(problems), **evidence)
    return Result.passed(
        POOL_INSTANCES_CHECK,
        f"{len(claims)} spot instance(s) in {', '.join(security_groups)}, nodes tainted as {pool} says, "
        f"{launched_cpu:g} of {limit or 'unlimited'} CPU",
        **evidence,
    )


INTERRUPTION_EVENT = "SpotInterrupted"  # Karpenter 1.14 (pkg/controllers/interruption/events), on NodeClaim and Node
INTERRUPTION_MESSAGE = "Spot interruption warning was triggered"


def interruption_event(events: Sequence[KubeObject], victim: InterruptionVictim) -> str | None:
    """Karpenter's SpotInterrupted Warning about the victim's NodeClaim or Node, as a line for the evidence."""
    about = {("NodeClaim", victim.nodeclaim), ("Node", victim.node)}
    for event in events:
        involved = event.get("involvedObject") or {}
        if (
            event.get("reason") == INTERRUPTION_EVENT
            and event.get("type") == "Warning"
            and (involved.get("kind"), involved.get("name")) in about
        ):
            return f"{involved.get('kind')}/{involved.get('name')} {INTERRUPTION_EVENT}: {event.get('message', '')}"
    return None


def judge_interruption(
    victim: InterruptionVictim,
    pods: Sequence[KubeObject],
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    events: Sequence[KubeObject],
    *,
    instance_state: str | None,
    replicas: int,
    nodepool: str,
    before: Before,
) -> Result:
    """After a spot interruption warning for ``victim``: Karpenter said it saw it (its SpotInterrupted event on the
    victim's NodeClaim or Node), the victim's NodeClaim and Node are gone (drained), its instance is terminating or
    terminated, and every replica is Ready on a spot node of the pool again. The evidence and the why say where the
    pods the drain evicted went: onto NodeClaims launched after the warning (not in ``before``, the pods and
    NodeClaims at the warning) or onto room the nodes already there had.

    PENDING while any of that is still under way; FAIL as a placement fails (a replica off the pool's spot nodes,
    a Failed pod), or when the victim is gone but Karpenter never reported the interruption (something else
    removed it: the judgement would otherwise credit Karpenter with it).
    """
    name = INTERRUPTION_CHECK
    heard = interruption_event(events, victim)
    evidence: dict[str, Any] = {"victim": victim.__dict__, "instance_state": instance_state, "karpenter_event": heard}
    if any(object_name(claim) == victim.nodeclaim for claim in nodeclaims):
        return Result.pending(name, f"NodeClaim {victim.nodeclaim} still there (draining)", **evidence)
    if any(object_name(node) == victim.node for node in nodes):
        return Result.pending(name, f"node {victim.node} still there", **evidence)
    if instance_state is not None and instance_state not in GONE_STATES:
        return Result.pending(name, f"instance {victim.instance_id} is {instance_state}", **evidence)
    if heard is None:
        return Result.failed(
            name,
            f"NodeClaim {victim.nodeclaim} is gone, but Karpenter reported no {INTERRUPTION_EVENT} for it or "
            f"node {victim.node}",
            **evidence,
        )
    seen = placement(pods, nodeclaims, nodes, nodepool=nodepool)
    unsettled = placement_verdict(name, seen, replicas, nodepool, "after the interruption")
    if unsettled is not None:
        return replace(unsettled, evidence={**unsettled.evidence, **evidence})
    replacements = {
        str((c.get("status") or {}).get("nodeName")): object_name(c)
        for c in in_pool(nodeclaims, nodepool)
        if object_name(c) not in before.nodeclaims
    }
    moved = {pod: node for pod, node in seen.placed.items() if pod not in before.pods}
    on_replacement = sorted(pod for pod, node in moved.items() if node in replacements)
    on_spare = sorted(pod for pod in moved if pod not in on_replacement)
    evidence.update(
        replacement_nodeclaims=sorted(replacements.values()),
        pods_on_replacement=on_replacement,
        pods_on_spare_capacity=on_spare,
    )
    where = [
        f"{len(on_replacement)} on the replacement NodeClaim(s) {', '.join(sorted(replacements.values()))}"
        if on_replacement
        else "",
        f"{len(on_spare)} on room the other nodes had" if on_spare else "",
    ]
    return Result.passed(
        name,
        f"Karpenter reported {INTERRUPTION_EVENT}; node {victim.node} drained and gone, instance {victim.instance_id} "
        f"{instance_state or 'gone'}; {replicas} replica(s) Ready on the pool again, of the {len(moved)} evicted "
        + (" and ".join(part for part in where if part) or "none moved"),
        **evidence,
    )


# ---------------------------------------------------------------- the scale-out's numbers (report, bench, tests)


@dataclass(frozen=True)
class ScaleOutFigures:
    """What one scale-out measured, in seconds from the scale (``ScaleOutTimeline.start``), of what the scale made:
    the pods it created and the NodeClaims created after it. The baseline is counted apart, never timed."""

    first_node_ready: float | None
    last_node_ready: float | None
    all_pods_ready: float | None  # None while any new pod is not Ready
    pending_to_running_p50: float | None  # per new pod, its creation -> Ready
    pending_to_running_p90: float | None
    nodes: int  # NodeClaims created after the scale
    pods: int  # pods the scale created
    baseline_nodes: int
    baseline_pods: int
    bin_packing_minimum: int | None  # fewest nodes of the largest launched size that hold the replicas' CPU


def scale_out_figures(
    timeline: ScaleOutTimeline,
    nodeclaims: Sequence[KubeObject],
    *,
    replicas: int,
    request: str,
    nodepool: str,
) -> ScaleOutFigures:
    """The numbers of the scale-out ``timeline`` holds (its rows marked new; the rest is the baseline)."""
    new_pods = [p for p in timeline.pods if p.new]
    new_nodes = [n for n in timeline.nodes if n.new and n.nodepool == nodepool]
    durations = sorted((p.ready - p.created).total_seconds() for p in new_pods if p.ready and p.created)
    node_ready = [n.node_ready for n in new_nodes if n.node_ready]
    all_ready = [p.ready for p in new_pods if p.ready]
    return ScaleOutFigures(
        first_node_ready=timeline.seconds(min(node_ready)) if node_ready else None,
        last_node_ready=timeline.seconds(max(node_ready)) if node_ready and len(node_ready) == len(new_nodes) else None,
        all_pods_ready=timeline.seconds(max(all_ready)) if all_ready and len(all_ready) == len(new_pods) else None,
        pending_to_running_p50=_percentile(durations, 0.5),
        pending_to_running_p90=_percentile(durations, 0.9),
        nodes=len(new_nodes),
        pods=len(new_pods),
        baseline_nodes=sum(1 for n in timeline.nodes if not n.new),
        baseline_pods=sum(1 for p in timeline.pods if not p.new),
        bin_packing_minimum=bin_packing_minimum(replicas, request, nodeclaims, nodepool),
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted `values` (None when empty)."""
    return values[max(0, math.ceil(q * len(values)) - 1)] if values else None


def judge_spot_prices(instances: Mapping[str, Mapping[str, Any]], history: Sequence[Mapping[str, Any]]) -> Result:
    """Each launched instance (id -> DescribeInstances entry) has a spot price for its type and zone in EC2's
    price history (DescribeSpotPriceHistory entries; the latest counts): what the pool costs per hour."""
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for entry in history:
        key = (str(entry["InstanceType"]), str(entry["AvailabilityZone"]))
        if key not in latest or entry["Timestamp"] > latest[key][0]:
            latest[key] = (entry["Timestamp"], float(entry["SpotPrice"]))
    priced: dict[str, float] = {}
    unpriced: list[str] = []
    for ident, instance in sorted(instances.items()):
        kind, zone = str(instance["InstanceType"]), str((instance.get("Placement") or {}).get("AvailabilityZone"))
        if (kind, zone) in latest:
            priced[f"{ident} ({kind} in {zone})"] = latest[(kind, zone)][1]
        else:
            unpriced.append(f"{ident} ({kind} in {zone})")
    evidence = {"prices": priced, "unpriced": unpriced}
    if not instances:
        return Result.failed(SPOT_PRICES_CHECK, "no instance of the pool to price", **evidence)
    if unpriced:
        return Result.failed(SPOT_PRICES_CHECK, f"no spot price in EC2's history for {', '.join(unpriced)}", **evidence)
    each = ", ".join(f"{name} ${price:.4f}/h" for name, price in priced.items())
    return Result.passed(SPOT_PRICES_CHECK, f"${sum(priced.values()):.4f}/h for {len(priced)}: {each}", **evidence)
