"""Judges over core Kubernetes objects: where the platform's pods run, and what the ops nodes look like.

The platform keeps controllers and workloads apart. The "ops" managed node group runs the controllers: its
nodes carry the labels ``workload-type=ops`` and ``karpenter.sh/controller=true`` and the taint
``CriticalAddonsOnly=true:NoSchedule``, so only pods that tolerate it (Argo CD, Karpenter, the AWS Load
Balancer Controller) land there. Workloads such as game-2048 do not tolerate it and go to Karpenter nodes.

Every judge here is a pure function of API objects (dicts as the API serves them) returning a
``harness.results.Result``; PENDING means "not settled yet, poll again" (see ``harness.waits``). Small
accessors (``condition``, ``parse_time``, ``pod_phase_summary``, ``failed_pods``) and what the Karpenter judges
measure a trigger and a size against (``Before``, ``cpu_request``, ``bin_packing_minimum``) are shared by the
other judge modules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.keys import NODEPOOL_LABEL
from harness.results import Result

KubeObject = Mapping[str, Any]

OPS_NODE_LABELS: Mapping[str, str] = {"workload-type": "ops", "karpenter.sh/controller": "true"}
OPS_NODE_TAINT: Mapping[str, str] = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"


@dataclass(frozen=True)
class PodGroup:
    """A set of pods the e2e reads with one ``list_pods(namespace, label_selector)`` call."""

    name: str
    namespace: str
    label_selector: str = ""


# Where the add-ons run: infra/addons installs them with these release names and namespaces.
CONTROLLER_PODS: tuple[PodGroup, ...] = (
    PodGroup("argo-cd", "argocd", "app.kubernetes.io/part-of=argocd"),
    PodGroup("karpenter", "kube-system", "app.kubernetes.io/name=karpenter"),
    PodGroup("aws-load-balancer-controller", "kube-system", "app.kubernetes.io/name=aws-load-balancer-controller"),
)
GAME_PODS = PodGroup("game-2048", "game-2048", "app.kubernetes.io/name=game-2048")


# ---------------------------------------------------------------- accessors


# The names of the judgements: the same on every target, so reports and JUnit rows line up.
OPS_NODES_CHECK = "ops nodes carry their labels and taint"
OPS_INSTANCES_CHECK = "ops nodes are the node group's EC2 instances"
READINESS_PROBE_CHECK = "game-2048 pods are Ready by their readiness probe"
CONTROLLERS_CHECK = "controllers run on ops nodes"


def off_ops_check(workload: str) -> str:
    return f"no {workload} pod on ops nodes"


def name_of(obj: KubeObject) -> str:
    """``namespace/name`` for namespaced objects, ``name`` otherwise."""
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name', '?')}" if meta.get("namespace") else str(meta.get("name", "?"))


def labels_of(obj: KubeObject) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def condition(obj: KubeObject, kind: str) -> Mapping[str, Any] | None:
    """The ``status.conditions`` entry of type ``kind``, or ``None``."""
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry  # type: ignore[no-any-return]
    return None


def condition_true(obj: KubeObject, kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == "True"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 API timestamp (``2026-11-25T19:02:11Z``, optionally with fractions) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_ops_node(node: KubeObject) -> bool:
    """A node of the ops group, recognised by the labels the platform gives it."""
    labels = labels_of(node)
    return all(labels.get(key) == value for key, value in OPS_NODE_LABELS.items())


def node_ready(node: KubeObject) -> bool:
    return condition_true(node, "Ready")


def pod_ready(pod: KubeObject) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and condition_true(pod, "Ready")


def pod_phase_summary(pod: KubeObject) -> str:
    """One line on a pod's state: phase, node, and why it is not scheduled/ready if it is not."""
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    parts = [str(status.get("phase", "Unknown")), f"on {node}" if node else "not scheduled"]
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") != "True":
        parts.append(f"{scheduled.get('reason', '')}: {scheduled.get('message', '')}".strip(": "))
    elif not pod_ready(pod):
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting:
                parts.append(
                    f"{container.get('name')}: {waiting.get('reason', '')} {waiting.get('message', '')}".strip()
                )
    return ", ".join(parts)


def failed_pods(pods: Iterable[KubeObject]) -> list[dict[str, str]]:
    """Pods the kubelet gave up on (phase Failed: evicted, out of memory, a container that exited for good), each
    with the kubelet's reason and message; a Job's pods are left out (a failed hook is retried by a new pod)."""
    return [
        {
            "pod": name_of(pod),
            "why": f"{status.get('reason') or 'Failed'}: {status.get('message', '')}".strip(": "),
        }
        for pod in pods
        if (status := pod.get("status") or {}).get("phase") == "Failed"
        and not any(ref.get("kind") == "Job" for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])
    ]


def _failed_why(failed: Sequence[Mapping[str, str]]) -> str:
    return "; ".join(f"{row['pod']} ({row['why']})" for row in failed)


@dataclass(frozen=True)
class Before:
    """The pods and NodeClaims that existed just before a trigger (raising the replicas, a spot interruption
    warning): what came after it is judged and timed apart from them. Names, not times, so the API server's clock
    and this machine's never need to agree."""

    pods: frozenset[str]  # namespace/name
    nodeclaims: frozenset[str]

    @classmethod
    def of(cls, pods: Sequence[KubeObject], nodeclaims: Sequence[KubeObject]) -> Before:
        return cls(frozenset(name_of(pod) for pod in pods), frozenset(name_of(c) for c in nodeclaims))


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity in cores ("500m" -> 0.5, "2" -> 2.0)."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def cpu_request(deployment: KubeObject) -> str:
    """The CPU request of a Deployment's first container ("0" when it sets none)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return str(((containers[0].get("resources") or {}).get("requests") or {}).get("cpu", "0")) if containers else "0"


def bin_packing_minimum(replicas: int, request: str, nodeclaims: Sequence[KubeObject], nodepool: str) -> int | None:
    """The fewest nodes of the largest size Karpenter launched that hold the replicas' CPU (None before any NodeClaim
    of the pool reports its allocatable CPU)."""
    allocatable = [
        cpu_cores(str(c["status"]["allocatable"]["cpu"]))
        for c in nodeclaims
        if labels_of(c).get(NODEPOOL_LABEL) == nodepool
        and ((c.get("status") or {}).get("allocatable") or {}).get("cpu")
    ]
    return max(1, math.ceil(replicas * cpu_cores(request) / max(allocatable))) if allocatable else None


def _has_taint(node: KubeObject, taint: Mapping[str, str]) -> bool:
    for entry in (node.get("spec") or {}).get("taints") or []:
        if all(entry.get(key) == value for key, value in taint.items()):
            return True
    return False


def _nodes_by_name(nodes: Iterable[KubeObject]) -> dict[str, KubeObject]:
    return {str((node.get("metadata") or {}).get("name")): node for node in nodes}


# ---------------------------------------------------------------- judges


def judge_ops_nodes(nodes: Sequence[KubeObject], *, nodegroup: str | None = None) -> Result:
    """Every node of the ops managed node group is Ready and carries the ops labels and taint.

    Managed-group nodes are the ones with ``eks.amazonaws.com/nodegroup`` (equal to ``nodegroup`` when
    given). PENDING while none has registered or one is not Ready yet; FAIL when a label or the taint is
    missing (the node group's configuration is wrong and waiting will not fix it).
    """
    name = OPS_NODES_CHECK
    group_nodes = [
        node
        for node in nodes
        if NODEGROUP_LABEL in labels_of(node) and (nodegroup is None or labels_of(node)[NODEGROUP_LABEL] == nodegroup)
    ]
    if not group_nodes:
        which = f"node group {nodegroup!r}" if nodegroup else "any managed node group"
        return Result.pending(name, f"no node of {which} has registered yet", nodes=[name_of(n) for n in nodes])
    wrong: list[dict[str, Any]] = []
    not_ready: list[str] = []
    for node in group_nodes:
        labels = labels_of(node)
        missing = {key: value for key, value in OPS_NODE_LABELS.items() if labels.get(key) != value}
        tainted = _has_taint(node, OPS_NODE_TAINT)
        if missing or not tainted:
            wrong.append(
                {
                    "node": name_of(node),
                    "missing_labels": missing,
                    "missing_taint": None if tainted else "{key}={value}:{effect}".format(**OPS_NODE_TAINT),
                }
            )
        elif not node_ready(node):
            not_ready.append(name_of(node))
    evidence = {"nodes": [name_of(n) for n in group_nodes], "wrong": wrong, "not_ready": not_ready}
    if wrong:
        return Result.failed(
            name, f"{len(wrong)} of {len(group_nodes)} ops node(s) lack the ops labels/taint", **evidence
        )
    if not_ready:
        return Result.pending(name, f"{len(not_ready)} of {len(group_nodes)} ops node(s) not Ready yet", **evidence)
    return Result.passed(name, f"{len(group_nodes)} ops node(s) Ready, labelled and tainted", **evidence)


def judge_controllers_on_ops(pods_by_group: Mapping[str, Sequence[KubeObject]], nodes: Sequence[KubeObject]) -> Result:
    """Every controller pod (Argo CD, Karpenter, LB controller) is Running and Ready on an ops node.

    ``pods_by_group`` maps a ``PodGroup.name`` to its pods. PENDING while a group has no running pod yet or a pod
    is unscheduled/not Ready; FAIL when a pod runs on a node that is not an ops node, or a controller's pod Failed
    (evicted, crashed for good: see ``failed_pods``), naming each.
    """
    name = CONTROLLERS_CHECK
    by_name = _nodes_by_name(nodes)
    misplaced: list[dict[str, str]] = []
    waiting: list[dict[str, str]] = []
    failed = [row for pods in pods_by_group.values() for row in failed_pods(pods)]
    empty = [
        group
        for group, pods in pods_by_group.items()
        if all((pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") for pod in pods)
    ]
    placement: dict[str, list[str]] = {}
    for group, pods in pods_by_group.items():
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue  # finished Job pods (e.g. Argo CD hooks) hold no place on a node
            node_name = (pod.get("spec") or {}).get("nodeName")
            placement.setdefault(group, []).append(f"{name_of(pod)} -> {node_name or '-'}")
            node = by_name.get(str(node_name)) if node_name else None
            if node is not None and not is_ops_node(node):
                misplaced.append({"pod": name_of(pod), "group": group, "node": str(node_name)})
            elif node is None or not pod_ready(pod):
                waiting.append({"pod": name_of(pod), "group": group, "state": pod_phase_summary(pod)})
    evidence = {
        "placement": placement,
        "misplaced": misplaced,
        "waiting": waiting,
        "failed": failed,
        "groups_without_pods": empty,
    }
    if misplaced:
        return Result.failed(name, f"{len(misplaced)} controller pod(s) run outside the ops nodes", **evidence)
    if failed:
        return Result.failed(name, f"{len(failed)} controller pod(s) Failed: {_failed_why(failed)}", **evidence)
    if empty:
        return Result.pending(name, f"no running pods yet for {', '.join(empty)}", **evidence)
    if waiting:
        return Result.pending(name, f"{len(waiting)} controller pod(s) not Running/Ready yet", **evidence)
    total = sum(len(v) for v in placement.values())
    return Result.passed(name, f"all {total} controller pod(s) Ready on ops nodes", **evidence)


def judge_workload_off_ops(
    pods: Sequence[KubeObject], nodes: Sequence[KubeObject], *, workload: str = "game-2048"
) -> Result:
    """No pod of ``workload`` is scheduled on an ops node (the taint keeps it off).

    PENDING while no pod of the workload is scheduled anywhere yet (nothing to judge); FAIL naming every pod
    that landed on an ops node, and every pod that Failed (a workload whose pods all Failed is not "none on ops").
    """
    name = off_ops_check(workload)
    failed = failed_pods(pods)
    by_name = _nodes_by_name(nodes)
    scheduled = [pod for pod in pods if (pod.get("spec") or {}).get("nodeName")]
    on_ops = [
        {"pod": name_of(pod), "node": str(pod["spec"]["nodeName"])}
        for pod in scheduled
        if is_ops_node(by_name.get(str(pod["spec"]["nodeName"]), {}))
    ]
    evidence = {
        "pods": {name_of(p): (p.get("spec") or {}).get("nodeName") for p in pods},
        "on_ops": on_ops,
        "failed": failed,
    }
    if on_ops:
        return Result.failed(name, f"{len(on_ops)} {workload} pod(s) run on ops nodes", **evidence)
    if failed:
        return Result.failed(name, f"{len(failed)} {workload} pod(s) Failed: {_failed_why(failed)}", **evidence)
    if not scheduled:
        return Result.pending(name, f"no {workload} pod is scheduled yet", **evidence)
    return Result.passed(name, f"{len(scheduled)} scheduled {workload} pod(s), none on ops nodes", **evidence)


def _container(pod: KubeObject, group: str, name: str) -> Mapping[str, Any]:
    source = (pod.get("spec") if group == "containers" else pod.get("status")) or {}
    return next((c for c in source.get(group) or [] if isinstance(c, Mapping) and c.get("name") == name), {})


def pinned_image_check(container: str = "game-2048") -> str:
    return f"{container} pods run the pinned image"


def judge_pinned_image(pods: Sequence[KubeObject], pinned: str, *, container: str = "game-2048") -> Result:
    """Every pod runs the image versions.yaml pins, and every replica runs the same bits.

    The digest each kubelet pulled is in ``status.containerStatuses[].imageID``. With a digest pin, each
    must be that digest; with a moving tag, replicas that Karpenter started later must still agree with the
    first ones (FAIL when they differ: the tag moved mid-run). PENDING until every pod has pulled.
    """
    name = pinned_image_check(container)
    if not pinned:
        return Result.failed(name, "versions.yaml pins no image for it, so nothing says what should run")
    if not pods:
        return Result.pending(name, f"no {container} pod yet")
    wrong = {name_of(p): _container(p, "containers", container).get("image") for p in pods}
    wrong = {pod: image for pod, image in wrong.items() if image != pinned}
    pulled = {name_of(p): str(_container(p, "containerStatuses", container).get("imageID") or "") for p in pods}
    digests = {pod: image_id.rpartition("@")[2] for pod, image_id in pulled.items() if "@sha256:" in image_id}
    evidence: dict[str, Any] = {"pinned": pinned, "digests": digests}
    if wrong:
        return Result.failed(
            name,
            f"{len(wrong)} pod(s) use another image than versions.yaml pins ({pinned}): "
            + ", ".join(f"{pod}={image}" for pod, image in sorted(wrong.items())),
            **evidence,
        )
    if len(digests) < len(pods):
        return Result.pending(name, f"{len(pods) - len(digests)} of {len(pods)} pod(s) have not pulled yet", **evidence)
    expected = pinned.rpartition("@")[2] if "@sha256:" in pinned else None
    off = sorted(pod for pod, digest in digests.items() if expected and digest != expected)
    if off:
        return Result.failed(
            name,
            f"{len(off)} pod(s) run a digest other than the pinned {expected}: "
            + ", ".join(f"{pod}={digests[pod]}" for pod in off),
            **evidence,
        )
    distinct = sorted(set(digests.values()))
    if len(distinct) > 1:
        return Result.failed(
            name,
            f"replicas run {len(distinct)} different images under the moving tag {pinned}: "
            "pin it by digest (harness pin-image)",
            **evidence,
        )
    note = "" if expected else f" (moving tag {pinned}: pin it with harness pin-image)"
    return Result.passed(name, f"all {len(pods)} pod(s) run {distinct[0]}{note}", **evidence)


def judge_ops_node_instances(nodes: Sequence[KubeObject], instances: Mapping[str, Mapping[str, Any]]) -> Result:
    """Each Node of a managed node group is a running EC2 instance of that group (``instances``: id ->
    DescribeInstances entry of the group's instances): its providerID (aws:///zone/id) names one."""
    group_nodes = [node for node in nodes if NODEGROUP_LABEL in labels_of(node)]
    found: dict[str, str] = {}
    problems: list[str] = []
    for node in group_nodes:
        provider = str((node.get("spec") or {}).get("providerID") or "")
        ident = provider.rsplit("/", 1)[1] if provider.startswith("aws:///") else ""
        state = str(((instances.get(ident) or {}).get("State") or {}).get("Name") or "")
        if state == "running":
            found[name_of(node)] = ident
        else:
            problems.append(f"{name_of(node)} ({provider or 'no providerID'}): {state or 'no instance of the group'}")
    evidence = {"nodes": found, "problems": problems, "group_instances": sorted(instances)}
    if not group_nodes:
        return Result.pending(OPS_INSTANCES_CHECK, "no node of a managed node group has registered yet", **evidence)
    if problems:
        return Result.failed(OPS_INSTANCES_CHECK, "; ".join(problems), **evidence)
    pairs = ", ".join(f"{node} = {ident}" for node, ident in found.items())
    return Result.passed(OPS_INSTANCES_CHECK, f"{len(found)} node(s), each a running instance: {pairs}", **evidence)


def judge_readiness_probes(deployment: KubeObject | None, pods: Sequence[KubeObject]) -> Result:
    """The Deployment's containers declare a readiness probe and its pods are Ready: the kubelet marks a pod Ready
    only once that probe answers. Without a probe, Ready says only that the process started."""
    name = READINESS_PROBE_CHECK
    if deployment is None:
        return Result.pending(name, "the Deployment does not exist yet")
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    unprobed = [str(c.get("name")) for c in containers if not c.get("readinessProbe")]
    probes = {str(c.get("name")): c.get("readinessProbe") for c in containers if c.get("readinessProbe")}
    if unprobed:
        return Result.failed(name, f"container(s) {', '.join(unprobed)} declare no readinessProbe", probes=probes)
    ready = [name_of(p) for p in pods if pod_ready(p)]
    if not pods or len(ready) < len(pods):
        return Result.pending(name, f"{len(ready)} of {len(pods)} pod(s) Ready", probes=probes)
    return Result.passed(name, f"{len(ready)} pod(s) Ready behind the readiness probe", probes=probes, ready=ready)
