"""Subnets and security groups that Karpenter selects and load balancers land in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.gate.facts import TaggedResource, node_classes, resolved, security_groups, subnets, tags_match
from harness.gate.model import Manifest, Model
from harness.gate.rules import Issue, rule
from harness.keys import ELB_SUBNET_TAG, INTERNAL_ELB_SUBNET_TAG


def _selector_terms(node_class: Manifest, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, term in enumerate(node_class.list("spec", field)):
        if isinstance(term, dict) and isinstance(term.get("tags"), dict) and "id" not in term:
            yield index, term["tags"]


def _unmatched(model: Model, field: str, candidates: list[TaggedResource], what: str) -> Iterator[Issue]:
    if not candidates:
        return  # no Terraform for this layer: nothing to compare with
    for node_class in node_classes(model):
        for index, selector in _selector_terms(node_class, field):
            results = [tags_match(selector, c.tags) for c in candidates]
            if any(r is None for r in results) or any(results):
                continue
            wanted = ", ".join(f"{k}={resolved(v)}" for k, v in selector.items())
            have = sorted({f"{k}={v}" for c in candidates for k, v in c.tags.items() if k in selector})
            yield Issue(
                f"{node_class.label}: {field}[{index}] selects {what} tagged {wanted}, but no Terraform {what} has "
                f"those tags (found: {', '.join(have) or 'none with these keys'})",
                node_class.where("spec", field, index, "tags"),
                f"tag the {what} in Terraform with {wanted}, or change the selector to the tags they carry",
            )


@rule("EKS002", "EC2NodeClass subnet selectors match subnets Terraform tags")
def subnet_selectors(model: Model) -> Iterator[Issue]:
    """Karpenter launches nodes only into subnets whose tags match an EC2NodeClass `subnetSelectorTerms`
    term. When no Terraform subnet carries the selected tags (a misspelt key, the wrong cluster name, the
    tag put on the VPC instead) Karpenter reports no subnets, pods stay Pending and nothing says why until
    you read the controller log. Each tag term must match at least one `aws_subnet` (its `tags` plus the
    provider's `default_tags`); `*` matches any value."""
    yield from _unmatched(model, "subnetSelectorTerms", subnets(model), "subnet")


@rule("EKS003", "EC2NodeClass security group selectors match security groups Terraform tags")
def security_group_selectors(model: Model) -> Iterator[Issue]:
    """Karpenter attaches the security groups that match the EC2NodeClass `securityGroupSelectorTerms`.
    A term that matches no security group (tags on `aws_security_group`, the provider's `default_tags`,
    `aws_ec2_tag` resources, and the EKS cluster security group) leaves Karpenter unable to launch
    anything."""
    yield from _unmatched(model, "securityGroupSelectorTerms", security_groups(model), "security group")


@rule("EKS004", "exactly one security group is selected for Karpenter nodes")
def one_discovery_group(model: Model) -> Iterator[Issue]:
    """The security group selector of an EC2NodeClass must select exactly one security group. When the
    discovery tag lands on several groups (most often through the provider's `default_tags`, or by tagging
    both the cluster security group and a node group), Karpenter attaches all of them, and the AWS Load
    Balancer Controller fails to register targets with "expected exactly one securityGroup tagged with
    kubernetes.io/cluster/<name>". Put the discovery tag on one group only."""
    groups = security_groups(model)
    if not groups:
        return
    for node_class in node_classes(model):
        terms = list(_selector_terms(node_class, "securityGroupSelectorTerms"))
        if not terms:
            continue
        selected: list[TaggedResource] = []
        for _index, selector in terms:
            results = [(g, tags_match(selector, g.tags)) for g in groups]
            if any(r is None for _g, r in results):
                break
            selected.extend(g for g, r in results if r and g not in selected)
        else:
            if any(g.resource is not None and g.resource.count_unknown for g in selected):
                continue  # how many groups there are is known only at apply time
            if len(selected) > 1:
                yield Issue(
                    f"{node_class.label}: securityGroupSelectorTerms select {len(selected)} security groups "
                    f"({', '.join(g.label for g in selected)})",
                    node_class.where("spec", "securityGroupSelectorTerms"),
                    "keep the discovery tag on exactly one security group (not in provider default_tags)",
                )


@rule("EKS011", "internet-facing Ingresses have public subnets tagged for ELB in two or more zones")
def load_balancer_subnets(model: Model) -> Iterator[Issue]:
    """An ALB needs subnets in at least two Availability Zones. The AWS Load Balancer Controller finds them
    by tag: `kubernetes.io/role/elb` for `alb.ingress.kubernetes.io/scheme: internet-facing` and
    `kubernetes.io/role/internal-elb` for internal ones. Without two tagged subnets in distinct zones the
    Ingress never gets an address ("couldn't auto-discover subnets: unable to resolve at least one subnet").
    Subnets whose zone is only known at apply time count as distinct zones; when the number of subnets is
    known only at apply time (a `count` over an unknown list) the rule cannot judge and stays silent."""
    candidates = subnets(model)
    if not candidates:
        return
    for ingress in (m for m in model.effective if m.kind == "Ingress"):
        annotations = ingress.map("metadata", "annotations")
        if "alb.ingress.kubernetes.io/subnets" in annotations:
            continue
        scheme = annotations.get("alb.ingress.kubernetes.io/scheme", "internal")
        role = ELB_SUBNET_TAG if scheme == "internet-facing" else INTERNAL_ELB_SUBNET_TAG
        tagged = [s for s in candidates if str(s.tags.get(role, "")) in ("1", "") and role in s.tags]
        if any(s.resource is not None and s.resource.count_unknown for s in tagged):
            continue  # how many subnets there are is known only at apply time
        zones = {s.zone for s in tagged if s.zone} | {s.label for s in tagged if not s.zone}
        if len(zones) < 2:
            yield Issue(
                f"{ingress.label}: {scheme} ALB needs subnets tagged {role}=1 in at least 2 zones; Terraform tags "
                f"{len(tagged)} subnet(s) in {len(zones)} zone(s)",
                ingress.where("metadata", "annotations", "alb.ingress.kubernetes.io/scheme"),
                f"tag one {'public' if scheme == 'internet-facing' else 'private'} subnet per zone (>= 2 zones) "
                f'with {role} = "1"',
            )
