"""What a run created, from the records that say so, and the tags AWS reports on each: the thin I/O behind the
run-tags judgement (harness.aws.checks.judge_run_tags).

Two records name what a run created: Terraform's state of infra/platform (every managed resource whose values carry
`tags_all`: taggable, and given the provider's default_tags), and the controllers' own records (Karpenter's
NodeClaims -> instances and their volumes, its launch templates; the Ingress's ALB -> its target groups and security
groups). Each resource is named by that record and by how AWS names it (id, ARN).

The tags come from AWS, never from the record, through one read path: the Resource Groups Tagging API
(GetResources filtered on the run's id, harness.aws.leaks.find_tagged), matched by ARN, or for an EC2 resource by
the ARN's last part (its id). Two exceptions read a service's own tags API instead:
- IAM, always: AWS documents that GetResources does not cover IAM roles, policies and instance profiles.
- what the tagging API leaves out on a target that declares it incomplete (infra/targets.yaml
  `resource_tagging_api`: the emulator's lists no EKS, IAM or EventBridge resources, elastic IPs, launch templates
  or security group rules).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from harness.aws.clients import AwsTarget
from harness.aws.leaks import ClientFactory, arn_type, find_tagged, is_gone, pages, tag_map
from harness.keys import NODECLASS_TAG
from harness.terraform.runner import state_resources

RESOURCE_TAGGING_API = "resource_tagging_api"  # infra/targets.yaml: a target whose GetResources misses some types
ARN_ATTRIBUTES = ("arn", "access_entry_arn", "association_arn")  # where a resource's ARN is in its state values
# How Karpenter 1.14 finds its own launch templates (pkg/providers/launchtemplate: hydrateCache, DeleteAll): the
# cluster's name and the EC2NodeClass's, both tags it puts on every template it creates.
KARPENTER_CLUSTER_TAG = "eks:eks-cluster-name"
DESCRIBE_TAGS_IDS = 200  # resource ids per DescribeTags filter


@dataclass(frozen=True)
class CreatedResource:
    """One resource a run created: `record` says who created it (a Terraform address, a NodeClaim, the Ingress's
    ALB), `id` and `arn` how AWS names it (no ARN: an EC2 id, e.g. a NAT gateway's state has none)."""

    record: str
    id: str
    arn: str = ""

    @property
    def label(self) -> str:
        return f"{self.record} {self.id}" if self.id else self.record

    @property
    def service(self) -> str:
        return self.arn.split(":")[2] if self.arn.count(":") >= 5 else "ec2"


@dataclass(frozen=True)
class TagReading:
    """The tags AWS reports on each resource (by label), which were read through their service's own API, and
    which the tagging API does not list with the run's id (their tags are then {})."""

    tags: Mapping[str, Mapping[str, str]]
    own_api: Sequence[str] = ()
    unlisted: Sequence[str] = ()


def taggable_resources(state: Mapping[str, Any]) -> list[CreatedResource]:
    """The managed resources of a `terraform show -json` state whose values carry `tags_all`."""
    found = []
    for resource in state_resources(state):
        values = resource.get("values") or {}
        if resource.get("mode") != "managed" or "tags_all" not in values:
            continue
        arn = next((str(values[k]) for k in ARN_ATTRIBUTES if str(values.get(k) or "").startswith("arn:")), "")
        found.append(CreatedResource(str(resource["address"]), str(values.get("id") or ""), arn))
    return found


def read_tags(target: AwsTarget, resources: Sequence[CreatedResource], run_id: str) -> TagReading:
    """Each resource's tags as AWS reports them ({} when nothing lists it with the run's id)."""
    listed = find_tagged(target.client, run_id)
    by_ec2_id = {arn.rsplit("/", 1)[-1]: tags for arn, tags in listed.items() if arn.split(":")[2:3] == ["ec2"]}
    own_api_for_gaps = not target.capabilities.supports(RESOURCE_TAGGING_API)
    tags: dict[str, Mapping[str, str]] = {}
    own: list[CreatedResource] = []
    unlisted: list[str] = []
    for resource in resources:
        if resource.service == "iam":  # AWS documents that GetResources does not cover IAM: its own calls, always
            own.append(resource)
        elif resource.arn in listed:
            tags[resource.label] = listed[resource.arn]
        elif resource.service == "ec2" and resource.id in by_ec2_id:
            tags[resource.label] = by_ec2_id[resource.id]
        elif own_api_for_gaps:
            own.append(resource)
        else:
            tags[resource.label] = {}
            unlisted.append(resource.label)
    tags.update(own_api_tags(target.client, own))
    return TagReading(tags, [r.label for r in own], unlisted)


# ---------------------------------------------------------------- each service's own tags API


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _nodegroup_tags(clients: ClientFactory, resource: CreatedResource) -> Any:
    _, cluster, name = resource.arn.split(":", 5)[5].split("/")[:3]  # nodegroup/<cluster>/<name>/<uuid>
    return clients("eks").describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"].get("tags")


TagReader = Callable[[ClientFactory, CreatedResource], Any]
# By the ARN's type (leaks.arn_type), else by its service.
OWN_TAG_READERS: dict[str, TagReader] = {
    "iam:role": lambda c, r: list(pages(c("iam"), "list_role_tags", "Tags", RoleName=_name(r.arn))),
    "iam:policy": lambda c, r: list(pages(c("iam"), "list_policy_tags", "Tags", PolicyArn=r.arn)),
    "iam:instance-profile": lambda c, r: list(
        pages(c("iam"), "list_instance_profile_tags", "Tags", InstanceProfileName=_name(r.arn))
    ),
    "eks:cluster": lambda c, r: c("eks").describe_cluster(name=_name(r.arn))["cluster"].get("tags"),
    "eks:nodegroup": _nodegroup_tags,
    "eks": lambda c, r: c("eks").list_tags_for_resource(resourceArn=r.arn).get("tags"),
    "events": lambda c, r: c("events").list_tags_for_resource(ResourceARN=r.arn).get("Tags"),
    "elasticloadbalancing": lambda c, r: c("elbv2").describe_tags(ResourceArns=[r.arn])["TagDescriptions"][0]["Tags"],
    "kms": lambda c, r: [
        {"Key": t["TagKey"], "Value": t["TagValue"]}
        for t in pages(c("kms"), "list_resource_tags", "Tags", KeyId=_name(r.arn))
    ],
    "logs": lambda c, r: c("logs").list_tags_for_resource(resourceArn=r.arn).get("tags"),
    "sqs": lambda c, r: c("sqs").list_queue_tags(QueueUrl=r.id).get("Tags"),
}


def own_api_tags(clients: ClientFactory, resources: Iterable[CreatedResource]) -> dict[str, dict[str, str]]:
    """Tags through each service's own API: EC2's DescribeTags for EC2 ids (batched), OWN_TAG_READERS for the
    rest; {} for a resource that is gone or has no reader."""
    resources = list(resources)
    found: dict[str, dict[str, str]] = {}
    ec2 = {r.id: r for r in resources if r.service == "ec2"}
    ids = sorted(ec2)
    by_id: dict[str, dict[str, str]] = defaultdict(dict)
    for start in range(0, len(ids), DESCRIBE_TAGS_IDS):
        chunk = ids[start : start + DESCRIBE_TAGS_IDS]
        for tag in pages(clients("ec2"), "describe_tags", "Tags", Filters=[{"Name": "resource-id", "Values": chunk}]):
            by_id[str(tag["ResourceId"])][str(tag["Key"])] = str(tag.get("Value", ""))
    found.update({r.label: by_id.get(r.id, {}) for r in ec2.values()})
    for resource in resources:
        if resource.service == "ec2":
            continue
        reader = OWN_TAG_READERS.get(arn_type(resource.arn).rstrip(":")) or OWN_TAG_READERS.get(resource.service)
        try:
            found[resource.label] = tag_map(reader(clients, resource)) if reader else {}
        except ClientError as exc:
            if not is_gone(exc):
                raise
            found[resource.label] = {}
    return found


# ---------------------------------------------------------------- what the controllers created


def controller_resources(
    clients: ClientFactory, instances: Mapping[str, str], cluster: str, load_balancer_dns: str | None
) -> list[CreatedResource]:
    """What Karpenter and the LB controller created, from their own records: `instances` (NodeClaim name ->
    instance id, from status.providerID) and their attached volumes, Karpenter's launch templates for `cluster`
    (found as Karpenter finds them),
    the ALB with `load_balancer_dns` (the Ingress's status), its target groups and security groups."""
    ec2 = clients("ec2")
    found: list[CreatedResource] = []
    claim_of = {instance: claim for claim, instance in instances.items()}
    if claim_of:
        # A filter, not InstanceIds=: an instance consolidation just removed must not fail the others' read.
        wanted = [{"Name": "instance-id", "Values": sorted(claim_of)}]
        for reservation in pages(ec2, "describe_instances", "Reservations", Filters=wanted):
            for instance in reservation.get("Instances", []):
                claim = f"NodeClaim {claim_of[instance['InstanceId']]}"
                found.append(CreatedResource(f"{claim} instance", instance["InstanceId"]))
                for mapping in instance.get("BlockDeviceMappings") or []:
                    if volume := (mapping.get("Ebs") or {}).get("VolumeId"):
                        found.append(CreatedResource(f"{claim} volume", str(volume)))
    templates = pages(
        ec2,
        "describe_launch_templates",
        "LaunchTemplates",
        Filters=[
            {"Name": f"tag:{KARPENTER_CLUSTER_TAG}", "Values": [cluster]},
            {"Name": "tag-key", "Values": [NODECLASS_TAG]},
        ],
    )
    found += [
        CreatedResource(f"Karpenter launch template {t['LaunchTemplateName']}", str(t["LaunchTemplateId"]))
        for t in templates
    ]
    if load_balancer_dns:
        found += _load_balancer_resources(clients, load_balancer_dns)
    return found


def _load_balancer_resources(clients: ClientFactory, dns_name: str) -> list[CreatedResource]:
    elbv2 = clients("elbv2")
    wanted = dns_name.rstrip(".").lower()
    balancer = next(
        (lb for lb in pages(elbv2, "describe_load_balancers", "LoadBalancers") if lb["DNSName"].lower() == wanted),
        None,
    )
    if balancer is None:
        return []
    arn = str(balancer["LoadBalancerArn"])
    found = [CreatedResource(f"Ingress ALB {balancer['LoadBalancerName']}", "", arn)]
    for group in pages(elbv2, "describe_target_groups", "TargetGroups", LoadBalancerArn=arn):
        tg = str(group["TargetGroupArn"])
        found.append(CreatedResource(f"Ingress target group {group['TargetGroupName']}", "", tg))
    found += [CreatedResource("Ingress ALB security group", str(g)) for g in balancer.get("SecurityGroups") or []]
    return found
