"""Pods can be placed: selectors satisfiable, taints tolerated, NodePools sound, controllers on ops nodes."""

from __future__ import annotations

from collections.abc import Iterator

from harness.gate.facts import (
    NodeSourceIndex,
    Placement,
    controller_placements,
    fits,
    node_classes,
    node_pools,
    node_sources,
    workload_placements,
)
from harness.gate.model import Model, as_dict, as_list
from harness.gate.rules import Issue, rule
from harness.keys import CAPACITY_TYPE_LABEL


def _describe(placement: Placement) -> str:
    parts = [f"nodeSelector {placement.node_selector}"] if placement.node_selector else []
    if placement.affinity_terms:
        parts.append("required node affinity")
    parts.append(f"{len(placement.tolerations)} toleration(s)")
    return ", ".join(parts)


@rule("EKS008", "every pod's node selection is satisfiable by some node group or NodePool")
def satisfiable(model: Model) -> Iterator[Issue]:
    """A pod whose nodeSelector or required node affinity no node can satisfy, or that tolerates none of
    the taints of the nodes that would satisfy it, stays Pending forever (Karpenter logs "incompatible
    with nodepool" and launches nothing). Checked for workload manifests and for the controller pods of
    the Helm releases (Karpenter, AWS Load Balancer Controller, Argo CD; chart defaults included) against
    the EKS node groups (their labels, taints and the labels EKS adds) and the NodePools (template labels,
    requirements, taints and the labels Karpenter adds)."""
    sources = node_sources(model)
    if not sources:
        return
    placements = [*workload_placements(model), *(p for _chart, p in controller_placements(model))]
    fitting = NodeSourceIndex(sources)
    for placement in placements:
        if not fitting.any_fits(placement):
            yield Issue(
                f"{placement.label}: no node group or NodePool satisfies {_describe(placement)} "
                f"(nodes: {', '.join(s.label for s in sources)})",
                placement.location,
                "select labels a node group or NodePool carries and tolerate its taints",
            )


@rule("EKS009", "NodePool nodeClassRef names an EC2NodeClass that exists")
def node_class_ref(model: Model) -> Iterator[Issue]:
    """A NodePool launches nodes from the EC2NodeClass its `spec.template.spec.nodeClassRef` names
    (group `karpenter.k8s.aws`, kind `EC2NodeClass`). A reference to a class that is not among the
    manifests leaves the NodePool not ready and pods pending."""
    classes = {c.name for c in node_classes(model)}
    for pool in node_pools(model):
        ref = pool.get("spec", "template", "spec", "nodeClassRef")
        if not isinstance(ref, dict):
            continue
        problems = []
        if ref.get("group") != "karpenter.k8s.aws" or ref.get("kind") != "EC2NodeClass":
            problems.append(f"refers to {ref.get('group')}/{ref.get('kind')}, not karpenter.k8s.aws/EC2NodeClass")
        if ref.get("name") not in classes:
            problems.append(
                f"names EC2NodeClass {ref.get('name')!r}, which no manifest defines "
                f"(defined: {', '.join(sorted(classes)) or 'none'})"
            )
        for problem in problems:
            yield Issue(
                f"{pool.label}: nodeClassRef {problem}",
                pool.where("spec", "template", "spec", "nodeClassRef"),
                "point nodeClassRef at an EC2NodeClass in the GitOps tree",
            )


@rule("EKS019", "pods that Karpenter must make room for declare resource requests")
def resource_requests(model: Model) -> Iterator[Issue]:
    """Karpenter sizes nodes from pod requests, not usage. A container without cpu and memory requests
    counts as zero: Karpenter packs such pods onto too few, too small nodes (or launches nothing for a
    scale-out), and the pods then fight over resources. Every container of a workload that can land on a
    NodePool must request cpu and memory."""
    pools = NodeSourceIndex([s for s in node_sources(model) if s.karpenter])
    for placement in workload_placements(model):
        if not pools.any_fits(placement):
            continue
        for index, container in enumerate(placement.containers):
            requests = as_dict(as_dict(container.get("resources")).get("requests"))
            missing = [r for r in ("cpu", "memory") if r not in requests]
            if missing and placement.manifest is not None:
                yield Issue(
                    f"{placement.label}: container {container.get('name', index)!r} has no {' or '.join(missing)} "
                    "request, so Karpenter cannot size nodes for it",
                    placement.manifest.where(*placement.pod_path, "containers", index),
                    f"set resources.requests.{' and '.join(missing)} on the container",
                )


@rule("EKS024", "NodePools launch spot capacity only")
def spot_only(model: Model) -> Iterator[Issue]:
    """The platform's cost model runs workloads on spot instances only: a NodePool must carry the
    requirement `karpenter.sh/capacity-type` `In` `["spot"]`. Without it Karpenter may launch on-demand
    capacity (and it prefers on-demand when spot is short), multiplying the bill of a scale-out."""
    for pool in node_pools(model):
        requirements = pool.list("spec", "template", "spec", "requirements")
        capacity = [r for r in requirements if isinstance(r, dict) and r.get("key") == CAPACITY_TYPE_LABEL]
        spot_only_requirement = any(
            r.get("operator") == "In" and list(as_list(r.get("values"))) == ["spot"] for r in capacity
        )
        if not spot_only_requirement:
            yield Issue(
                f"{pool.label}: capacity type is not restricted to spot",
                pool.where("spec", "template", "spec", "requirements"),
                'add requirement {key: karpenter.sh/capacity-type, operator: In, values: ["spot"]}',
            )


@rule("EKS025", "controllers run on the ops node group, never on Karpenter nodes")
def controllers_on_ops(model: Model) -> Iterator[Issue]:
    """Argo CD, Karpenter and the AWS Load Balancer Controller must run on the Terraform-managed ops node
    group. Karpenter on a node it manages can evict itself during consolidation and never come back; Argo
    CD or the controller on spot nodes stalls syncs and target registration on every interruption. Each
    controller pod's placement must fit an EKS node group and must not fit any NodePool (select the ops
    labels, tolerate the ops taint, do not tolerate the NodePool taints)."""
    sources = node_sources(model)
    groups = [s for s in sources if not s.karpenter]
    pools = [s for s in sources if s.karpenter]
    if not groups:
        return
    for _chart, placement in controller_placements(model):
        landing = [p.label for p in pools if fits(placement, p)]
        if landing:
            yield Issue(
                f"{placement.label}: may be scheduled on {', '.join(landing)}",
                placement.location,
                "pin it to the ops node group with a nodeSelector on an ops label (and tolerate the ops taint)",
            )
