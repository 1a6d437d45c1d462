"""The emulator gaps (infra/targets.yaml local.emulator_gaps), each patched into moto in one place
(harness.aws.moto_server): every test calls moto in-process as Karpenter calls EC2, and fails without its patch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from harness.aws import emulator as emu
from harness.aws import moto_server
from harness.errors import InputError
from harness.project import local_target, versions

REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TYPES = ("m7i.2xlarge", "c7i.large", "r7i.xlarge")  # not cheapest first: the first override must not win


@pytest.fixture
def ec2() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


RUN_TAGS = [{"Key": "run-id", "Value": "r-unit"}, {"Key": "project", "Value": "eks-platform"}]


def launch_as_karpenter(ec2: Any, *, interface_groups: bool = False) -> tuple[dict[str, Any], str]:
    """A launch template with the node security group, then CreateFleet instant/spot with one override per type
    (the fleet answer's first instance, and the node security group)."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    groups: dict[str, Any] = (
        {"NetworkInterfaces": [{"DeviceIndex": 0, "Groups": [group]}]}
        if interface_groups
        else {"SecurityGroupIds": [group]}
    )
    template = ec2.create_launch_template(
        LaunchTemplateName="karpenter-apps", LaunchTemplateData={"ImageId": image, **groups}
    )["LaunchTemplate"]["LaunchTemplateId"]
    fleet = ec2.create_fleet(
        Type="instant",
        TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
        LaunchTemplateConfigs=[
            {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "$Latest"},
                "Overrides": [{"InstanceType": t, "SubnetId": subnet, "ImageId": image} for t in TYPES],
            }
        ],
        # Karpenter 1.14 tags these three on CreateFleet (pkg/providers/instance/types.go), the rest in the template.
        TagSpecifications=[{"ResourceType": t, "Tags": RUN_TAGS} for t in ("instance", "volume", "fleet")],
    )
    return fleet["Instances"][0], group


def described(ec2: Any, instance_id: str) -> dict[str, Any]:
    return dict(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def test_every_declared_gap_has_exactly_one_patch() -> None:
    assert set(local_target().emulator_gaps) == set(moto_server.GAPS)


def test_an_undeclared_gap_name_is_one_line() -> None:
    with pytest.raises(InputError, match=r"no patch for \['moon'\]"), moto_server.patched(["moon"]):
        pass


@pytest.mark.parametrize("interface_groups", [False, True], ids=["SecurityGroupIds", "NetworkInterfaces"])
def test_fleet_instances_get_the_launch_template_security_groups(ec2: Any, interface_groups: bool) -> None:
    with moto_server.patched(["fleet_launch_template_security_groups"]):
        launched, group = launch_as_karpenter(ec2, interface_groups=interface_groups)
    instance = described(ec2, launched["InstanceIds"][0])
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]


def test_the_cheapest_override_is_launched(ec2: Any) -> None:
    with moto_server.patched(["spot_allocation_lowest_price"]):
        launched, _ = launch_as_karpenter(ec2)
    assert launched["InstanceType"] == "c7i.large"
    assert launched["LaunchTemplateAndOverrides"]["Overrides"]["InstanceType"] == "c7i.large"
    assert len(launched["InstanceIds"]) == 1


def test_spot_prices_grow_with_the_instance_size(ec2: Any) -> None:
    with moto_server.patched(["spot_price_history_flat"]):
        history = ec2.describe_spot_price_history(InstanceTypes=list(TYPES))["SpotPriceHistory"]
    price = {h["InstanceType"]: float(h["SpotPrice"]) for h in history}
    assert price["c7i.large"] < price["r7i.xlarge"] < price["m7i.2xlarge"]
    assert price["c7i.large"] == moto_server.spot_price("c7i.large") == pytest.approx(2 * 0.012 + 4 * 0.0015)


def test_instance_status_filters_answer_only_what_matches(ec2: Any) -> None:
    with moto_server.patched(["instance_status_filters_ignored"]):
        launched, _ = launch_as_karpenter(ec2)

        def statuses(name: str, values: list[str]) -> list[str]:
            answer = ec2.describe_instance_status(Filters=[{"Name": name, "Values": values}])["InstanceStatuses"]
            return [s["InstanceId"] for s in answer]

        # Karpenter's health poll: nothing is impaired and nothing has a scheduled event in the emulator.
        assert statuses("instance-status.status", ["impaired"]) == []
        assert statuses("system-status.status", ["impaired"]) == []
        assert statuses("event.code", ["instance-retirement", "system-reboot"]) == []
        assert statuses("instance-status.status", ["ok"]) == launched["InstanceIds"]


def test_spot_instances_carry_their_spot_request_id(ec2: Any) -> None:
    with moto_server.patched(["spot_instance_request_id_missing"]):
        launched, _ = launch_as_karpenter(ec2)
    instance = described(ec2, launched["InstanceIds"][0])
    assert instance["SpotInstanceRequestId"].startswith("sir-")
    assert instance["InstanceLifecycle"] == "spot"


def test_terminating_a_spot_instance_closes_its_request(ec2: Any) -> None:
    with moto_server.patched(["spot_request_open_after_termination"]):
        launched, _ = launch_as_karpenter(ec2)
        ec2.terminate_instances(InstanceIds=launched["InstanceIds"])
    (request,) = ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
    assert (request["State"], request["Status"]["Code"]) == ("closed", "instance-terminated-by-user")


def test_shield_answers_the_accounts_subscription_state_where_moto_answers_500(ec2: Any) -> None:
    shield = boto3.client("shield", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(NotImplementedError):  # moto alone (its server answers 500)
        shield.get_subscription_state()
    with moto_server.patched(["shield_subscription_state"]):
        assert shield.get_subscription_state()["SubscriptionState"] == "INACTIVE"
        shield.create_subscription()
        assert shield.get_subscription_state()["SubscriptionState"] == "ACTIVE"


def most_at_once(monkeypatch: pytest.MonkeyPatch) -> int:
    """How many DescribeVpcs calls of four concurrent clients moto serves at the same time (each takes 0.2 s)."""
    from moto.ec2.models import EC2Backend

    serving, most = [0], [0]
    counting = threading.Lock()
    describe = EC2Backend.describe_vpcs

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        with counting:
            serving[0] += 1
            most[0] = max(most[0], serving[0])
        time.sleep(0.2)
        with counting:
            serving[0] -= 1
        return describe(self, *args, **kwargs)

    monkeypatch.setattr(EC2Backend, "describe_vpcs", slow)
    clients = [boto3.client("ec2", region_name=REGION) for _ in range(4)]
    threads = [threading.Thread(target=client.describe_vpcs) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return most[0]


def test_ec2_requests_are_served_one_at_a_time(ec2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert most_at_once(monkeypatch) > 1  # moto alone serves them side by side
    with moto_server.patched(["ec2_requests_concurrent"]):
        assert most_at_once(monkeypatch) == 1


def test_the_volumes_of_a_fleet_instance_carry_the_volume_tags(ec2: Any) -> None:
    with moto_server.patched(["fleet_volume_tags"]):
        launched, _ = launch_as_karpenter(ec2)
    instance = described(ec2, launched["InstanceIds"][0])
    volumes = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    assert volumes
    for volume in ec2.describe_volumes(VolumeIds=volumes)["Volumes"]:
        assert sorted(t["Key"] for t in volume.get("Tags", [])) == ["project", "run-id"]
    assert sorted(t["Key"] for t in instance["Tags"]) == ["project", "run-id"]


def test_the_patches_are_undone_after_the_block(ec2: Any) -> None:
    with moto_server.patched(list(moto_server.GAPS)):
        pass
    launched, group = launch_as_karpenter(ec2)
    instance = described(ec2, launched["InstanceIds"][0])
    # moto's own answers again: the first override, the default group, no spot request id.
    assert launched["InstanceType"] == TYPES[0]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] != [group]
    assert "SpotInstanceRequestId" not in instance
    volume = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert "Tags" not in ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]


def test_the_harness_emulator_serves_the_declared_images_with_the_gaps_patched(tmp_path: Path) -> None:
    server = emu.start(tmp_path / "emulator.log")
    try:
        ec2 = boto3.client("ec2", endpoint_url=server.endpoint, region_name=REGION, **CREDENTIALS)
        images = ec2.describe_images(Owners=["amazon"])["Images"]
        assert sorted(i["Name"] for i in images) == sorted(i["name"] for i in local_target().emulator_images)
        history = ec2.describe_spot_price_history(InstanceTypes=["c7i.large"])["SpotPriceHistory"]
        assert {float(h["SpotPrice"]) for h in history} == {moto_server.spot_price("c7i.large")}
        # What Karpenter's al2023@<release> alias reads for a 1.36 cluster (amifamily/al2023.go resolvePath).
        ssm = boto3.client("ssm", endpoint_url=server.endpoint, region_name=REGION, **CREDENTIALS)
        name = "amazon-eks-node-al2023-x86_64-standard-1.36-v20260714"
        path = f"/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/{name}/image_id"
        assert ssm.get_parameter(Name=path)["Parameter"]["Value"] == next(
            i["ImageId"] for i in images if i["Name"] == name
        )
    finally:
        server.stop()


def test_the_eks_ami_parameters_follow_the_images_names_and_only_theirs() -> None:
    """Every emulator image named as EKS names its AL2023 AMIs is published for its minor; the parameters of an
    arch or variant the emulator has no image of stay missing (Karpenter skips those), as does every parameter
    without the gap."""
    images = [
        {"ami_id": "ami-1", "name": "amazon-eks-node-al2023-x86_64-standard-1.35-v20260714"},
        {"ami_id": "ami-2", "name": "amazon-eks-node-al2023-x86_64-standard-1.36-v20260714"},
        {"ami_id": "ami-3", "name": "my-own-image"},
    ]
    found = {(a.minor, a.image_id): a.parameter for a in emu.eks_amis(images)}
    assert found == {
        ("1.35", "ami-1"): "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/"
        "amazon-eks-node-al2023-x86_64-standard-1.35-v20260714/image_id",
        ("1.36", "ami-2"): "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/"
        "amazon-eks-node-al2023-x86_64-standard-1.36-v20260714/image_id",
    }
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        (declared,) = [a for a in emu.eks_amis(local_target().emulator_images) if a.minor == "1.36"]
        with pytest.raises(ssm.exceptions.ParameterNotFound):
            ssm.get_parameter(Name=declared.parameter)
        with moto_server.patched(["eks_optimized_ami_parameters"]):
            assert ssm.get_parameter(Name=declared.parameter)["Parameter"]["Value"] == declared.image_id
            with pytest.raises(ssm.exceptions.ParameterNotFound):
                ssm.get_parameter(Name=declared.parameter.replace("/x86_64/standard/", "/arm64/standard/"))


def test_the_emulator_serves_the_alias_release_for_both_minors_of_the_upgrade() -> None:
    """The EC2NodeClass's alias resolves on the emulator at the pinned minor and where its upgrade starts."""
    pins = versions()
    release = pins["karpenter_ami_alias"].split("@", 1)[1]
    served = {
        a.minor for a in emu.eks_amis(local_target().emulator_images) if a.parameter.endswith(f"-{release}/image_id")
    }
    assert {pins["kubernetes"], pins["upgrade_from_kubernetes"]} <= served


def test_a_cluster_and_its_node_group_move_to_the_next_minor_as_eks_moves_them(tmp_path: Path) -> None:
    """UpdateClusterVersion, UpdateNodegroupVersion and DescribeUpdate, which moto lacks (eks_version_updates),
    against the harness's own server: what Terraform calls and polls when a cluster's version changes."""
    server = emu.start(tmp_path / "emulator.log")
    try:
        eks = boto3.client("eks", endpoint_url=server.endpoint, region_name=REGION, **CREDENTIALS)
        role = "arn:aws:iam::123456789012:role/cluster"
        eks.create_cluster(name="drill", version="1.35", roleArn=role, resourcesVpcConfig={"subnetIds": []})
        eks.create_nodegroup(clusterName="drill", nodegroupName="ops", nodeRole=role, subnets=["subnet-1"])
        update = eks.update_cluster_version(name="drill", version="1.36")["update"]
        assert (update["type"], update["status"]) == ("VersionUpdate", "Successful")
        assert eks.describe_update(name="drill", updateId=update["id"])["update"]["params"][0]["value"] == "1.36"
        assert eks.describe_cluster(name="drill")["cluster"]["version"] == "1.36"
        group_update = eks.update_nodegroup_version(clusterName="drill", nodegroupName="ops")["update"]
        described_update = eks.describe_update(name="drill", updateId=group_update["id"], nodegroupName="ops")
        assert described_update["update"]["status"] == "Successful"
        assert eks.describe_nodegroup(clusterName="drill", nodegroupName="ops")["nodegroup"]["version"] == "1.36"
        with pytest.raises(eks.exceptions.ResourceNotFoundException):
            eks.describe_update(name="drill", updateId=group_update["id"])  # the cluster's updates, not the group's
    finally:
        server.stop()
