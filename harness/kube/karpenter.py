"""Judges over Karpenter (karpenter.sh/v1) NodeClaims, their Nodes and the pods that caused them.

The e2e scales game-2048 out to N replicas. The pods cannot go to the tainted ops nodes, so they stay
Pending (PodScheduled=False, reason Unschedulable) until Karpenter reacts: it creates a NodeClaim for the
spot NodePool, whose status conditions go ``Launched`` (EC2 instance created) -> ``Registered`` (the node
joined) -> ``Initialized`` (node Ready, resources registered) -> ``Ready``. The Node carries
``karpenter.sh/nodepool=<pool>`` and ``karpenter.sh/capacity-type=spot``; the pods then schedule there and
become Ready. Scaling back in leaves nodes empty or underutilized and consolidation deletes them
(harness.kube.consolidation judges that).

``judge_scale_out`` is a pure judge for ``harness.waits.wait_for``;
``build_timeline`` turns the same objects into plain dataclasses (one row per pod and per node, with the
time of every step) that the report plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from harness.errors import InputError
from harness.keys import CAPACITY_TYPE_LABEL, NODEPOOL_LABEL
from harness.kube.core import (
    Before,
    bin_packing_minimum,
    condition,
    condition_true,
    failed_pods,
    is_ops_node,
    labels_of,
    name_of,
    node_ready,
    parse_time,
    pod_phase_summary,
    pod_ready,
)
from harness.results import Result

KubeObject = Mapping[str, Any]

SPOT = "spot"
NODECLAIM_STEPS = ("Launched", "Registered", "Initialized", "Ready")
EVIDENCE_EVENTS = 20
SCALE_OUT_ANNOTATION = "eks-platform/scale-out-replicas"
NOMINATED_PREFIX = "Pod should schedule on: "


def nodepool_template_labels(nodepool: KubeObject) -> dict[str, str]:
    """The labels a NodePool puts on its nodes (``spec.template.metadata.labels``)."""
    template = (nodepool.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def scale_out_replicas(deployment: KubeObject, default: int) -> int:
    """The replica count the e2e scales to: the Deployment's ``eks-platform/scale-out-replicas`` annotation."""
    value = ((deployment.get("metadata") or {}).get("annotations") or {}).get(SCALE_OUT_ANNOTATION)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise InputError(f"{SCALE_OUT_ANNOTATION}={value!r} on {name_of(deployment)} is not a whole number") from None


def _meta(obj: KubeObject) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def object_name(obj: KubeObject) -> str:
    return str(_meta(obj).get("name", "?"))


def live_objects(objects: Sequence[KubeObject]) -> list[KubeObject]:
    """Objects not being deleted (a terminating pod of an old ReplicaSet is not one of the N)."""
    return [obj for obj in objects if not _meta(obj).get("deletionTimestamp")]


def in_pool(objects: Sequence[KubeObject], nodepool: str) -> list[KubeObject]:
    return [obj for obj in objects if labels_of(obj).get(NODEPOOL_LABEL) == nodepool]


def claim_instances(claims: Sequence[KubeObject]) -> dict[str, str]:
    """NodeClaim name -> the EC2 instance id of its status.providerID (aws:///<zone>/<id>), for the launched ones."""
    found = {}
    for claim in claims:  # a terminating claim's instance is still the controller's
        provider_id = str((claim.get("status") or {}).get("providerID") or "")
        if provider_id.startswith("aws:///"):
            found[object_name(claim)] = provider_id.rsplit("/", 1)[1]
    return found


def _step_state(claim: KubeObject, step: str) -> str:
    """``True``, or the status with Karpenter's reason and message while the step is not done."""
    found = condition(claim, step)
    if found is None:
        return "Unknown"
    status = str(found.get("status"))
    if status != "True" and found.get("message"):
        return f"{status} ({found.get('reason')}: {found.get('message')})"
    return status


def nodeclaim_state(claim: KubeObject) -> dict[str, Any]:
    """One NodeClaim for evidence: node, instance type, capacity type and each step's condition."""
    steps = {step: _step_state(claim, step) for step in NODECLAIM_STEPS}
    labels = labels_of(claim)
    return {
        "nodeclaim": object_name(claim),
        "node": (claim.get("status") or {}).get("nodeName"),
        "instance_type": labels.get("node.kubernetes.io/instance-type"),
        "capacity_type": labels.get(CAPACITY_TYPE_LABEL),
        "deleting": bool(_meta(claim).get("deletionTimestamp")),
        **steps,
    }


def related_events(events: Sequence[KubeObject], objects: Sequence[KubeObject]) -> list[str]:
    """The latest events about ``objects``, as ``time kind/name reason: message`` lines."""
    names = {(str(obj.get("kind", "")), object_name(obj)) for obj in objects}
    names_only = {object_name(obj) for obj in objects if not obj.get("kind")}
    lines: list[tuple[str, str]] = []
    for event in events:
        involved = event.get("involvedObject") or {}
        key = (str(involved.get("kind", "")), str(involved.get("name", "")))
        if key not in names and key[1] not in names_only:
            continue
        when = str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")
        lines.append((when, f"{when} {key[0]}/{key[1]} {event.get('reason')}: {event.get('message', '')}"))
    return [line for _, line in sorted(lines)][-EVIDENCE_EVENTS:]


def judge_pool_ready(nodepool: KubeObject | None, nodeclass: KubeObject | None) -> Result:
    """The NodePool and its EC2NodeClass are Ready, so Karpenter can launch nodes for pending pods.

    PENDING while either is missing (Argo CD has not synced them) or Karpenter is still resolving them;
    the why names every condition that is False with Karpenter's reason and message (e.g. ``SubnetsReady``:
    no subnet matched the selector tags). FAIL when ``ValidationSucceeded`` is False: Karpenter checked the
    spec, or the EC2/IAM permissions to launch with it, and they are wrong.
    """
    name = "karpenter nodepool and ec2nodeclass ready"
    present = [obj for obj in (nodepool, nodeclass) if obj is not None]
    evidence = {
        f"{obj.get('kind')}/{object_name(obj)}": {
            str(c.get("type")): str(c.get("status")) for c in (obj.get("status") or {}).get("conditions") or []
        }
        for obj in present
    }
    if nodepool is None or nodeclass is None:
        missing = [kind for kind, obj in (("NodePool", nodepool), ("EC2NodeClass", nodeclass)) if obj is None]
        return Result.pending(name, f"{' and '.join(missing)} not created yet", conditions=evidence)
    false = [
        (obj, c)
        for obj in present
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("status") == "False"
    ]
    reasons = "; ".join(
        f"{obj.get('kind')}/{object_name(obj)} {c.get('type')}=False ({c.get('reason')}: {c.get('message', '')})"
        for obj, c in false
    )
    if any(c.get("type") == "ValidationSucceeded" for _, c in false):
        return Result.failed(name, reasons, conditions=evidence)
    if all(condition_true(obj, "Ready") for obj in present):
        return Result.passed(
            name,
            f"NodePool/{object_name(nodepool)} and EC2NodeClass/{object_name(nodeclass)} are Ready",
            conditions=evidence,
        )
    return Result.pending(name, reasons or "not reconciled by Karpenter yet", conditions=evidence)


def judge_node_class_discovery(
    nodeclass: KubeObject | None,
    *,
    subnets: Sequence[str],
    security_groups: Sequence[str],
    amis: Sequence[str] | None,
) -> Result:
    """The EC2NodeClass is Ready and resolved exactly the platform's private subnets, its discovery security
    group and the expected AMIs (its selectors found what the platform tagged, and nothing else). `amis` None:
    any AMI will do, as long as one resolved (on AWS the alias names a release, not an id known beforehand).

    PENDING while it is missing or not Ready (the why names each False condition); FAIL when Ready but any
    resolved set differs, naming what is missing and what is extra.
    """
    name = "karpenter ec2nodeclass discovers the platform's subnets, security group and ami"
    if nodeclass is None:
        return Result.pending(name, "EC2NodeClass not created yet")
    status = nodeclass.get("status") or {}
    resolved = {
        "subnets": sorted(str(s.get("id")) for s in status.get("subnets") or []),
        "securityGroups": sorted(str(g.get("id")) for g in status.get("securityGroups") or []),
        "amis": sorted(str(a.get("id")) for a in status.get("amis") or []),
    }
    expected_amis = sorted(amis) if amis is not None else resolved["amis"] or ["(any AMI)"]
    expected = {"subnets": sorted(subnets), "securityGroups": sorted(security_groups), "amis": expected_amis}
    evidence = {"resolved": resolved, "expected": expected, "instanceProfile": status.get("instanceProfile")}
    if not condition_true(nodeclass, "Ready"):
        false = [
            f"{c.get('type')}=False ({c.get('reason')}: {c.get('message', '')})"
            for c in status.get("conditions") or []
            if c.get("status") == "False"
        ]
        return Result.pending(name, "; ".join(false) or "not reconciled by Karpenter yet", **evidence)
    wrong = [
        f"{field}: missing {sorted(set(want) - set(found))}, extra {sorted(set(found) - set(want))}"
        for field, found in resolved.items()
        if found != (want := expected[field])
    ]
    if wrong:
        return Result.failed(name, f"EC2NodeClass/{object_name(nodeclass)} resolved " + "; ".join(wrong), **evidence)
    return Result.passed(
        name,
        f"EC2NodeClass/{object_name(nodeclass)} Ready with {len(subnets)} subnet(s), {len(security_groups)} security "
        f"group(s), {len(resolved['amis'])} AMI(s)",
        **evidence,
    )


@dataclass(frozen=True)
class Placement:
    """Where the live pods of a workload stand against the spot nodes of one pool."""

    placed: dict[str, str]  # pod -> node, Ready on a Ready spot node of the pool that a NodeClaim names
    misplaced: list[dict[str, Any]]
    waiting: list[dict[str, str]]
    failed: list[dict[str, str]]
    live: int


def placement(
    pods: Sequence[KubeObject],
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    *,
    nodepool: str,
    node_labels: Mapping[str, str] | None = None,
) -> Placement:
    """Each live pod: Ready on a Ready spot node of ``nodepool`` with ``node_labels`` that one of the pool's
    NodeClaims names (placed), on a node outside the pool, not spot or without the labels (misplaced), Failed, or
    still on its way (waiting, with the scheduler's or the kubelet's words)."""
    live_pods = live_objects(pods)
    claimed_nodes = {(claim.get("status") or {}).get("nodeName") for claim in in_pool(nodeclaims, nodepool)}
    nodes_by_name = {object_name(node): node for node in nodes}
    misplaced: list[dict[str, Any]] = []
    waiting: list[dict[str, str]] = []
    placed: dict[str, str] = {}
    for pod in live_pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = nodes_by_name.get(str(node_name)) if node_name else None
        if node is None:
            waiting.append({"pod": name_of(pod), "state": pod_phase_summary(pod)})
            continue
        pool = labels_of(node).get(NODEPOOL_LABEL)
        capacity = labels_of(node).get(CAPACITY_TYPE_LABEL)
        missing_labels = {k: v for k, v in (node_labels or {}).items() if labels_of(node).get(k) != v}
        if pool != nodepool or capacity != SPOT:
            where = "an ops node" if is_ops_node(node) else f"nodepool={pool or '-'} capacity-type={capacity or '-'}"
            misplaced.append({"pod": name_of(pod), "node": object_name(node), "why": f"runs on {where}"})
        elif missing_labels:
            misplaced.append(
                {
                    "pod": name_of(pod),
                    "node": object_name(node),
                    "why": f"runs on a node without labels {missing_labels}",
                }
            )
        elif not node_ready(node) or not pod_ready(pod):
            waiting.append({"pod": name_of(pod), "state": pod_phase_summary(pod)})
        elif object_name(node) not in claimed_nodes:
            waiting.append(
                {"pod": name_of(pod), "state": f"on {object_name(node)}, which no NodeClaim of {nodepool} names yet"}
            )
        else:
            placed[name_of(pod)] = object_name(node)
    return Placement(placed, misplaced, waiting, failed_pods(live_pods), len(live_pods))


def placement_verdict(name: str, seen: Placement, replicas: int, nodepool: str, progress: str) -> Result | None:
    """FAIL on a misplaced or Failed pod, PENDING while a replica is missing or on its way; None when all are placed."""
    evidence = {
        "pods_ready_on_spot": seen.placed,
        "misplaced": seen.misplaced,
        "waiting": seen.waiting,
        "failed": seen.failed,
    }
    if seen.misplaced:
        return Result.failed(
            name,
            f"{len(seen.misplaced)} pod(s) not on spot nodes of {nodepool}: {seen.misplaced[0]['why']}",
            **evidence,
        )
    if seen.failed:
        return Result.failed(
            name,
            f"{len(seen.failed)} pod(s) Failed: " + "; ".join(f"{r['pod']} ({r['why']})" for r in seen.failed),
            **evidence,
        )
    if seen.live < replicas:
        return Result.pending(name, f"{seen.live} of {replicas} pod(s) exist", **evidence)
    if seen.waiting:
        return Result.pending(name, f"{len(seen.placed)} of {replicas} pod(s) Ready on spot; {progress}", **evidence)
    return None


def judge_scale_out(
    pods: Sequence[KubeObject],
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    *,
    replicas: int,
    nodepool: str,
    before: Before,
    request: str,
    node_labels: Mapping[str, str] | None = None,
    events: Sequence[KubeObject] = (),
) -> Result:
    """Karpenter scaled ``nodepool`` out for the pods the scale created: ``replicas`` pods Ready on Ready spot nodes
    of the pool, at least one NodeClaim created after the scale (not in ``before``) with its Node Ready and new pods
    on it, and no more NodeClaims in the pool than the bin-packing minimum for ``request`` CPU a pod, plus one.

    ``node_labels`` are further labels every pool node must carry (``nodepool_template_labels`` of the NodePool).
    PENDING while pods are missing/unscheduled/not Ready or NodeClaims are still launching (evidence: the pods'
    scheduling messages, every NodeClaim's conditions, related events). FAIL when a pod runs off the pool's spot
    nodes or without its labels, a pod Failed, every replica fits the nodes that were already there (the scale-out
    showed nothing of Karpenter), or Karpenter launched more nodes than the replicas need.
    """
    name = f"karpenter scales {nodepool} out for {replicas} pod(s)"
    claims = in_pool(nodeclaims, nodepool)
    new_claims = [claim for claim in claims if object_name(claim) not in before.nodeclaims]
    seen = placement(pods, nodeclaims, nodes, nodepool=nodepool, node_labels=node_labels)
    evidence: dict[str, Any] = {
        "nodeclaims": [{**nodeclaim_state(c), "new": c in new_claims} for c in claims],
        "events": related_events(events, [*live_objects(pods), *claims]),
    }
    unsettled = placement_verdict(name, seen, replicas, nodepool, claim_progress(new_claims, "new "))
    if unsettled is not None:
        return replace(unsettled, evidence={**unsettled.evidence, **evidence})
    new_nodes = {str((c.get("status") or {}).get("nodeName")): object_name(c) for c in new_claims}
    new_pods = {pod: node for pod, node in seen.placed.items() if pod not in before.pods}
    on_new = {pod: node for pod, node in new_pods.items() if node in new_nodes}
    minimum = bin_packing_minimum(replicas, request, claims, nodepool)
    evidence.update(
        pods_ready_on_spot=seen.placed,
        new_pods_on_new_nodeclaims=on_new,
        bin_packing_minimum=minimum,
        nodes=sorted(set(seen.placed.values())),
    )
    if not new_claims:
        return Result.failed(
            name,
            f"all {replicas} pod(s) Ready, but no NodeClaim of {nodepool} was created after the scale: the nodes "
            "already there held them, so this shows nothing of Karpenter",
            **evidence,
        )
    if not on_new:
        return Result.failed(
            name,
            f"no new pod runs on the NodeClaim(s) created after the scale ({', '.join(sorted(new_nodes.values()))})",
            **evidence,
        )
    if minimum is None:
        return Result.failed(
            name,
            f"no NodeClaim of {nodepool} reports its allocatable CPU: the bin-packing minimum is unknown",
            **evidence,
        )
    if len(claims) > minimum + 1:
        return Result.failed(
            name,
            f"{len(claims)} NodeClaims of {nodepool} for {replicas} pod(s) of {request} CPU: more than the "
            f"bin-packing minimum of {minimum} plus one",
            **evidence,
        )
    spare = len(new_pods) - len(on_new)
    return Result.passed(
        name,
        f"{len(seen.placed)} pod(s) Ready on {len(set(seen.placed.values()))} spot node(s) of {nodepool}: "
        f"{len(on_new)} of the {len(new_pods)} new on {len(new_claims)} NodeClaim(s) created after the scale "
        f"({', '.join(sorted(new_nodes.values()))})"
        + (f", {spare} on room the nodes already there had" if spare else "")
        + f"; {len(claims)} NodeClaim(s) against a bin-packing minimum of {minimum}",
        **evidence,
    )


def claim_progress(claims: Sequence[KubeObject], which: str = "") -> str:
    if not claims:
        return f"no {which}NodeClaim yet"
    counts = [f"{sum(1 for c in claims if _condition_is(c, step))} {step}" for step in NODECLAIM_STEPS]
    return f"{len(claims)} {which}NodeClaim(s): " + ", ".join(counts)


def _condition_is(obj: KubeObject, kind: str, status: str = "True") -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == status


# ---------------------------------------------------------------- timeline


@dataclass(frozen=True)
class NodeTimeline:
    """One Karpenter node from NodeClaim creation to Ready. Times are aware UTC datetimes or None."""

    nodeclaim: str
    node: str | None
    nodepool: str | None
    instance_type: str | None
    capacity_type: str | None
    zone: str | None
    claim_created: datetime | None
    launched: datetime | None
    registered: datetime | None
    initialized: datetime | None
    node_ready: datetime | None
    new: bool = True  # created after the scale; False for the baseline's


@dataclass(frozen=True)
class PodTimeline:
    """One pod from creation (Pending) to Ready, with the steps of the node it landed on."""

    pod: str
    node: str | None
    nodeclaim: str | None
    created: datetime | None
    nominated: datetime | None  # Karpenter's "Pod should schedule on: nodeclaim/..." event
    scheduled: datetime | None
    nodeclaim_launched: datetime | None
    node_ready: datetime | None
    ready: datetime | None
    new: bool = True  # created by the scale; False for the baseline's


@dataclass(frozen=True)
class ScaleOutTimeline:
    """Per-pod and per-node steps of one scale-out; ``start`` is the scale: the earliest creation of a pod it
    created (the API's record of the moment the replicas were raised)."""

    start: datetime | None
    pods: tuple[PodTimeline, ...]
    nodes: tuple[NodeTimeline, ...]

    def seconds(self, moment: datetime | None) -> float | None:
        """Seconds from ``start`` to ``moment`` (for plotting and JSON), None when either is unknown."""
        if moment is None or self.start is None:
            return None
        return round((moment - self.start).total_seconds(), 3)


def _true_since(obj: KubeObject, kind: str) -> datetime | None:
    found = condition(obj, kind)
    if found is None or found.get("status") != "True":
        return None
    return parse_time(found.get("lastTransitionTime"))


def _nominations(events: Sequence[KubeObject]) -> dict[str, tuple[datetime | None, str]]:
    """Pod ``namespace/name`` -> (time, NodeClaim) of Karpenter's first Nominated event for it."""
    found: dict[str, tuple[datetime | None, str]] = {}
    for event in sorted(events, key=lambda e: str(e.get("firstTimestamp") or e.get("eventTime") or "")):
        involved = event.get("involvedObject") or {}
        message = str(event.get("message", ""))
        if event.get("reason") != "Nominated" or involved.get("kind") != "Pod" or NOMINATED_PREFIX not in message:
            continue
        targets = message.split(NOMINATED_PREFIX, 1)[1].split(",")
        claim = next((t.strip().split("/", 1)[1] for t in targets if t.strip().startswith("nodeclaim/")), "")
        key = f"{involved.get('namespace')}/{involved.get('name')}"
        if claim and key not in found:
            found[key] = (parse_time(event.get("firstTimestamp") or event.get("eventTime")), claim)
    return found


def build_timeline(
    pods: Sequence[KubeObject],
    nodeclaims: Sequence[KubeObject],
    nodes: Sequence[KubeObject],
    events: Sequence[KubeObject] = (),
    before: Before | None = None,
) -> ScaleOutTimeline:
    """The timeline of a scale-out from the objects' own timestamps and condition transition times; rows of what
    ``before`` names (the baseline) are marked ``new=False`` (without it, every row is the scale-out's).

    Pod: ``creationTimestamp`` (Pending from then), Karpenter's ``Nominated`` event, ``PodScheduled`` and
    ``Ready`` transitions. NodeClaim: ``creationTimestamp`` and its ``Launched``/``Registered``/
    ``Initialized`` transitions. Node: its ``Ready`` transition. A pod is linked to its NodeClaim through
    ``spec.nodeName`` once scheduled, before that through the Nominated event.
    """
    nodes_by_name = {object_name(node): node for node in nodes}
    node_rows: list[NodeTimeline] = []
    for claim in sorted(nodeclaims, key=lambda c: str(_meta(c).get("creationTimestamp", ""))):
        node_name = (claim.get("status") or {}).get("nodeName")
        node = nodes_by_name.get(str(node_name)) if node_name else None
        labels = labels_of(claim)
        node_rows.append(
            NodeTimeline(
                nodeclaim=object_name(claim),
                node=node_name,
                nodepool=labels.get(NODEPOOL_LABEL),
                instance_type=labels.get("node.kubernetes.io/instance-type"),
                capacity_type=labels.get(CAPACITY_TYPE_LABEL),
                zone=labels.get("topology.kubernetes.io/zone"),
                claim_created=parse_time(_meta(claim).get("creationTimestamp")),
                launched=_true_since(claim, "Launched"),
                registered=_true_since(claim, "Registered"),
                initialized=_true_since(claim, "Initialized"),
                node_ready=_true_since(node, "Ready") if node is not None else None,
                new=before is None or object_name(claim) not in before.nodeclaims,
            )
        )
    by_node = {row.node: row for row in node_rows if row.node}
    by_claim = {row.nodeclaim: row for row in node_rows}
    nominations = _nominations(events)
    pod_rows: list[PodTimeline] = []
    for pod in sorted(live_objects(pods), key=lambda p: str(_meta(p).get("creationTimestamp", ""))):
        node_name = (pod.get("spec") or {}).get("nodeName")
        nominated_at, nominated_claim = nominations.get(name_of(pod), (None, ""))
        claim_row = by_node.get(node_name) if node_name else by_claim.get(nominated_claim)
        node = nodes_by_name.get(str(node_name)) if node_name else None
        pod_rows.append(
            PodTimeline(
                pod=name_of(pod),
                node=node_name,
                nodeclaim=claim_row.nodeclaim if claim_row else None,
                created=parse_time(_meta(pod).get("creationTimestamp")),
                nominated=nominated_at,
                scheduled=_true_since(pod, "PodScheduled"),
                nodeclaim_launched=claim_row.launched if claim_row else None,
                node_ready=_true_since(node, "Ready") if node is not None else None,
                ready=_true_since(pod, "Ready"),
                new=before is None or name_of(pod) not in before.pods,
            )
        )
    starts = [row.created for row in pod_rows if row.created and row.new]
    return ScaleOutTimeline(start=min(starts) if starts else None, pods=tuple(pod_rows), nodes=tuple(node_rows))
