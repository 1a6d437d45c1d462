"""Derived facts several rules share: clusters, subnets, security groups, node sources, pod placement.

Pure functions over the model; nothing here reads files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.gate.hcl import Unknown, as_mapping, decoded, is_known
from harness.gate.model import Location, Manifest, Model, TfResource, as_dict, as_list, text
from harness.gate.values import deep_merge
from harness.keys import CAPACITY_TYPE_LABEL, NODEPOOL_LABEL

ANY = "*"  # a label a node source may carry with any value
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
KARPENTER_CHART = "karpenter"
LB_CHART = "aws-load-balancer-controller"
ARGO_CHART = "argo-cd"
# Argo CD chart components that run pods; each falls back to global.* placement when its own is empty.
ARGO_COMPONENTS = (
    "controller",
    "server",
    "repoServer",
    "applicationSet",
    "redis",
    "dex",
    "notifications",
    "commitServer",
)


def resolved(value: Any) -> str | None:
    """A static string that is not an unrendered template."""
    result = text(decoded(value))
    return None if result is None or "{{" in result else result


def cluster_names(model: Model) -> set[str]:
    return {n for r in model.terraform.of_type("aws_eks_cluster") if (n := resolved(r.get("name")))}


@dataclass
class TaggedResource:
    """Something selectable by tags: a subnet or a security group."""

    label: str
    tags: dict[str, Any]
    location: Location
    zone: str | None = None
    resource: TfResource | None = None


def _tags(resource: TfResource) -> dict[str, Any]:
    return {str(k): decoded(v) for k, v in resource.tags.items()}


def subnets(model: Model) -> list[TaggedResource]:
    return [
        TaggedResource(r.address, _tags(r), Location(r.file, r.line), resolved(r.get("availability_zone")), r)
        for r in model.terraform.of_type("aws_subnet")
    ]


def security_groups(model: Model) -> list[TaggedResource]:
    """Security groups with their tags, including the EKS cluster security group and aws_ec2_tag additions."""
    groups = [
        TaggedResource(r.address, _tags(r), Location(r.file, r.line), None, r)
        for r in model.terraform.of_type("aws_security_group")
    ]
    cluster_groups: dict[str, TaggedResource] = {}
    for cluster in model.terraform.of_type("aws_eks_cluster"):
        name = resolved(cluster.get("name")) or cluster.name
        tags = {f"kubernetes.io/cluster/{name}": "owned", "aws:eks:cluster-name": name, **as_mapping(cluster.tags)}
        group = TaggedResource(
            f"{cluster.address} (cluster security group)",
            dict(tags),
            Location(cluster.file, cluster.line),
            None,
            cluster,
        )
        cluster_groups[f"{cluster.type}.{cluster.name}"] = group
        groups.append(group)
    for tag in model.terraform.of_type("aws_ec2_tag"):
        target = tag.attrs.get("resource_id")
        reference = target.text if isinstance(target, Unknown) else str(target)
        if "security_group" not in reference:
            continue
        key, value = resolved(tag.get("key")), decoded(tag.get("value"))
        if key is None:
            continue
        owner = next((g for address, g in cluster_groups.items() if address in reference), None)
        if owner is None:
            owner = next(
                (g for g in groups if g.resource is not None and f"{g.resource.type}.{g.resource.name}." in reference),
                None,
            )
        if owner is None:
            owner = TaggedResource(f"{reference} (tagged by {tag.address})", {}, Location(tag.file, tag.line))
            groups.append(owner)
        owner.tags[key] = value
    return groups


def tags_match(selector: Mapping[str, Any], tags: Mapping[str, Any]) -> bool | None:
    """Karpenter tag selector semantics ("*" matches any value); None when a value is not static."""
    for key, wanted in selector.items():
        wanted_text = resolved(wanted)
        if wanted_text is None:
            return None
        if key not in tags:
            return False
        actual = tags[key]
        if not is_known(actual):
            return None
        if wanted_text != ANY and str(decoded(actual)) != wanted_text:
            return False
    return True


def node_classes(model: Model) -> list[Manifest]:
    return [m for m in model.effective if m.kind == "EC2NodeClass" and m.group == "karpenter.k8s.aws"]


def node_pools(model: Model) -> list[Manifest]:
    return [m for m in model.effective if m.kind == "NodePool" and m.group == "karpenter.sh"]


@dataclass
class NodeSource:
    """Nodes that may exist: an EKS node group or a Karpenter NodePool, with label possibilities and taints."""

    label: str
    labels: dict[str, set[str]]  # key -> possible values ({ANY} = any value)
    taints: list[dict[str, str]]
    karpenter: bool
    location: Location
    excluded: dict[str, set[str]] = field(default_factory=dict)  # values ruled out (NotIn)

    def can_have(self, key: str, operator: str, values: list[str]) -> bool:
        possible = self.labels.get(key)
        if operator == "Exists":
            return possible is not None
        if operator == "DoesNotExist":
            return possible is None
        if operator == "In":
            if possible is None:
                return False
            open_value = ANY in possible and not set(values) <= self.excluded.get(key, set())
            return open_value or bool(possible & set(values))
        if operator == "NotIn":
            return possible is None or ANY in possible or bool(possible - set(values))
        if operator in ("Gt", "Lt"):
            return possible is not None
        return True


_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def node_sources(model: Model) -> list[NodeSource]:
    sources: list[NodeSource] = []
    for group in model.terraform.of_type("aws_eks_node_group"):
        name = resolved(group.get("node_group_name")) or group.name
        labels: dict[str, set[str]] = {
            str(k): {str(decoded(v))} if is_known(v) else {ANY} for k, v in as_mapping(group.get("labels")).items()
        }
        ami = resolved(group.get("ami_type")) or ""
        capacity = (resolved(group.get("capacity_type")) or "ON_DEMAND").upper()
        labels.update(
            {
                "eks.amazonaws.com/nodegroup": {name},
                "eks.amazonaws.com/capacityType": {capacity},
                "kubernetes.io/os": {"windows" if "WINDOWS" in ami else "linux"},
                "kubernetes.io/arch": {"arm64" if "ARM" in ami else "amd64"},
                "topology.kubernetes.io/zone": {ANY},
                "topology.kubernetes.io/region": {ANY},
                "node.kubernetes.io/instance-type": {ANY},
                "kubernetes.io/hostname": {ANY},
            }
        )
        instance_types = decoded(group.get("instance_types"))
        if isinstance(instance_types, list) and is_known(instance_types):
            labels["node.kubernetes.io/instance-type"] = {str(t) for t in instance_types}
        taints = []
        raw_taints = group.attrs.get("taint")
        for taint in raw_taints if isinstance(raw_taints, list) else []:
            taint = as_mapping(taint)
            effect = str(taint.get("effect", ""))
            taints.append(
                {
                    "key": str(taint.get("key", "")),
                    "value": str(taint.get("value", "") or ""),
                    "effect": _EFFECTS.get(effect, effect),
                }
            )
        sources.append(NodeSource(f"node group {name}", labels, taints, False, Location(group.file, group.line)))
    for pool in node_pools(model):
        template_spec = pool.map("spec", "template", "spec")
        labels = {str(k): {str(v)} for k, v in (pool.map("spec", "template", "metadata", "labels")).items()}
        labels.update(
            {
                NODEPOOL_LABEL: {pool.name},
                CAPACITY_TYPE_LABEL: {"spot", "on-demand", "reserved"},
                "kubernetes.io/os": {"linux"},
                "kubernetes.io/arch": {"amd64", "arm64"},
                "topology.kubernetes.io/zone": {ANY},
                "topology.kubernetes.io/region": {ANY},
                "node.kubernetes.io/instance-type": {ANY},
                "kubernetes.io/hostname": {ANY},
            }
        )
        for key in (
            "instance-category",
            "instance-family",
            "instance-generation",
            "instance-size",
            "instance-cpu",
            "instance-memory",
            "instance-hypervisor",
        ):
            labels[f"karpenter.k8s.aws/{key}"] = {ANY}
        excluded: dict[str, set[str]] = {}
        for requirement in as_list(template_spec.get("requirements")):
            if not isinstance(requirement, dict):
                continue
            key, operator = str(requirement.get("key")), requirement.get("operator")
            values = {str(v) for v in as_list(requirement.get("values"))}
            if operator == "In":
                current = labels.get(key, {ANY})
                labels[key] = values if ANY in current else (current & values)
            elif operator == "NotIn":
                if key in labels and ANY not in labels[key]:
                    labels[key] = labels[key] - values
                excluded.setdefault(key, set()).update(values)
            elif operator == "Exists":
                labels.setdefault(key, {ANY})
            elif operator == "DoesNotExist":
                labels.pop(key, None)
        taints = [
            {"key": str(t.get("key", "")), "value": str(t.get("value", "") or ""), "effect": str(t.get("effect", ""))}
            for t in as_list(template_spec.get("taints"))
            if isinstance(t, dict)
        ]
        sources.append(
            NodeSource(f"NodePool {pool.name}", labels, taints, True, pool.where("spec", "template"), excluded)
        )
    return sources


@dataclass
class Placement:
    """Where one pod wants to run: nodeSelector, required node affinity terms, tolerations."""

    label: str
    node_selector: dict[str, str]
    affinity_terms: list[list[dict[str, Any]]]  # OR of ANDed matchExpressions
    tolerations: list[dict[str, Any]]
    location: Location
    containers: list[dict[str, Any]] = field(default_factory=list)
    manifest: Manifest | None = None
    pod_path: tuple[Any, ...] = ()


def tolerates(tolerations: list[dict[str, Any]], taint: Mapping[str, str]) -> bool:
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
        key, operator = toleration.get("key"), toleration.get("operator", "Equal")
        effect = toleration.get("effect")
        if effect not in (None, "", taint["effect"]):
            continue
        if key in (None, "") and operator == "Exists":
            return True
        if key != taint["key"]:
            continue
        if operator == "Exists" or str(toleration.get("value", "") or "") == taint["value"]:
            return True
    return False


def fits(placement: Placement, source: NodeSource) -> bool:
    """Could the pod be scheduled on nodes of this source (labels satisfiable, hard taints tolerated)?"""
    for key, value in placement.node_selector.items():
        if not source.can_have(str(key), "In", [str(value)]):
            return False
    if placement.affinity_terms and not any(
        all(
            source.can_have(str(e.get("key")), str(e.get("operator")), [str(v) for v in as_list(e.get("values"))])
            for e in term
        )
        for term in placement.affinity_terms
    ):
        return False
    return all(
        tolerates(placement.tolerations, taint)
        for taint in source.taints
        if taint["effect"] in ("NoSchedule", "NoExecute")
    )


class NodeSourceIndex:
    """Node sources by the labels they can carry: a pod's first nodeSelector label rules out every source
    without it, so matching many pods against many NodePools stays linear."""

    def __init__(self, sources: Sequence[NodeSource]) -> None:
        self.sources = list(sources)
        self._by_label: dict[tuple[str, str], list[NodeSource]] = {}
        self._any_value: dict[str, list[NodeSource]] = {}
        for source in self.sources:
            for key, possible in source.labels.items():
                for value in possible:
                    if value == ANY:
                        self._any_value.setdefault(key, []).append(source)
                    else:
                        self._by_label.setdefault((key, value), []).append(source)

    def any_fits(self, placement: Placement) -> bool:
        """any(fits(placement, source) for source in sources)"""
        candidates = self.sources
        if placement.node_selector:
            key, value = map(str, next(iter(placement.node_selector.items())))
            candidates = [*self._by_label.get((key, value), []), *self._any_value.get(key, [])]
        return any(fits(placement, source) for source in candidates)


def _affinity_terms(affinity: Any) -> list[list[dict[str, Any]]]:
    node_affinity = as_dict(as_dict(affinity).get("nodeAffinity"))
    required = as_dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = [as_dict(t) for t in as_list(required.get("nodeSelectorTerms"))]
    return [[e for e in as_list(t.get("matchExpressions")) if isinstance(e, dict)] for t in terms]


def pod_spec_path(manifest: Manifest) -> tuple[Any, ...] | None:
    if manifest.kind == "Pod":
        return ("spec",)
    if manifest.kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template", "spec")
    if manifest.kind in WORKLOAD_KINDS:
        return ("spec", "template", "spec")
    return None


def workload_placements(model: Model) -> Iterator[Placement]:
    for manifest in model.effective:
        path = pod_spec_path(manifest)
        spec = manifest.get(*path) if path else None
        if path is None or not isinstance(spec, dict) or manifest.kind == "DaemonSet":
            continue
        yield Placement(
            manifest.label,
            {str(k): str(v) for k, v in as_dict(spec.get("nodeSelector")).items()},
            _affinity_terms(spec.get("affinity")),
            [t for t in as_list(spec.get("tolerations")) if isinstance(t, dict)],
            manifest.where(*path),
            [c for c in as_list(spec.get("containers")) if isinstance(c, dict)],
            manifest,
            path,
        )


def chart_values(model: Model, chart: str) -> tuple[TfResource, dict[str, Any]] | None:
    """A release's values over the pinned chart defaults (what the chart templates see)."""
    found = model.release_for(chart)
    if found is None:
        return None
    release, values = found
    defaults = copy.deepcopy(model.reference.chart_values.get(chart, ("", {}))[1])
    return release, deep_merge(defaults, values.values)


def controller_placements(model: Model) -> Iterator[tuple[str, Placement]]:
    """(chart, placement) for every controller pod the Terraform Helm releases run."""
    for chart in (KARPENTER_CHART, LB_CHART):
        found = chart_values(model, chart)
        if found is not None:
            release, values = found
            yield chart, _values_placement(f"{release.address} ({chart} controller)", values, release)
    found = chart_values(model, ARGO_CHART)
    if found is not None:
        release, values = found
        global_values = as_mapping(values.get("global"))
        for component in ARGO_COMPONENTS:
            own = as_mapping(values.get(component))
            if not own or own.get("enabled") is False:
                continue
            merged = {
                key: own.get(key) or global_values.get(key) for key in ("nodeSelector", "tolerations", "affinity")
            }
            yield ARGO_CHART, _values_placement(f"{release.address} (argo-cd {component})", merged, release)


def _values_placement(label: str, values: Mapping[str, Any], release: TfResource) -> Placement:
    selector = as_mapping(values.get("nodeSelector"))
    tolerations = decoded(values.get("tolerations"))
    return Placement(
        label,
        {str(k): str(decoded(v)) for k, v in selector.items() if is_known(v)},
        _affinity_terms(decoded(values.get("affinity"))),
        [t for t in tolerations if isinstance(t, dict)] if isinstance(tolerations, list) else [],
        Location(release.file, release.line_of("values")),
    )
