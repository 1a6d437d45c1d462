"""The spot experiment beyond scale-out and scale-in: a spot interruption warning for one pool node and its
judgement (drained, replaced, terminated), and the numbers of a scale-out (Pending -> Running per new pod, the
first new node, nodes against the bin-packing minimum) that the bench and the report show."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from harness.kube.api import KubeObject
from harness.kube.karpenter import ScaleOutTimeline, in_pool, judge_scale_out, object_name
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


def interruption_victim(nodeclaims: Sequence[KubeObject], nodepool: str) -> InterruptionVictim | None:
    """The first (by name) NodeClaim of `nodepool` with a node and an instance (providerID aws:///zone/id)."""
    for claim in sorted(in_pool(nodeclaims, nodepool), key=object_name):
        status = claim.get("status") or {}
        provider_id, node = str(status.get("providerID") or ""), str(status.get("nodeName") or "")
        if provider_id.startswith("aws:///") and node:
            return InterruptionVictim(object_name(claim), node, provider_id.rsplit("/", 1)[1])
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


def judge_interruption(
    victim: InterruptionVictim,
    pods: Sequence[KubeObject],
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    *,
    instance_state: str | None,
    replicas: int,
    nodepool: str,
) -> Result:
    """After a spot interruption warning: the victim's NodeClaim and Node are gone, its instance is terminating or
    terminated, and every replica is Ready on a spot node of the pool again (on the replacement).

    PENDING while any of that is still under way; FAIL only as judge_scale_out fails (a replica placed off the
    pool or on a node that is not spot).
    """
    name = INTERRUPTION_CHECK
    evidence: dict[str, Any] = {"victim": victim.__dict__, "instance_state": instance_state}
    if any(object_name(claim) == victim.nodeclaim for claim in nodeclaims):
        return Result.pending(name, f"NodeClaim {victim.nodeclaim} still there (draining)", **evidence)
    if any(object_name(node) == victim.node for node in nodes):
        return Result.pending(name, f"node {victim.node} still there", **evidence)
    if instance_state is not None and instance_state not in GONE_STATES:
        return Result.pending(name, f"instance {victim.instance_id} is {instance_state}", **evidence)
    placed = judge_scale_out(pods, nodeclaims, nodes, replicas=replicas, nodepool=nodepool)
    if not placed.ok:
        return Result(name, placed.status, f"after the interruption: {placed.why}", {**evidence, **placed.evidence})
    return Result.passed(
        name,
        f"node {victim.node} drained and gone, instance {victim.instance_id} {instance_state or 'gone'}, "
        f"{replicas} replica(s) Ready on the pool again",
        **evidence,
    )


# ---------------------------------------------------------------- the scale-out's numbers (bench, tests)


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity in cores ("500m" -> 0.5, "2" -> 2.0)."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def cpu_request(deployment: KubeObject) -> str:
    """The CPU request of a Deployment's first container ("0" when it sets none)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return str(((containers[0].get("resources") or {}).get("requests") or {}).get("cpu", "0")) if containers else "0"


@dataclass(frozen=True)
class ScaleOutFigures:
    """What one scale-out measured: per new pod Pending -> Running, the first new node, nodes vs the minimum."""

    pending_to_running_p50: float | None
    pending_to_running_p90: float | None
    first_node_ready: float | None  # seconds from the scale to the first new node's Ready
    nodes: int
    bin_packing_minimum: int | None  # fewest nodes of the largest launched size that hold the replicas' CPU


def scale_out_figures(
    timeline: ScaleOutTimeline,
    nodeclaims: Sequence[KubeObject],
    *,
    scaled_at: datetime,
    replicas: int,
    cpu_request: str,
    nodepool: str,
) -> ScaleOutFigures:
    """The numbers of the scale-out that started at `scaled_at` (pods and nodes created before it are the
    baseline's and are left out)."""
    new_pods = [p for p in timeline.pods if p.created and p.created >= scaled_at and p.ready]
    durations = sorted((p.ready - p.created).total_seconds() for p in new_pods if p.ready and p.created)
    new_nodes = [
        n for n in timeline.nodes if n.claim_created and n.claim_created >= scaled_at and n.nodepool == nodepool
    ]
    first = min((n.node_ready for n in new_nodes if n.node_ready), default=None)
    allocatable = [
        cpu_cores(str(c["status"]["allocatable"]["cpu"]))
        for c in in_pool(nodeclaims, nodepool)
        if ((c.get("status") or {}).get("allocatable") or {}).get("cpu")
    ]
    return ScaleOutFigures(
        pending_to_running_p50=_percentile(durations, 0.5),
        pending_to_running_p90=_percentile(durations, 0.9),
        first_node_ready=(first - scaled_at).total_seconds() if first else None,
        nodes=len(in_pool(nodeclaims, nodepool)),
        bin_packing_minimum=math.ceil(replicas * cpu_cores(cpu_request) / max(allocatable)) if allocatable else None,
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted `values` (None when empty)."""
    return values[max(0, math.ceil(q * len(values)) - 1)] if values else None
