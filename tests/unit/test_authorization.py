"""IAM as the harness's emulator enforces it for callers on assumed roles (harness.aws.authorization), against the
real moto server process the runs start: a role, its policy, STS credentials, and calls a controller makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from harness.aws import authorization, iam_policy, iam_requests
from harness.aws import emulator as emu
from harness.results import Status

REGION = "us-west-2"
CLUSTER_TAG = "kubernetes.io/cluster/demo"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Action": ["ec2:DescribeInstances", "ec2:DescribeSubnets"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}},
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {
                "StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": "owned"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["Name", "karpenter.sh/nodeclaim"]},
            },
        },
        {
            "Sid": "AllowFromTheOffice",
            "Effect": "Allow",
            "Action": "ec2:DescribeVpcs",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        },
        {"Sid": "NoTerminating", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"},
        {"Sid": "AllowTerminating", "Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*"},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[emu.Emulator, Path]]:
    folder = tmp_path_factory.mktemp("iam")
    decisions = folder / authorization.DECISIONS_FILE
    started = emu.start(folder / "emulator.log", iam_decisions=decisions)
    try:
        yield started, decisions
    finally:
        started.stop()


def _admin(server: emu.Emulator, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        **{k.lower(): v for k, v in emu.DUMMY_CREDENTIALS.items()},
    )


def _trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _assumed_ec2(server: emu.Emulator, role_name: str, session: str, policy: dict[str, Any]) -> Any:
    """An EC2 client on the credentials of a role with `policy`, as the Pod Identity agent hands them out."""
    iam = _admin(server, "iam")
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=_trust("pods.eks.amazonaws.com"))["Role"]
    iam.put_role_policy(RoleName=role_name, PolicyName="controller", PolicyDocument=json.dumps(policy))
    creds = _admin(server, "sts").assume_role(RoleArn=role["Arn"], RoleSessionName=session)["Credentials"]
    return boto3.client(
        "ec2",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


@pytest.fixture(scope="module")
def controller(server: tuple[emu.Emulator, Path]) -> Any:
    return _assumed_ec2(server[0], "karpenter-controller", "eks-demo-karpenter", POLICY)


def _instance(server: emu.Emulator, tags: dict[str, str]) -> str:
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    ec2 = _admin(server, "ec2")
    found = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec)
    return str(found["Instances"][0]["InstanceId"])


def _last(decisions: Path) -> dict[str, Any]:
    return authorization.read_decisions(decisions)[-1]


def test_a_call_its_role_allows_is_served_and_recorded(server: tuple[emu.Emulator, Path], controller: Any) -> None:
    controller.describe_instances()
    last = _last(server[1])
    assert (last["action"], last["verdict"], last["statement"]) == (
        "ec2:DescribeInstances",
        "allowed",
        "AllowRegionalReadActions",
    )
    assert last["principal"].endswith(":assumed-role/karpenter-controller/eks-demo-karpenter")


def test_a_call_no_statement_allows_is_refused_as_ec2_refuses_it(
    server: tuple[emu.Emulator, Path], controller: Any
) -> None:
    with pytest.raises(ClientError) as refused:
        controller.create_security_group(GroupName="x", Description="x")
    assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert "not authorized to perform: ec2:CreateSecurityGroup" in refused.value.response["Error"]["Message"]
    assert _last(server[1])["verdict"] == "not allowed"


def test_resource_tags_decide_a_tagging_call(server: tuple[emu.Emulator, Path], controller: Any) -> None:
    owned = _instance(server[0], {CLUSTER_TAG: "owned"})
    controller.create_tags(Resources=[owned], Tags=[{"Key": "Name", "Value": "node"}])
    assert _last(server[1])["verdict"] == "allowed"
    foreign = _instance(server[0], {})
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        controller.create_tags(Resources=[foreign], Tags=[{"Key": "Name", "Value": "node"}])
    assert _last(server[1])["resource"].endswith(f":instance/{foreign}")
    # A tag key outside the ForAllValues list fails the same statement on an owned instance.
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        controller.create_tags(Resources=[owned], Tags=[{"Key": "team", "Value": "x"}])


def test_an_explicit_deny_wins_over_an_allow(server: tuple[emu.Emulator, Path], controller: Any) -> None:
    instance = _instance(server[0], {CLUSTER_TAG: "owned"})
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        controller.terminate_instances(InstanceIds=[instance])
    assert (_last(server[1])["verdict"], _last(server[1])["statement"]) == ("denied", "NoTerminating")


def test_a_condition_on_a_key_the_emulator_cannot_know_is_reported_not_decided(
    server: tuple[emu.Emulator, Path], controller: Any
) -> None:
    controller.describe_vpcs()
    last = _last(server[1])
    assert (last["verdict"], last["unknown_keys"]) == ("undetermined", ["aws:SourceIp"])
    judged = authorization.judge_decisions([last], {})
    assert judged.status is Status.PASS and "aws:SourceIp" in judged.why


def test_the_harness_own_keys_are_the_account_administrator(server: tuple[emu.Emulator, Path]) -> None:
    before = len(authorization.read_decisions(server[1]))
    _admin(server[0], "ec2").create_security_group(GroupName="admin", Description="admin")
    assert len(authorization.read_decisions(server[1])) == before


def test_the_judge_names_the_controller_action_resource_and_role() -> None:
    decisions = [
        {
            "principal": "arn:aws:sts::1:assumed-role/lbc/eks-demo-lbc",
            "action": "elasticloadbalancing:DescribeTags",
            "resource": "*",
            "verdict": "allowed",
            "statement": "A",
            "unknown_keys": [],
        },
        {
            "principal": "arn:aws:sts::1:assumed-role/lbc/eks-demo-lbc",
            "action": "elasticloadbalancing:CreateTargetGroup",
            "resource": "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/k8s-game/*",
            "verdict": "not allowed",
            "statement": "",
            "unknown_keys": [],
        },
    ]
    judged = authorization.judge_decisions(decisions, {"arn:aws:iam::1:role/lbc": "aws-load-balancer-controller"})
    assert judged.status is Status.FAIL
    assert judged.why == (
        "aws-load-balancer-controller: IAM would deny elasticloadbalancing:CreateTargetGroup on "
        "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/k8s-game/* (role lbc, not allowed)"
    )
    assert authorization.judge_decisions(decisions[:1], {}).status is Status.PASS
    assert authorization.judge_decisions([], {}).status is Status.PENDING


def _decide(statement: dict[str, Any], context: dict[str, list[str]], **request: Any) -> str:
    policy = {"Statement": [{"Effect": "Allow", "Resource": "*", **statement}]}
    fields = {"action": "ec2:CreateTags", "resource": "arn:aws:ec2:us-west-2:1:instance/i-1", **request}
    asked = iam_policy.Request(context=context, computed=iam_requests.COMPUTED_KEYS, applicable=("ec2:*",), **fields)
    return iam_policy.evaluate([policy], asked).verdict.value


@pytest.mark.parametrize(
    ("condition", "context", "verdict"),
    [
        ({"StringEqualsIfExists": {"aws:RequestTag/team": "a"}}, {}, "allowed"),
        ({"StringEqualsIfExists": {"aws:RequestTag/team": "a"}}, {"aws:RequestTag/team": ["b"]}, "not allowed"),
        ({"StringEquals": {"aws:RequestTag/team": "a"}}, {}, "not allowed"),
        ({"StringNotEquals": {"aws:RequestTag/team": "a"}}, {}, "allowed"),
        ({"Null": {"aws:RequestTag/team": "false"}}, {}, "not allowed"),
        ({"Null": {"aws:RequestTag/team": "true"}}, {}, "allowed"),
        ({"ForAnyValue:StringLike": {"aws:TagKeys": ["karpenter.sh/*"]}}, {"aws:TagKeys": ["Name"]}, "not allowed"),
        (
            {"ForAnyValue:StringLike": {"aws:TagKeys": ["karpenter.sh/*"]}},
            {"aws:TagKeys": ["karpenter.sh/x"]},
            "allowed",
        ),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Name"]}}, {}, "allowed"),
        (
            {"StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
            {"aws:resourcetag/karpenter.sh/nodepool": ["apps"]},
            "allowed",
        ),
        ({"Bool": {"aws:ViaAWSService": "false"}}, {}, "undetermined"),
        ({"StringEquals": {"ec2:InstanceType": "m5.large"}}, {}, "undetermined"),
        ({"StringEquals": {"s3:prefix": "x"}}, {}, "not allowed"),
        ({"BinaryEquals": {"aws:RequestTag/team": "YQ=="}}, {"aws:RequestTag/team": ["a"]}, "undetermined"),
    ],
)
def test_condition_operators_follow_iam(condition: dict[str, Any], context: dict[str, list[str]], verdict: str) -> None:
    """Absent keys: false for a positive operator, true for a negated one or IfExists; an unknown key of the action
    (ec2:InstanceType) or a global one is undetermined; a key of another service is absent."""
    assert _decide({"Action": "ec2:CreateTags", "Condition": condition}, context) == verdict


def test_actions_and_resources_match_as_iam_matches_them() -> None:
    assert _decide({"Action": "EC2:create*"}, {}) == "allowed"
    assert _decide({"NotAction": "ec2:Create*"}, {}) == "not allowed"
    assert _decide({"Action": "ec2:*", "Resource": "arn:aws:ec2:*:*:volume/*"}, {}) == "not allowed"
    assert _decide({"Action": "ec2:*", "NotResource": "arn:aws:ec2:*:*:volume/*"}, {}) == "allowed"
    # Describe calls authorize "*" only: a statement scoped to ARNs does not cover them.
    assert _decide({"Action": "ec2:*", "Resource": "arn:aws:ec2:*:*:*"}, {}, resource="*") == "not allowed"
    # A policy variable takes the request's value.
    principal = {"aws:PrincipalAccount": ["1"]}
    assert (
        _decide({"Action": "ec2:*", "Resource": "arn:aws:ec2:*:${aws:PrincipalAccount}:instance/*"}, principal)
        == "allowed"
    )


def test_what_an_instant_fleet_needs_comes_from_the_reference() -> None:
    """CreateFleet is authorized on the fleet and what it launches, RunInstances on what it launches only."""
    types, keys = iam_requests.action_reference("ec2:CreateFleet")
    assert any(t.endswith(":fleet/*") for t in types) and "aws:RequestTag/*" in keys
    run_types, _ = iam_requests.action_reference("ec2:RunInstances")
    assert not any(t.endswith(":fleet/*") for t in run_types)
    assert iam_requests.action_reference("ec2:DescribeInstances")[0] == ()


FLEET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Shared",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Resource": [
                "arn:aws:ec2:*::image/*",
                "arn:aws:ec2:*:*:subnet/*",
                "arn:aws:ec2:*:*:security-group/*",
                "arn:aws:ec2:*:*:launch-template/*",
            ],
        },
        {
            "Sid": "Tagged",
            "Effect": "Allow",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Resource": [
                "arn:aws:ec2:*:*:fleet/*",
                "arn:aws:ec2:*:*:instance/*",
                "arn:aws:ec2:*:*:volume/*",
                "arn:aws:ec2:*:*:network-interface/*",
                "arn:aws:ec2:*:*:spot-instances-request/*",
            ],
            "Condition": {"StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": "owned"}},
        },
        {
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateFleet"]}},
        },
    ],
}


def _fleet_role(server: emu.Emulator, name: str, statements: list[dict[str, Any]]) -> Any:
    return _assumed_ec2(server, name, name, {**FLEET_POLICY, "Statement": FLEET_POLICY["Statement"] + statements})


def _launch_template(server: emu.Emulator, name: str, interface_tags: dict[str, str]) -> tuple[str, str]:
    """A launch template as Karpenter writes it: an instance profile, the network interface tagged in its data."""
    iam = _admin(server, "iam")
    node = iam.create_role(RoleName=f"{name}-node", AssumeRolePolicyDocument=_trust("ec2.amazonaws.com"))["Role"]
    iam.create_instance_profile(InstanceProfileName=f"{name}-profile")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{name}-profile", RoleName=f"{name}-node")
    ec2 = _admin(server, "ec2")
    data = {
        "ImageId": "ami-12c6146b",
        "IamInstanceProfile": {"Name": f"{name}-profile"},
        "TagSpecifications": [
            {"ResourceType": "network-interface", "Tags": [{"Key": k, "Value": v} for k, v in interface_tags.items()]}
        ],
    }
    template = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)["LaunchTemplate"]
    return str(template["LaunchTemplateId"]), str(node["Arn"])


def _create_fleet(server: emu.Emulator, client: Any, template: str) -> Any:
    owned = [{"Key": CLUSTER_TAG, "Value": "owned"}]
    subnet = _admin(server, "ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    kinds = ("fleet", "instance", "volume", "spot-instances-request")
    return client.create_fleet(
        Type="instant",
        TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        LaunchTemplateConfigs=[
            {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "$Latest"},
                "Overrides": [{"InstanceType": "m5.large", "SubnetId": subnet}],
            }
        ],
        TagSpecifications=[{"ResourceType": kind, "Tags": owned} for kind in kinds],
    )


PASS_NODE_ROLE = {
    "Sid": "PassNodeRole",
    "Effect": "Allow",
    "Action": "iam:PassRole",
    "Resource": "*",
    "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
}


def test_an_instant_fleet_is_authorized_as_ec2_authorizes_it(server: tuple[emu.Emulator, Path]) -> None:
    """CreateFleet and RunInstances on what it launches, the network interface tagged by the launch template's own
    tag specification, tagging on create, and PassRole for the instance profile's role: all allowed."""
    client = _fleet_role(server[0], "fleet-ok", [PASS_NODE_ROLE])
    template, _ = _launch_template(server[0], "fleet-ok", {CLUSTER_TAG: "owned"})
    assert _create_fleet(server[0], client, template)["Instances"]
    last = _last(server[1])
    assert (last["call"], last["verdict"], last["action"]) == ("ec2:CreateFleet", "allowed", "ec2:CreateFleet")
    assert last["authorizations"] >= 10


@pytest.mark.parametrize(
    ("case", "denied"),
    [
        ("interface-untagged", "ec2:RunInstances on arn:aws:ec2:us-west-2:123456789012:network-interface/*"),
        ("no-pass-role", "iam:PassRole on arn:aws:iam::123456789012:role/no-pass-role-node"),
    ],
)
def test_an_instant_fleet_fails_on_what_ec2_would_refuse(
    server: tuple[emu.Emulator, Path], case: str, denied: str
) -> None:
    client = _fleet_role(server[0], case, [] if case == "no-pass-role" else [PASS_NODE_ROLE])
    template, _ = _launch_template(
        server[0], case, {"team": "games"} if case == "interface-untagged" else {CLUSTER_TAG: "owned"}
    )
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        _create_fleet(server[0], client, template)
    last = _last(server[1])
    assert f"{last['action']} on {last['resource']}" == denied


def test_a_resource_the_emulator_cannot_tell_is_covered_only_by_a_star() -> None:
    assert _decide({"Action": "ec2:*"}, {}, resource="") == "allowed"
    unknown = _decide({"Action": "ec2:*", "Resource": "arn:aws:ec2:*:*:instance/*"}, {}, resource="")
    assert unknown == "undetermined"


def test_a_fault_of_the_check_is_reported_with_the_call_not_hidden(tmp_path: Path) -> None:
    recorder = authorization.Recorder(str(tmp_path / authorization.DECISIONS_FILE))
    recorder.write_fault("arn:aws:sts::1:assumed-role/lbc/s", "ec2:DescribeVpcs", KeyError("Filters"))
    (fault,) = authorization.read_decisions(tmp_path / authorization.DECISIONS_FILE)
    assert fault["verdict"] == "undetermined"
    judged = authorization.judge_decisions([fault], {})
    assert judged.status is Status.PASS and "the emulator's IAM check failed: KeyError" in judged.why
