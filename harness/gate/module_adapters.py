"""Well-known registry modules (terraform-aws-modules vpc, eks, eks//modules/karpenter) seen as resources.

Their source is not on disk, so the gate models what they create from their inputs and documented
defaults: subnets and their tags, the cluster and its endpoint, the node security group, managed node
groups (labels, taints, the module's launch template), the Karpenter node role and queue. Only what the
rules need; everything else stays unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.gate.hcl import Unknown, decoded
from harness.gate.model import as_dict, as_list

Inputs = Callable[[str], Any]  # an input's evaluated value, or None when the call does not set it


@dataclass
class Synthesized:
    """A resource a registry module creates: its arguments and which module input set each of them."""

    type: str
    name: str
    attrs: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)  # attribute path -> module input it came from


@dataclass
class Expansion:
    resources: list[Synthesized]
    outputs: dict[str, Any]


def _first(inputs: Inputs, *names: str, default: Any = None) -> Any:
    for name in names:
        value = inputs(name)
        if value is not None:
            return value
    return default


def _vpc(inputs: Inputs) -> Expansion:
    zones = as_list(decoded(inputs("azs")))
    tags = as_dict(decoded(inputs("tags")))
    resources = []
    for kind in ("private", "public"):
        extra = as_dict(decoded(inputs(f"{kind}_subnet_tags")))
        for index, cidr in enumerate(as_list(decoded(inputs(f"{kind}_subnets")))):
            zone = zones[index % len(zones)] if zones else Unknown(f"azs[{index}]")
            resources.append(
                Synthesized(
                    "aws_subnet",
                    f"{kind}[{index}]",
                    {"cidr_block": cidr, "availability_zone": zone, "tags": {**tags, **extra}},
                    {"tags": f"{kind}_subnet_tags", "cidr_block": f"{kind}_subnets"},
                )
            )
    return Expansion(resources, {})


# terraform-aws-modules/eks: managed node groups get the module's launch template, whose metadata
# options default to IMDSv2 with hop limit 2.
_EKS_NODE_METADATA = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2}
_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


def _eks(inputs: Inputs) -> Expansion:
    name = _first(inputs, "cluster_name", "name")
    tags = as_dict(decoded(inputs("tags")))
    public = _first(inputs, "cluster_endpoint_public_access", "endpoint_public_access", default=False)
    cidrs = _first(
        inputs, "cluster_endpoint_public_access_cidrs", "endpoint_public_access_cidrs", default=["0.0.0.0/0"]
    )
    resources = [
        Synthesized(
            "aws_eks_cluster",
            "this",
            {
                "name": name,
                "version": _first(inputs, "cluster_version", "kubernetes_version"),
                "tags": tags,
                "vpc_config": [{"endpoint_public_access": public, "public_access_cidrs": cidrs}],
            },
            {
                "vpc_config.public_access_cidrs": "cluster_endpoint_public_access_cidrs",
                "vpc_config": "cluster_endpoint_public_access",
                "name": "cluster_name",
                "version": "cluster_version",
            },
        )
    ]
    if _first(inputs, "create_node_security_group", default=True) is not False:
        cluster_tag = {f"kubernetes.io/cluster/{name}": "owned"} if isinstance(name, str) else {}
        node_tags = as_dict(decoded(inputs("node_security_group_tags")))
        resources.append(
            Synthesized(
                "aws_security_group",
                "node",
                {"tags": {**tags, **cluster_tag, **node_tags}},
                {"tags": "node_security_group_tags"},
            )
        )
    defaults = as_dict(decoded(inputs("eks_managed_node_group_defaults")))
    for key, group in as_dict(decoded(inputs("eks_managed_node_groups"))).items():
        group = {**defaults, **as_dict(group)}
        taints = group.get("taints")
        taint_list = list(as_dict(taints).values()) if isinstance(taints, dict) else as_list(taints)
        resources.append(
            Synthesized(
                "aws_eks_node_group",
                key,
                {
                    "node_group_name": group.get("name", key),
                    "labels": as_dict(group.get("labels")),
                    "taint": [
                        {
                            **as_dict(t),
                            "effect": _TAINT_EFFECTS.get(str(as_dict(t).get("effect")), as_dict(t).get("effect")),
                        }
                        for t in taint_list
                    ],
                    "capacity_type": group.get("capacity_type", "ON_DEMAND"),
                    "instance_types": group.get("instance_types", ["t3.medium"]),
                    "ami_type": group.get("ami_type", "AL2023_x86_64_STANDARD"),
                    "launch_template": [{"id": Unknown(f"module launch template {key}")}],
                },
                {"labels": "eks_managed_node_groups", "taint": "eks_managed_node_groups"},
            )
        )
        resources.append(
            Synthesized(
                "aws_launch_template",
                key,
                {
                    "metadata_options": [{**_EKS_NODE_METADATA, **as_dict(group.get("metadata_options"))}],
                },
                {
                    "metadata_options": "eks_managed_node_groups",
                    "metadata_options.http_put_response_hop_limit": "eks_managed_node_groups",
                    "metadata_options.http_tokens": "eks_managed_node_groups",
                },
            )
        )
    return Expansion(resources, {"cluster_name": name})


def _karpenter(inputs: Inputs) -> Expansion:
    cluster = inputs("cluster_name")
    resources = []
    outputs: dict[str, Any] = {}
    if _first(inputs, "create_node_iam_role", default=True) is not False:
        role = _first(inputs, "node_iam_role_name", default=f"KarpenterNodeRole-{cluster}" if cluster else None)
        exact = _first(inputs, "node_iam_role_use_name_prefix", default=True) is False
        name = role if exact and isinstance(role, str) else Unknown(f"{role}-<random suffix>")
        resources.append(Synthesized("aws_iam_role", "node", {"name": name}, {"name": "node_iam_role_name"}))
        outputs["node_iam_role_name"] = name
    if _first(inputs, "enable_spot_termination", default=True) is not False:
        queue = _first(inputs, "queue_name", default=f"Karpenter-{cluster}" if isinstance(cluster, str) else None)
        resources.append(Synthesized("aws_sqs_queue", "this", {"name": queue}, {"name": "queue_name"}))
        outputs["queue_name"] = queue
    return Expansion(resources, outputs)


_MODULES: list[tuple[re.Pattern[str], Callable[[Inputs], Expansion]]] = [
    (re.compile(r"^(registry\.terraform\.io/)?terraform-aws-modules/vpc/aws$"), _vpc),
    (re.compile(r"^(registry\.terraform\.io/)?terraform-aws-modules/eks/aws//modules/karpenter$"), _karpenter),
    (re.compile(r"^(registry\.terraform\.io/)?terraform-aws-modules/eks/aws$"), _eks),
]


def adapter(source: str) -> Callable[[Inputs], Expansion] | None:
    """The model of a registry module source, if the gate knows it."""
    return next((expand for pattern, expand in _MODULES if pattern.match(source)), None)
