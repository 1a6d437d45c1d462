"""The tag sweep against moto in-process: leaks planted on purpose are found and deleted in dependency
order; look-alikes (other run id, no tags, project tag missing) survive."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from harness.aws import leaks, moto_server, sweep
from harness.aws.leaks import KIND_ORDER, Kind, Leak, deletion_order
from harness.aws.sweep import RetryPolicy

REGION = "eu-west-1"
RUN = "r-sweep-1"
OTHER_RUN = "r-other-2"
TAGS = {"project": "eks-platform", "run-id": RUN, "expires-at": "2030-01-01T00:00:00+00:00"}
OTHER_TAGS = {**TAGS, "run-id": OTHER_RUN}
NO_PROJECT = {"run-id": RUN}  # a run id alone is not enough: someone else's resource could carry it
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
READ_ONLY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}
)


def kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def spec(resource: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": kv(tags)}]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        cache: dict[str, Any] = {}

        def factory(service: str) -> Any:
            if service not in cache:
                cache[service] = boto3.client(service, region_name=REGION)
            return cache[service]

        yield factory


def plant_network(ec2: Any, tags: dict[str, str], cidr: str) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=spec("vpc", tags))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("/16", "/24"), TagSpecifications=spec("subnet", tags))[
        "Subnet"
    ]["SubnetId"]
    igw = ec2.create_internet_gateway(TagSpecifications=spec("internet-gateway", tags))["InternetGateway"]
    ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=spec("route-table", tags))["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return {"vpc": vpc, "subnet": subnet, "igw": igw["InternetGatewayId"], "route_table": table}


def plant_leaks(clients: Callable[[str], Any], tags: dict[str, str], cidr: str, suffix: str) -> dict[str, str]:
    """One of each kind the sweep knows, all carrying `tags`, wired together as a real run would be."""
    ec2, elbv2, iam = clients("ec2"), clients("elbv2"), clients("iam")
    net = plant_network(ec2, tags, cidr)
    nodes_sg = ec2.create_security_group(
        GroupName=f"nodes-{suffix}",
        Description="nodes",
        VpcId=net["vpc"],
        TagSpecifications=spec("security-group", tags),
    )["GroupId"]
    # An ALB controller's security group: no run tags, but inside the run's VPC; it references the nodes group.
    alb_sg = ec2.create_security_group(GroupName=f"k8s-alb-{suffix}", Description="alb", VpcId=net["vpc"])["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=nodes_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": alb_sg}]}],
    )
    eni = ec2.create_network_interface(SubnetId=net["subnet"], Groups=[nodes_sg])["NetworkInterface"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        SubnetId=net["subnet"],
        SecurityGroupIds=[nodes_sg],
        TagSpecifications=spec("instance", tags),
    )
    template = ec2.create_launch_template(
        LaunchTemplateName=f"karpenter-{suffix}",
        LaunchTemplateData={"ImageId": image},
        TagSpecifications=spec("launch-template", tags),
    )
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=20, TagSpecifications=spec("volume", tags))
    # Karpenter's launch templates tag the spot requests of its spot instances.
    spot = ec2.request_spot_instances(
        LaunchSpecification={"ImageId": image, "InstanceType": "t3.micro", "SubnetId": net["subnet"]},
        TagSpecifications=spec("spot-instances-request", tags),
    )["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", tags))
    nat_eip = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", tags))
    nat = ec2.create_nat_gateway(
        SubnetId=net["subnet"], AllocationId=nat_eip["AllocationId"], TagSpecifications=spec("natgateway", tags)
    )["NatGateway"]["NatGatewayId"]
    second = ec2.create_subnet(
        VpcId=net["vpc"],
        CidrBlock=cidr.replace(".0.0/16", ".1.0/24"),
        AvailabilityZone=f"{REGION}b",
        TagSpecifications=spec("subnet", tags),
    )
    lb = elbv2.create_load_balancer(
        Name=f"k8s-game-{suffix}",
        Subnets=[net["subnet"], second["Subnet"]["SubnetId"]],
        SecurityGroups=[alb_sg],
        Tags=kv(tags),
    )["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elbv2.create_target_group(
        Name=f"k8s-game-{suffix}", Protocol="HTTP", Port=80, VpcId=net["vpc"], TargetType="ip", Tags=kv(tags)
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}]
    )
    queue = clients("sqs").create_queue(QueueName=f"karpenter-{suffix}", tags=tags)["QueueUrl"]
    events = clients("events")
    rule = events.put_rule(Name=f"karpenter-spot-{suffix}", EventPattern='{"source":["aws.ec2"]}', Tags=kv(tags))
    events.put_targets(Rule=f"karpenter-spot-{suffix}", Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:1:q"}])
    role = iam.create_role(RoleName=f"node-{suffix}", AssumeRolePolicyDocument=TRUST, Tags=kv(tags))["Role"]
    policy = iam.create_policy(PolicyName=f"lbc-{suffix}", Tags=kv(tags), PolicyDocument=READ_ONLY)
    iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=policy["Policy"]["Arn"])
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="inline", PolicyDocument=READ_ONLY)
    # Karpenter creates its instance profiles itself; they hold the node role.
    iam.create_instance_profile(InstanceProfileName=f"karpenter-profile-{suffix}")
    iam.add_role_to_instance_profile(InstanceProfileName=f"karpenter-profile-{suffix}", RoleName=role["RoleName"])
    key = clients("kms").create_key(
        Description=f"eks-{suffix}", Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    )
    clients("logs").create_log_group(logGroupName=f"/aws/eks/{suffix}/cluster", tags=tags)
    eks = clients("eks")
    eks.create_cluster(
        name=f"eks-{suffix}", roleArn=role["Arn"], tags=tags, resourcesVpcConfig={"subnetIds": [net["subnet"]]}
    )
    eks.create_nodegroup(
        clusterName=f"eks-{suffix}",
        nodegroupName=f"ops-{suffix}",
        nodeRole=role["Arn"],
        subnets=[net["subnet"]],
        tags=tags,
    )
    return {
        **net,
        "nodes_sg": nodes_sg,
        "alb_sg": alb_sg,
        "eni": eni["NetworkInterfaceId"],
        "instance": instance["Instances"][0]["InstanceId"],
        "volume": volume["VolumeId"],
        "spot": spot,
        "template": template["LaunchTemplate"]["LaunchTemplateId"],
        "eip": eip["AllocationId"],
        "nat": nat,
        "lb": lb,
        "tg": tg,
        "queue": queue,
        "rule": rule["RuleArn"],
        "role": role["RoleName"],
        "policy": policy["Policy"]["Arn"],
        "key": key["KeyMetadata"]["KeyId"],
        "profile": f"karpenter-profile-{suffix}",
        "cluster": f"eks-{suffix}",
    }


EXPECTED_KINDS = {k.name for k in leaks.KINDS}


def refs_by_kind(leaks: list[Leak]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for leak in leaks:
        out.setdefault(leak.kind, set()).add(leak.ref)
    return out


def test_dry_run_lists_every_planted_kind_and_deletes_nothing(clients: Callable[[str], Any]) -> None:
    ours = plant_leaks(clients, TAGS, "10.1.0.0/16", "ours")
    theirs = plant_leaks(clients, OTHER_TAGS, "10.2.0.0/16", "theirs")
    report = sweep.sweep(clients, RUN, dry_run=True)
    found = refs_by_kind(report.found)
    assert set(found) == EXPECTED_KINDS
    assert found["vpc"] == {ours["vpc"]}
    assert found["security_group"] == {ours["nodes_sg"], ours["alb_sg"]}  # the untagged one via the VPC
    assert ours["eni"] in found["network_interface"]
    assert found["eip"] >= {ours["eip"]}
    assert found["instance_profile"] == {ours["profile"]}
    every_ref = {ref for refs in found.values() for ref in refs}
    assert not every_ref & {theirs[k] for k in ("vpc", "nodes_sg", "alb_sg", "instance", "lb", "role", "cluster")}
    assert not report.clean and report.outcomes == []
    # nothing was deleted
    assert leaks.find_leaks(clients, RUN) == report.found


def test_sweep_deletes_in_dependency_order_and_spares_look_alikes(clients: Callable[[str], Any]) -> None:
    ours = plant_leaks(clients, TAGS, "10.1.0.0/16", "ours")
    theirs = plant_leaks(clients, OTHER_TAGS, "10.2.0.0/16", "theirs")
    no_project = clients("ec2").create_vpc(CidrBlock="10.3.0.0/16", TagSpecifications=spec("vpc", NO_PROJECT))
    untagged_role = clients("iam").create_role(RoleName="node-ours-lookalike", AssumeRolePolicyDocument=TRUST)
    before_theirs = refs_by_kind(leaks.find_leaks(clients, OTHER_RUN))

    report = sweep.sweep(clients, RUN, policy=RetryPolicy(attempts=3), sleep=lambda _s: None)

    failures = [(o.leak.label(), o.error) for o in report.outcomes if not o.deleted]
    assert failures == []
    assert report.remaining == [] and report.clean, report.lines()
    kinds_in_call_order = [o.leak.kind for o in report.outcomes]
    assert [KIND_ORDER[k] for k in kinds_in_call_order] == sorted(KIND_ORDER[k] for k in kinds_in_call_order)
    ec2 = clients("ec2")
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [ours["vpc"]]}])["Vpcs"] == []
    assert clients("kms").describe_key(KeyId=ours["key"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    # look-alikes survive untouched
    assert refs_by_kind(leaks.find_leaks(clients, OTHER_RUN)) == before_theirs
    assert ec2.describe_vpcs(VpcIds=[no_project["Vpc"]["VpcId"]])["Vpcs"]
    assert clients("iam").get_role(RoleName=untagged_role["Role"]["RoleName"])
    assert clients("eks").describe_cluster(name=theirs["cluster"])["cluster"]["status"] == "ACTIVE"


def test_second_sweep_is_a_clean_no_op(clients: Callable[[str], Any]) -> None:
    plant_leaks(clients, TAGS, "10.1.0.0/16", "ours")
    sweep.sweep(clients, RUN, policy=RetryPolicy(attempts=3), sleep=lambda _s: None)
    again = sweep.sweep(clients, RUN, policy=RetryPolicy(attempts=3), sleep=lambda _s: None)
    assert again.found == [] and again.clean
    assert again.lines()[-1].endswith("nothing tagged with the run id is left")


@pytest.mark.parametrize("first", ["alb", "nodes"])
def test_security_groups_that_reference_each_other_go_in_either_order(
    clients: Callable[[str], Any], first: str
) -> None:
    ec2 = clients("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=spec("vpc", TAGS))["Vpc"]["VpcId"]
    groups = {
        name: ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        for name in ("alb", "nodes")
    }
    for name, peer in (("alb", "nodes"), ("nodes", "alb")):
        ec2.authorize_security_group_ingress(
            GroupId=groups[name],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": groups[peer]}]},
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
            ],
        )
    second = "nodes" if first == "alb" else "alb"
    leaks.delete_security_group(clients, Leak("security_group", groups[first]))
    remaining = ec2.describe_security_groups(GroupIds=[groups[second]])["SecurityGroups"][0]
    assert all(not p.get("UserIdGroupPairs") for p in remaining["IpPermissions"])  # the reference was dropped
    assert any(p.get("IpRanges") for p in remaining["IpPermissions"])  # unrelated rules stay
    leaks.delete_security_group(clients, Leak("security_group", groups[second]))
    left = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    assert [g["GroupName"] for g in left] == ["default"]


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "Delete")


def test_transient_errors_are_retried_with_backoff_then_succeed() -> None:
    calls: list[str] = []
    sleeps: list[float] = []

    def flaky(_clients: Any, leak: Leak) -> None:
        calls.append(leak.ref)
        if len(calls) < 3:
            raise client_error("DependencyViolation")

    kind = Kind("subnet", lambda _c, _r: [], flaky, ())
    outcome = sweep.delete_with_retries(
        lambda _s: None, Leak("subnet", "subnet-1"), kind, RetryPolicy(5, 8), sleeps.append
    )
    assert outcome.deleted and len(calls) == 3
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)


def test_retries_give_up_with_a_one_line_reason() -> None:
    kind = Kind("vpc", lambda _c, _r: [], lambda _c, _l: (_ for _ in ()).throw(client_error("DependencyViolation")), ())
    outcome = sweep.delete_with_retries(lambda _s: None, Leak("vpc", "vpc-1"), kind, RetryPolicy(4, 1), lambda _s: None)
    assert not outcome.deleted
    assert outcome.error.startswith("gave up after 4 attempts") and "\n" not in outcome.error


def test_permanent_errors_fail_at_once_and_gone_counts_as_deleted() -> None:
    attempts: list[int] = []

    def denied(_c: Any, _l: Leak) -> None:
        attempts.append(1)
        raise client_error("UnauthorizedOperation")

    outcome = sweep.delete_with_retries(
        lambda _s: None,
        Leak("vpc", "v"),
        Kind("vpc", lambda _c, _r: [], denied, ()),
        RetryPolicy(5, 1),
        lambda _s: None,
    )
    assert not outcome.deleted and len(attempts) == 1 and "UnauthorizedOperation" in outcome.error

    def gone(_c: Any, _l: Leak) -> None:
        raise client_error("InvalidVpcID.NotFound")

    assert sweep.delete_with_retries(
        lambda _s: None, Leak("vpc", "v"), Kind("vpc", lambda _c, _r: [], gone, ()), RetryPolicy(5, 1), lambda _s: None
    ).deleted


def test_deletion_order_is_dependency_order_and_deduplicates() -> None:
    leaks = [
        Leak("vpc", "vpc-1"),
        Leak("subnet", "s-2"),
        Leak("eks_cluster", "c"),
        Leak("subnet", "s-1"),
        Leak("security_group", "sg"),
        Leak("eks_nodegroup", "ng"),
        Leak("subnet", "s-1"),
        Leak("mystery", "m"),
    ]
    ordered = [(leak.kind, leak.ref) for leak in deletion_order(leaks)]
    assert ordered == [
        ("eks_nodegroup", "ng"),
        ("eks_cluster", "c"),
        ("security_group", "sg"),
        ("subnet", "s-1"),
        ("subnet", "s-2"),
        ("vpc", "vpc-1"),
        ("mystery", "m"),
    ]


@pytest.mark.parametrize(
    ("arn", "kind"),
    [
        ("arn:aws:ec2:eu-west-1:1:subnet/subnet-1", "ec2:subnet"),
        ("arn:aws:sqs:eu-west-1:1:karpenter", "sqs:"),
        ("arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/x/1", "elasticloadbalancing:loadbalancer"),
        ("arn:aws:logs:eu-west-1:1:log-group:/aws/eks/x", "logs:log-group"),
        ("not-an-arn", ""),
    ],
)
def test_arn_type(arn: str, kind: str) -> None:
    assert leaks.arn_type(arn) == kind


def test_tagged_kinds_without_a_deleter_are_reported_not_ignored() -> None:
    arns = [
        "arn:aws:ec2:r:1:vpc/vpc-1",
        "arn:aws:s3:::bucket-of-the-run",
        "arn:aws:ec2:r:1:dhcp-options/d-1",
        "arn:aws:acm:r:1:certificate/abc",
    ]
    assert leaks.uncovered_arns(arns) == ["arn:aws:acm:r:1:certificate/abc", "arn:aws:s3:::bucket-of-the-run"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([{"Key": "run-id", "Value": RUN}, {"Key": "project", "Value": "eks-platform"}], True),
        ({"run-id": RUN, "project": "eks-platform"}, True),
        ([{"key": "run-id", "value": RUN}, {"key": "project", "value": "eks-platform"}], True),
        ({"run-id": RUN}, False),
        ({"run-id": OTHER_RUN, "project": "eks-platform"}, False),
        ({"run-id": RUN + "x", "project": "eks-platform"}, False),
        (None, False),
    ],
)
def test_tags_match_requires_run_and_project(tags: Any, expected: bool) -> None:
    assert leaks.tags_match(tags, RUN) is expected


def test_a_spot_request_closed_with_its_instance_is_no_leak(clients: Callable[[str], Any]) -> None:
    ours = plant_leaks(clients, TAGS, "10.1.0.0/16", "ours")
    assert [leak.ref for leak in leaks.find_spot_requests(clients, RUN)] == [ours["spot"]]
    ec2 = clients("ec2")
    (request,) = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[ours["spot"]])["SpotInstanceRequests"]
    with moto_server.patched(["spot_request_open_after_termination"]):  # EC2 closes it, as it does
        ec2.terminate_instances(InstanceIds=[request["InstanceId"]])
    assert leaks.find_spot_requests(clients, RUN) == []
