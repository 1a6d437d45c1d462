"""What a run can leave behind in AWS, kind by kind: everything still tagged with a run id, found and
deleted in dependency order (harness.aws.sweep drives it: the last line of defence against resources, and
bills, left behind).

Over 600 lines on purpose: one finder and one deleter per kind of resource (22 kinds) and the Kind table
that orders them, read side by side; each function is a few lines of boto3.

Each kind of resource has a finder (per-service API, filtered on the run's tags) and a deleter. Kinds are
listed in the order they must go: things that hold others first (node groups before clusters, instances
and load balancers before security groups, subnets before the VPC, roles before their policies). A run's
VPC also claims the untagged security groups and detached ENIs inside it: controllers create those without
our tags. The Resource Groups Tagging API adds a catch-all for tagged kinds we do not know how to delete;
they are reported, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.run import PROJECT_TAG, RUN_ID_TAG

ClientFactory = Callable[[str], Any]  # service name -> boto3 client bound to the target

# Error codes that mean "already gone": a re-run after a partial sweep must not fail on these.
GONE_SUFFIXES = ("NotFound", "NotFoundException", "NoSuchEntity", "NonExistentQueue")
GONE_CODES = frozenset({"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "NotFoundException"})


@dataclass(frozen=True)
class Leak:
    """One resource that belongs to the run. `ref` is what the delete call takes; `why` says how it was found."""

    kind: str
    ref: str
    name: str = ""
    why: str = "tagged with the run id"
    arn: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str:
        return dict(self.extra).get(key, "")

    def label(self) -> str:
        shown = self.name if self.name and self.name != self.ref else ""
        return f"{self.kind} {self.ref}" + (f" ({shown})" if shown else "")


def run_filters(run_id: str) -> list[dict[str, Any]]:
    key, value = PROJECT_TAG
    return [{"Name": f"tag:{RUN_ID_TAG}", "Values": [run_id]}, {"Name": f"tag:{key}", "Values": [value]}]


def tag_map(tags: Any) -> dict[str, str]:
    """A tag collection as a dict: a list of Key/Value dicts (any key casing) or a plain mapping (EKS, SQS)."""
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    mapping: dict[str, str] = {}
    for tag in tags or []:
        key = tag.get("Key", tag.get("key", tag.get("TagKey")))
        value = tag.get("Value", tag.get("value", tag.get("TagValue")))
        mapping[str(key)] = "" if value is None else str(value)
    return mapping


def tags_match(tags: Any, run_id: str) -> bool:
    """True when a tag collection carries the run."""
    mapping = tag_map(tags)
    project_key, project_value = PROJECT_TAG
    return mapping.get(RUN_ID_TAG) == run_id and mapping.get(project_key) == project_value


def error_code(exc: BaseException) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def is_gone(exc: BaseException) -> bool:
    code = error_code(exc)
    return code in GONE_CODES or code.endswith(GONE_SUFFIXES)


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, [])
    else:
        yield from getattr(client, operation)(**kwargs).get(key, [])


def _name_tag(tags: Iterable[dict[str, str]] | None) -> str:
    return next((t["Value"] for t in tags or [] if t.get("Key") == "Name"), "")


# ---------------------------------------------------------------- finders (thin I/O, one per kind)


def ec2_run_items(
    ec2: Any, operation: str, key: str, run_id: str, *extra: dict[str, Any], param: str = "Filters"
) -> Iterator[Any]:
    """Items the server filtered on the run's tags, checked again here: a server that ignores a filter
    (some emulators do) must never make a look-alike look like ours."""
    for item in pages(ec2, operation, key, **{param: [*run_filters(run_id), *extra]}):
        if tags_match(item.get("Tags", item.get("TagSet")), run_id):
            yield item


def _ec2_tagged(ec2: Any, operation: str, key: str, id_field: str, run_id: str, kind: str) -> list[Leak]:
    items = ec2_run_items(ec2, operation, key, run_id)
    return [Leak(kind, item[id_field], _name_tag(item.get("Tags"))) for item in items]


def find_run_vpcs(clients: ClientFactory, run_id: str) -> list[Leak]:
    return _ec2_tagged(clients("ec2"), "describe_vpcs", "Vpcs", "VpcId", run_id, "vpc")


def find_eks_nodegroups(clients: ClientFactory, run_id: str) -> list[Leak]:
    eks = clients("eks")
    found = []
    for cluster in pages(eks, "list_clusters", "clusters"):
        for group in pages(eks, "list_nodegroups", "nodegroups", clusterName=cluster):
            desc = eks.describe_nodegroup(clusterName=cluster, nodegroupName=group)["nodegroup"]
            if desc.get("status") != "DELETING" and tags_match(desc.get("tags"), run_id):
                found.append(Leak("eks_nodegroup", group, group, extra=(("cluster", cluster),)))
    return found


def find_eks_clusters(clients: ClientFactory, run_id: str) -> list[Leak]:
    eks = clients("eks")
    found = []
    for cluster in pages(eks, "list_clusters", "clusters"):
        desc = eks.describe_cluster(name=cluster)["cluster"]
        if desc.get("status") != "DELETING" and tags_match(desc.get("tags"), run_id):
            found.append(Leak("eks_cluster", cluster, cluster, arn=desc.get("arn", "")))
    return found


def find_instances(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    live = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
    found = []
    for reservation in pages(ec2, "describe_instances", "Reservations", Filters=[*run_filters(run_id), live]):
        for inst in reservation.get("Instances", []):
            if tags_match(inst.get("Tags"), run_id):
                found.append(Leak("instance", inst["InstanceId"], _name_tag(inst.get("Tags"))))
    return found


def find_spot_requests(clients: ClientFactory, run_id: str) -> list[Leak]:
    """Open or active spot requests of the run (Karpenter's launch templates tag them). A closed one is no leak:
    EC2 closes a request when its instance ends, and forgets it after a few hours; it cannot be deleted."""
    ec2 = clients("ec2")
    live = {"Name": "state", "Values": ["open", "active"]}
    items = ec2_run_items(ec2, "describe_spot_instance_requests", "SpotInstanceRequests", run_id, live)
    return [Leak("spot_request", r["SpotInstanceRequestId"], r.get("InstanceId", "")) for r in items]


def find_volumes(clients: ClientFactory, run_id: str) -> list[Leak]:
    # In use: they go with their instance (deleteOnTermination); a detached one is a leak of its own.
    available = {"Name": "status", "Values": ["available"]}
    items = ec2_run_items(clients("ec2"), "describe_volumes", "Volumes", run_id, available)
    return [Leak("ebs_volume", v["VolumeId"], _name_tag(v.get("Tags"))) for v in items]


def _elbv2_tagged(clients: ClientFactory, run_id: str, operation: str, key: str, arn_field: str) -> list[Any]:
    elbv2 = clients("elbv2")
    items = list(pages(elbv2, operation, key))
    matched = []
    for start in range(0, len(items), 20):  # DescribeTags takes at most 20 ARNs
        chunk = items[start : start + 20]
        descs = elbv2.describe_tags(ResourceArns=[i[arn_field] for i in chunk])["TagDescriptions"]
        tagged = {d["ResourceArn"] for d in descs if tags_match(d.get("Tags"), run_id)}
        matched += [i for i in chunk if i[arn_field] in tagged]
    return matched


def find_load_balancers(clients: ClientFactory, run_id: str) -> list[Leak]:
    found = _elbv2_tagged(clients, run_id, "describe_load_balancers", "LoadBalancers", "LoadBalancerArn")
    return [
        Leak("load_balancer", lb["LoadBalancerArn"], lb["LoadBalancerName"], arn=lb["LoadBalancerArn"]) for lb in found
    ]


def find_target_groups(clients: ClientFactory, run_id: str) -> list[Leak]:
    found = _elbv2_tagged(clients, run_id, "describe_target_groups", "TargetGroups", "TargetGroupArn")
    return [Leak("target_group", tg["TargetGroupArn"], tg["TargetGroupName"], arn=tg["TargetGroupArn"]) for tg in found]


def find_launch_templates(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    items = ec2_run_items(ec2, "describe_launch_templates", "LaunchTemplates", run_id)
    return [Leak("launch_template", lt["LaunchTemplateId"], lt.get("LaunchTemplateName", "")) for lt in items]


def find_nat_gateways(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    live = {"Name": "state", "Values": ["pending", "available", "failed"]}
    items = ec2_run_items(ec2, "describe_nat_gateways", "NatGateways", run_id, live, param="Filter")
    return [Leak("nat_gateway", nat["NatGatewayId"], _name_tag(nat.get("Tags"))) for nat in items]


def find_eips(clients: ClientFactory, run_id: str) -> list[Leak]:
    addresses = ec2_run_items(clients("ec2"), "describe_addresses", "Addresses", run_id)
    return [
        Leak("eip", a["AllocationId"], a.get("PublicIp", ""), extra=(("association", a.get("AssociationId", "")),))
        for a in addresses
    ]


def _in_run_vpcs(clients: ClientFactory, run_id: str) -> list[str]:
    return [vpc.ref for vpc in find_run_vpcs(clients, run_id)]


def find_network_interfaces(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    found = {
        e["NetworkInterfaceId"]: Leak("network_interface", e["NetworkInterfaceId"], e.get("Description", ""))
        for e in ec2_run_items(ec2, "describe_network_interfaces", "NetworkInterfaces", run_id)
    }
    vpcs = _in_run_vpcs(clients, run_id)
    if vpcs:
        # Controllers (VPC CNI, load balancers) leave detached ENIs without our tags inside the run's VPC.
        filters = [{"Name": "vpc-id", "Values": vpcs}, {"Name": "status", "Values": ["available"]}]
        for eni in pages(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=filters):
            found.setdefault(
                eni["NetworkInterfaceId"],
                Leak(
                    "network_interface",
                    eni["NetworkInterfaceId"],
                    eni.get("Description", ""),
                    why=f"detached, inside the run's VPC {eni['VpcId']}",
                ),
            )
    return list(found.values())


def find_security_groups(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    found = {
        g["GroupId"]: Leak("security_group", g["GroupId"], g.get("GroupName", ""))
        for g in ec2_run_items(ec2, "describe_security_groups", "SecurityGroups", run_id)
        if g.get("GroupName") != "default"
    }
    vpcs = _in_run_vpcs(clients, run_id)
    if vpcs:
        # The ALB controller and EKS create security groups without our tags inside the run's VPC.
        in_vpc = pages(ec2, "describe_security_groups", "SecurityGroups", Filters=[{"Name": "vpc-id", "Values": vpcs}])
        for group in in_vpc:
            if group.get("GroupName") != "default":
                found.setdefault(
                    group["GroupId"],
                    Leak(
                        "security_group",
                        group["GroupId"],
                        group.get("GroupName", ""),
                        why=f"inside the run's VPC {group['VpcId']}",
                    ),
                )
    return list(found.values())


def find_internet_gateways(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    found = []
    for igw in ec2_run_items(ec2, "describe_internet_gateways", "InternetGateways", run_id):
        vpcs = ",".join(a["VpcId"] for a in igw.get("Attachments", []))
        found.append(
            Leak("internet_gateway", igw["InternetGatewayId"], _name_tag(igw.get("Tags")), extra=(("vpcs", vpcs),))
        )
    return found


def find_route_tables(clients: ClientFactory, run_id: str) -> list[Leak]:
    ec2 = clients("ec2")
    found = []
    for table in ec2_run_items(ec2, "describe_route_tables", "RouteTables", run_id):
        if any(a.get("Main") for a in table.get("Associations", [])):
            continue  # the main route table goes with its VPC
        found.append(Leak("route_table", table["RouteTableId"], _name_tag(table.get("Tags"))))
    return found


def find_subnets(clients: ClientFactory, run_id: str) -> list[Leak]:
    found = {
        leak.ref: leak
        for leak in _ec2_tagged(clients("ec2"), "describe_subnets", "Subnets", "SubnetId", run_id, "subnet")
    }
    vpcs = _in_run_vpcs(clients, run_id)
    if vpcs:
        in_vpc = pages(clients("ec2"), "describe_subnets", "Subnets", Filters=[{"Name": "vpc-id", "Values": vpcs}])
        for subnet in in_vpc:
            found.setdefault(
                subnet["SubnetId"],
                Leak(
                    "subnet",
                    subnet["SubnetId"],
                    _name_tag(subnet.get("Tags")),
                    why=f"inside the run's VPC {subnet['VpcId']}",
                ),
            )
    return list(found.values())


def find_sqs_queues(clients: ClientFactory, run_id: str) -> list[Leak]:
    sqs = clients("sqs")
    found = []
    for url in sqs.list_queues().get("QueueUrls", []):
        if tags_match(sqs.list_queue_tags(QueueUrl=url).get("Tags", {}), run_id):
            found.append(Leak("sqs_queue", url, url.rsplit("/", 1)[-1]))
    return found


def find_event_rules(clients: ClientFactory, run_id: str) -> list[Leak]:
    events = clients("events")
    found = []
    for rule in pages(events, "list_rules", "Rules"):
        if tags_match(events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags"), run_id):
            found.append(Leak("eventbridge_rule", rule["Name"], rule["Name"], arn=rule["Arn"]))
    return found


def find_iam_roles(clients: ClientFactory, run_id: str) -> list[Leak]:
    iam = clients("iam")
    found = []
    for role in pages(iam, "list_roles", "Roles"):
        if tags_match(iam.list_role_tags(RoleName=role["RoleName"]).get("Tags"), run_id):
            found.append(Leak("iam_role", role["RoleName"], role["RoleName"], arn=role["Arn"]))
    return found


def _instance_profile_tagged(iam: Any, name: str, run_id: str) -> bool:
    # ListInstanceProfiles leaves tags out; GetInstanceProfile has them.
    return tags_match(iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags"), run_id)


def find_instance_profiles(clients: ClientFactory, run_id: str) -> list[Leak]:
    iam = clients("iam")
    run_roles = {leak.ref for leak in find_iam_roles(clients, run_id)}
    found = []
    for profile in pages(iam, "list_instance_profiles", "InstanceProfiles"):
        roles = [r["RoleName"] for r in profile.get("Roles", [])]
        if _instance_profile_tagged(iam, profile["InstanceProfileName"], run_id):
            why = "tagged with the run id"
        elif run_roles.intersection(roles):
            why = "holds a role of the run"  # Karpenter's own profiles carry the node role
        else:
            continue
        name = profile["InstanceProfileName"]
        found.append(
            Leak("instance_profile", name, name, why=why, arn=profile["Arn"], extra=(("roles", ",".join(roles)),))
        )
    return found


def find_iam_policies(clients: ClientFactory, run_id: str) -> list[Leak]:
    iam = clients("iam")
    found = []
    for policy in pages(iam, "list_policies", "Policies", Scope="Local"):
        if tags_match(iam.list_policy_tags(PolicyArn=policy["Arn"]).get("Tags"), run_id):
            found.append(Leak("iam_policy", policy["Arn"], policy["PolicyName"], arn=policy["Arn"]))
    return found


def find_kms_keys(clients: ClientFactory, run_id: str) -> list[Leak]:
    kms = clients("kms")
    found = []
    for key in pages(kms, "list_keys", "Keys"):
        try:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") == "PendingDeletion":
                continue
            tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
        except ClientError:
            continue  # keys of other principals in the account can deny DescribeKey; they are not ours
        if tags_match([{"Key": t["TagKey"], "Value": t["TagValue"]} for t in tags], run_id):
            found.append(Leak("kms_key", key["KeyId"], meta.get("Description", ""), arn=key["KeyArn"]))
    return found


def find_log_groups(clients: ClientFactory, run_id: str) -> list[Leak]:
    logs = clients("logs")
    found = []
    for group in pages(logs, "describe_log_groups", "logGroups"):
        name = group["logGroupName"]
        if tags_match(logs.list_tags_log_group(logGroupName=name).get("tags", {}), run_id):
            found.append(Leak("log_group", name, name, arn=group.get("arn", "")))
    return found


# ---------------------------------------------------------------- deleters


def delete_eks_nodegroup(clients: ClientFactory, leak: Leak) -> None:
    clients("eks").delete_nodegroup(clusterName=leak.get("cluster"), nodegroupName=leak.ref)


def delete_eks_cluster(clients: ClientFactory, leak: Leak) -> None:
    clients("eks").delete_cluster(name=leak.ref)  # ResourceInUse while node groups drain: retried


def delete_instance(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").terminate_instances(InstanceIds=[leak.ref])


def delete_volume(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_volume(VolumeId=leak.ref)  # VolumeInUse while its instance terminates: retried


def delete_load_balancer(clients: ClientFactory, leak: Leak) -> None:
    clients("elbv2").delete_load_balancer(LoadBalancerArn=leak.ref)


def delete_target_group(clients: ClientFactory, leak: Leak) -> None:
    clients("elbv2").delete_target_group(TargetGroupArn=leak.ref)


def cancel_spot_request(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").cancel_spot_instance_requests(SpotInstanceRequestIds=[leak.ref])


def delete_launch_template(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_launch_template(LaunchTemplateId=leak.ref)


def delete_nat_gateway(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_nat_gateway(NatGatewayId=leak.ref)


def delete_eip(clients: ClientFactory, leak: Leak) -> None:
    ec2 = clients("ec2")
    if leak.get("association"):
        try:
            ec2.disassociate_address(AssociationId=leak.get("association"))
        except ClientError as exc:
            if not is_gone(exc):
                raise
    ec2.release_address(AllocationId=leak.ref)


def delete_network_interface(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_network_interface(NetworkInterfaceId=leak.ref)


def _revoke_ignoring_gone(revoke: Callable[..., Any], group_id: str, permissions: list[dict[str, Any]]) -> None:
    for permission in permissions:  # one by one: a rule naming an already-deleted group must not block the rest
        try:
            revoke(GroupId=group_id, IpPermissions=[permission])
        except ClientError as exc:
            if not is_gone(exc):
                raise


def _only_pairs_with(permission: dict[str, Any], group_id: str) -> dict[str, Any] | None:
    pairs = [p for p in permission.get("UserIdGroupPairs", []) if p.get("GroupId") == group_id]
    if not pairs:
        return None
    kept = {k: v for k, v in permission.items() if k in ("IpProtocol", "FromPort", "ToPort")}
    return {**kept, "UserIdGroupPairs": [{"GroupId": group_id}]}


def delete_security_group(clients: ClientFactory, leak: Leak) -> None:
    ec2 = clients("ec2")
    groups = ec2.describe_security_groups(GroupIds=[leak.ref])["SecurityGroups"]
    # Groups of one run reference each other (ALB -> nodes): drop the rules that name this group, in any
    # group of its VPC, and its own rules, or neither side can ever be deleted.
    for group in groups:
        vpc = {"Name": "vpc-id", "Values": [group.get("VpcId", "")]}
        for direction, revoke in (
            ("ip-permission", ec2.revoke_security_group_ingress),
            ("egress.ip-permission", ec2.revoke_security_group_egress),
        ):
            field_name = "IpPermissions" if direction == "ip-permission" else "IpPermissionsEgress"
            referencing = ec2.describe_security_groups(
                Filters=[vpc, {"Name": f"{direction}.group-id", "Values": [leak.ref]}]
            )["SecurityGroups"]
            for other in referencing:
                if other["GroupId"] != leak.ref:
                    naming = [p for perm in other[field_name] if (p := _only_pairs_with(perm, leak.ref))]
                    _revoke_ignoring_gone(revoke, other["GroupId"], naming)
            _revoke_ignoring_gone(revoke, leak.ref, group.get(field_name, []))
    ec2.delete_security_group(GroupId=leak.ref)


def delete_internet_gateway(clients: ClientFactory, leak: Leak) -> None:
    ec2 = clients("ec2")
    for vpc in filter(None, leak.get("vpcs").split(",")):
        ec2.detach_internet_gateway(InternetGatewayId=leak.ref, VpcId=vpc)
    ec2.delete_internet_gateway(InternetGatewayId=leak.ref)


def delete_route_table(clients: ClientFactory, leak: Leak) -> None:
    ec2 = clients("ec2")
    for table in ec2.describe_route_tables(RouteTableIds=[leak.ref])["RouteTables"]:
        for assoc in table.get("Associations", []):
            if not assoc.get("Main"):
                ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=leak.ref)


def delete_subnet(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_subnet(SubnetId=leak.ref)


def delete_vpc(clients: ClientFactory, leak: Leak) -> None:
    clients("ec2").delete_vpc(VpcId=leak.ref)


def delete_sqs_queue(clients: ClientFactory, leak: Leak) -> None:
    clients("sqs").delete_queue(QueueUrl=leak.ref)


def delete_event_rule(clients: ClientFactory, leak: Leak) -> None:
    events = clients("events")
    target_ids = [t["Id"] for t in events.list_targets_by_rule(Rule=leak.ref).get("Targets", [])]
    if target_ids:
        events.remove_targets(Rule=leak.ref, Ids=target_ids)
    events.delete_rule(Name=leak.ref)


def delete_instance_profile(clients: ClientFactory, leak: Leak) -> None:
    iam = clients("iam")
    for role in filter(None, leak.get("roles").split(",")):
        iam.remove_role_from_instance_profile(InstanceProfileName=leak.ref, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=leak.ref)


def delete_iam_role(clients: ClientFactory, leak: Leak) -> None:
    iam = clients("iam")
    for policy in pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=leak.ref):
        iam.detach_role_policy(RoleName=leak.ref, PolicyArn=policy["PolicyArn"])
    for name in pages(iam, "list_role_policies", "PolicyNames", RoleName=leak.ref):
        iam.delete_role_policy(RoleName=leak.ref, PolicyName=name)
    for profile in pages(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=leak.ref):
        iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=leak.ref)
    iam.delete_role(RoleName=leak.ref)


def delete_iam_policy(clients: ClientFactory, leak: Leak) -> None:
    iam = clients("iam")
    for version in iam.list_policy_versions(PolicyArn=leak.ref).get("Versions", []):
        if not version.get("IsDefaultVersion"):
            iam.delete_policy_version(PolicyArn=leak.ref, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=leak.ref)  # DeleteConflict while still attached somewhere: retried


def delete_kms_key(clients: ClientFactory, leak: Leak) -> None:
    kms = clients("kms")
    for alias in kms.list_aliases(KeyId=leak.ref).get("Aliases", []):
        kms.delete_alias(AliasName=alias["AliasName"])
    kms.schedule_key_deletion(KeyId=leak.ref, PendingWindowInDays=7)  # the shortest window AWS allows


def delete_log_group(clients: ClientFactory, leak: Leak) -> None:
    clients("logs").delete_log_group(logGroupName=leak.ref)


@dataclass(frozen=True)
class Kind:
    name: str
    find: Callable[[ClientFactory, str], list[Leak]]
    delete: Callable[[ClientFactory, Leak], None]
    arn_types: tuple[str, ...]  # "service:resource-type" as the tagging API names them


# Deletion order: each kind only after everything that can hold it is gone.
KINDS: tuple[Kind, ...] = (
    Kind("eks_nodegroup", find_eks_nodegroups, delete_eks_nodegroup, ("eks:nodegroup",)),
    Kind("eks_cluster", find_eks_clusters, delete_eks_cluster, ("eks:cluster",)),
    Kind("instance", find_instances, delete_instance, ("ec2:instance",)),
    Kind("spot_request", find_spot_requests, cancel_spot_request, ("ec2:spot-instance-request",)),
    Kind("ebs_volume", find_volumes, delete_volume, ("ec2:volume",)),
    Kind("load_balancer", find_load_balancers, delete_load_balancer, ("elasticloadbalancing:loadbalancer",)),
    Kind("target_group", find_target_groups, delete_target_group, ("elasticloadbalancing:targetgroup",)),
    Kind("launch_template", find_launch_templates, delete_launch_template, ("ec2:launch-template",)),
    Kind("nat_gateway", find_nat_gateways, delete_nat_gateway, ("ec2:natgateway",)),
    Kind("eip", find_eips, delete_eip, ("ec2:elastic-ip",)),
    Kind("eventbridge_rule", find_event_rules, delete_event_rule, ("events:rule",)),
    Kind("sqs_queue", find_sqs_queues, delete_sqs_queue, ("sqs:",)),
    Kind("network_interface", find_network_interfaces, delete_network_interface, ("ec2:network-interface",)),
    Kind("security_group", find_security_groups, delete_security_group, ("ec2:security-group",)),
    Kind("internet_gateway", find_internet_gateways, delete_internet_gateway, ("ec2:internet-gateway",)),
    Kind("route_table", find_route_tables, delete_route_table, ("ec2:route-table",)),
    Kind("subnet", find_subnets, delete_subnet, ("ec2:subnet",)),
    Kind("vpc", find_run_vpcs, delete_vpc, ("ec2:vpc",)),
    Kind("instance_profile", find_instance_profiles, delete_instance_profile, ("iam:instance-profile",)),
    Kind("iam_role", find_iam_roles, delete_iam_role, ("iam:role",)),
    Kind("iam_policy", find_iam_policies, delete_iam_policy, ("iam:policy",)),
    Kind("kms_key", find_kms_keys, delete_kms_key, ("kms:key",)),
    Kind("log_group", find_log_groups, delete_log_group, ("logs:log-group",)),
)
KIND_ORDER = {kind.name: rank for rank, kind in enumerate(KINDS)}
# Types the tagging API may list that need no deleting of their own: they go with a parent we delete,
# or are recently-deleted ghosts the per-service finders already judged.
ARN_TYPES_COVERED = (
    *(t for kind in KINDS for t in kind.arn_types),
    "ec2:network-acl",
    "ec2:dhcp-options",
    "ec2:vpc-flow-log",
    "eks:access-entry",
    "eks:podidentityassociation",
    "eks:addon",
)


def deletion_order(leaks: Iterable[Leak]) -> list[Leak]:
    """Dependency order (see KINDS), stable and de-duplicated; unknown kinds last."""
    unique = {(leak.kind, leak.ref): leak for leak in leaks}
    return sorted(unique.values(), key=lambda leak: (KIND_ORDER.get(leak.kind, len(KINDS)), leak.ref))


def arn_type(arn: str) -> str:
    """'arn:aws:ec2:r:a:subnet/subnet-1' -> 'ec2:subnet'; 'arn:aws:sqs:r:a:q' -> 'sqs:'."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return ""
    resource = parts[5]
    sep = min((i for i in (resource.find("/"), resource.find(":")) if i >= 0), default=-1)
    return f"{parts[2]}:{resource[:sep] if sep >= 0 else ''}"


def uncovered_arns(arns: Iterable[str]) -> list[str]:
    """ARNs the tagging API lists whose type no finder covers: reported so a human deletes them."""
    return sorted(a for a in arns if not arn_type(a).startswith(ARN_TYPES_COVERED))


def find_tagged(clients: ClientFactory, run_id: str) -> dict[str, dict[str, str]]:
    """ARN -> tags of everything the Resource Groups Tagging API lists with the run's id and project tags."""
    tagging = clients("resourcegroupstaggingapi")
    key, value = PROJECT_TAG
    filters = [{"Key": RUN_ID_TAG, "Values": [run_id]}, {"Key": key, "Values": [value]}]
    return {
        str(r["ResourceARN"]): {str(t["Key"]): str(t.get("Value", "")) for t in r.get("Tags") or []}
        for r in pages(tagging, "get_resources", "ResourceTagMappingList", TagFilters=filters)
    }


def find_tagged_arns(clients: ClientFactory, run_id: str) -> list[str]:
    return list(find_tagged(clients, run_id))


def find_leaks(clients: ClientFactory, run_id: str, kinds: Sequence[Kind] = KINDS) -> list[Leak]:
    found: list[Leak] = []
    for kind in kinds:
        found += kind.find(clients, run_id)
    return deletion_order(found)


def find_undeletable(clients: ClientFactory, run_id: str) -> list[Leak]:
    try:
        arns = find_tagged_arns(clients, run_id)
    except (ClientError, BotoCoreError):
        return []  # the catch-all is best effort; the per-service finders are the authority
    return [
        Leak("other", arn, why="tagged with the run id; the sweep has no deleter for it", arn=arn)
        for arn in uncovered_arns(arns)
    ]
