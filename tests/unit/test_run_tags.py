"""The run's tags on what the controllers created, found through their own records: NodeClaims and the Ingress as a
local-target run recorded them, the instances, volumes, launch template and ALB behind them built in moto."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kube_fixtures import items
from moto import mock_aws

from harness.aws import checks, run_tags
from harness.aws.clients import AwsTarget
from harness.keys import NODECLASS_TAG
from harness.kube.ingress import ingress_hostname
from harness.kube.karpenter import claim_instances
from harness.project import capabilities
from harness.results import Result, Status

REGION = "us-east-1"  # where the recorded run's emulator was: the Ingress's hostname names it
CLUSTER = "eks-r-local"
RUN_TAGS = {"project": "eks-platform", "run-id": "r-local", "expires-at": "2030-01-01T00:00:00+00:00"}
ALB_NAME = "k8s-game2048-game2048-2346cb3380"  # the recorded Ingress's hostname is <name>-1.<region>.elb...


def tags(extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**RUN_TAGS, **(extra or {})}.items()]


@dataclass
class Controllers:
    """What Karpenter and the LB controller built for the recorded objects, and those objects."""

    target: AwsTarget
    claims: list[dict[str, Any]]
    ingress: dict[str, Any]
    volumes: dict[str, str]  # NodeClaim name -> its instance's volume
    target_group: str

    def verify(self) -> Result:
        created = run_tags.controller_resources(
            self.target.client, claim_instances(self.claims), CLUSTER, ingress_hostname(self.ingress)
        )
        return checks.verify_run_tags(self.target, created, RUN_TAGS, checks.CONTROLLER_RUN_TAGS)


@pytest.fixture
def controllers(no_real_aws: None) -> Iterator[Controllers]:
    with mock_aws():
        target = AwsTarget(capabilities("local"), REGION)
        ec2, elbv2 = target.client("ec2"), target.client("elbv2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"][
                "SubnetId"
            ]
            for i, z in ((1, "a"), (2, "b"))
        ]
        # Karpenter: a launch template per EC2NodeClass, tagged with the cluster; the instances it launched.
        karpenters = {run_tags.KARPENTER_CLUSTER_TAG: CLUSTER, NODECLASS_TAG: "apps"}
        ec2.create_launch_template(
            LaunchTemplateName="karpenter.k8s.aws/123",
            LaunchTemplateData={},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": tags(karpenters)}],
        )
        for name, other in (
            ("karpenter.k8s.aws/other", {**karpenters, run_tags.KARPENTER_CLUSTER_TAG: "x"}),  # another cluster's
            ("ops", {run_tags.KARPENTER_CLUSTER_TAG: CLUSTER}),  # not Karpenter's: the platform's, judged there
        ):
            ec2.create_launch_template(
                LaunchTemplateName=name,
                LaunchTemplateData={},
                TagSpecifications=[
                    {"ResourceType": "launch-template", "Tags": [{"Key": k, "Value": v} for k, v in other.items()]}
                ],
            )
        claims = items("recorded/scaled_out/nodeclaims.yaml")
        volumes = {}
        for claim in claims:
            status = claim.get("status") or {}
            if "providerID" not in status:
                continue  # still launching: no instance yet
            instance = ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                SubnetId=subnets[0],
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": tags()},
                    {"ResourceType": "volume", "Tags": tags()},
                ],
            )["Instances"][0]
            # The recorded ids were the recorded emulator's: point the claim at moto's instance.
            status["providerID"] = f"aws:///{REGION}a/{instance['InstanceId']}"
            volumes[claim["metadata"]["name"]] = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        # The LB controller: the ALB, its security group and target group, all with its defaultTags.
        group = ec2.create_security_group(
            GroupName=f"k8s-game2048-{ALB_NAME[-10:]}",
            Description="managed LoadBalancer securityGroup by ALB Ingress Controller",
            VpcId=vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags()}],
        )["GroupId"]
        balancer = elbv2.create_load_balancer(
            Name=ALB_NAME, Subnets=subnets, SecurityGroups=[group], Scheme="internet-facing", Tags=tags()
        )["LoadBalancers"][0]
        target_group = elbv2.create_target_group(
            Name="k8s-game2048-game2048-0a1b2c3d4e",
            Protocol="HTTP",
            Port=80,
            VpcId=vpc,
            TargetType="ip",
            Tags=tags(),
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
        )
        (ingress,) = items("recorded/synced/ingresses.yaml")
        assert ingress_hostname(ingress) == balancer["DNSName"]
        yield Controllers(target, claims, ingress, volumes, target_group)


def test_everything_the_controllers_created_carries_the_run_tags(controllers: Controllers) -> None:
    result = controllers.verify()
    assert result.status is Status.PASS, result.why
    assert result.name == "the run's tags on what the controllers created"
    resources = result.evidence["resources"]
    launched = sorted(controllers.volumes)
    assert len(launched) == 2  # the third recorded NodeClaim has no instance yet
    assert sum(r.startswith("NodeClaim ") for r in resources) == 2 * len(launched)  # an instance and a volume each
    assert [r.split()[0:2] for r in resources if r.startswith(("Ingress", "Karpenter"))] == [
        ["Ingress", "ALB"],
        ["Ingress", "ALB"],
        ["Ingress", "target"],
        ["Karpenter", "launch"],
    ]
    # The launch template is read through EC2's own API: the emulator's tagging API does not list it.
    assert [r.split(" lt-")[0] for r in result.evidence["read_through_own_api"]] == [
        "Karpenter launch template karpenter.k8s.aws/123"
    ]


def test_an_untagged_volume_of_a_nodeclaim_fails_naming_it(controllers: Controllers) -> None:
    claim = sorted(controllers.volumes)[0]
    volume = controllers.volumes[claim]
    controllers.target.client("ec2").delete_tags(Resources=[volume], Tags=[{"Key": "expires-at"}])
    result = controllers.verify()
    assert result.status is Status.FAIL
    assert result.why == f"NodeClaim {claim} volume {volume} lacks expires-at"


def test_a_target_group_without_the_run_id_fails_naming_it(controllers: Controllers) -> None:
    controllers.target.client("elbv2").remove_tags(ResourceArns=[controllers.target_group], TagKeys=["run-id"])
    result = controllers.verify()
    assert result.status is Status.FAIL
    assert result.why == "Ingress target group k8s-game2048-game2048-0a1b2c3d4e lacks run-id"


def test_claim_instances_reads_the_provider_ids() -> None:
    claims = items("recorded/scaled_out/nodeclaims.yaml")
    assert sorted(claim_instances(claims).values()) == ["i-10bb3987b8b6c7f86", "i-aa37b0adf2cf5a688"]
    assert claim_instances([{"metadata": {"name": "apps-x"}, "status": {}}]) == {}
