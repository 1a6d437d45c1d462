"""Emulator tier: infra/platform applied for real against a moto server process, judged, re-planned, destroyed.

The session-scoped `harness_platform` fixture (harness.plugin) applies once and destroys at the end; it skips with
one line when Terraform or its AWS provider is missing. The last test destroys explicitly and proves that
nothing tagged with the run id is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.aws import checks
from harness.aws.clients import AwsTarget
from harness.aws.leaks import find_leaks, find_tagged_arns
from harness.project import TargetCapabilities
from harness.results import Result, Status
from harness.targets.stack import Stack

pytestmark = pytest.mark.integration

ROLE_CHECKS = [
    f"Karpenter controller role trusts {checks.POD_IDENTITY_PRINCIPAL}",
    f"LB controller role trusts {checks.POD_IDENTITY_PRINCIPAL}",
    f"Karpenter node role trusts {checks.EC2_PRINCIPAL}",
]
EVERY_CHECK = [
    checks.PUBLIC_SUBNETS,
    checks.PRIVATE_SUBNETS,
    checks.DISCOVERY_GROUP,
    checks.OPS_NODE_GROUP,
    checks.IMDS,
    checks.QUEUE_EXISTS,
    checks.QUEUE_POLICY,
    checks.INTERRUPTION_RULES,
    *ROLE_CHECKS,
    checks.RUN_TAGS,
    checks.POD_IDENTITY,
    checks.ACCESS_ENTRIES,
]
# Which capability (infra/targets.yaml) each check needs beyond the basics.
NEEDS = {checks.POD_IDENTITY: "eks_pod_identity_associations", checks.ACCESS_ENTRIES: "eks_access_entries"}
OUTPUTS = [
    "region",
    "cluster_name",
    "cluster_arn",
    "cluster_endpoint",
    "cluster_certificate_authority_data",
    "kubernetes_version",
    "vpc_id",
    "public_subnet_ids",
    "private_subnet_ids",
    "discovery_security_group_id",
    "ops_node_group_name",
    "ops_node_labels",
    "ops_instance_types",
    "karpenter_node_role_name",
    "karpenter_node_role_arn",
    "karpenter_controller_role_arn",
    "karpenter_interruption_queue_name",
    "karpenter_interruption_queue_url",
    "karpenter_service_account",
    "lb_controller_role_arn",
    "lb_controller_service_account",
    "unsupported_on_target",
    "tags",
    "eks_addon_versions",
    "admin_principal_arns",
    "default_security_group_id",
]


@pytest.fixture(scope="module")
def results(harness_platform: Stack) -> dict[str, Result]:
    return {r.name: r for r in harness_platform.verify()}


def test_every_check_was_judged(results: dict[str, Result]) -> None:
    assert sorted(results) == sorted(EVERY_CHECK)


@pytest.mark.parametrize("name", EVERY_CHECK)
def test_aws_assertion(name: str, results: dict[str, Result], harness_target: TargetCapabilities) -> None:
    result = results[name]
    if name in NEEDS and not harness_target.supports(NEEDS[name]):
        assert result.status is Status.NOT_APPLICABLE
        assert result.why == f"not applicable on {harness_target.name}: {harness_target.reason(NEEDS[name])}"
    else:
        assert result.status is Status.PASS, f"{result.why} {dict(result.evidence)}"


def test_outputs_follow_the_contract(
    harness_platform: Stack, harness_platform_outputs: dict[str, Any], harness_target: TargetCapabilities
) -> None:
    assert sorted(set(OUTPUTS) - set(harness_platform_outputs)) == []
    assert harness_platform_outputs["unsupported_on_target"] == harness_target.unsupported
    assert harness_platform_outputs["tags"] == harness_platform.run.tags


def test_every_path_the_addons_read_exists_in_the_real_outputs(
    harness_platform_outputs: dict[str, Any], addons_platform_reads: dict[tuple[str, ...], bool]
) -> None:
    """What infra/addons reads, walked step by step through what the platform really output."""
    missing = []
    for path, optional in addons_platform_reads.items():
        value: Any = harness_platform_outputs
        for step in path:
            if not isinstance(value, dict) or step not in value:
                if not optional:
                    missing.append(".".join(path))
                break
            value = value[step]
    assert missing == []


def _drop(values: dict[str, Any] | None, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if k not in keys}


def emulator_quirk(change: dict[str, Any]) -> str | None:
    """Why a planned update is moto's doing rather than drift in the configuration, or None if it is real."""
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    if change["type"] == "aws_launch_template":
        versions = {"default_version", "latest_version", "tag_specifications"}

        def own_tags_removed(values: dict[str, Any]) -> list[Any]:
            specs = values.get("tag_specifications") or []
            return [spec for spec in specs if spec.get("resource_type") != "launch-template"]

        if _drop(before, versions) == _drop(after, versions) and own_tags_removed(before) == own_tags_removed(after):
            return "moto lists the template's own tags as a 'launch-template' tag specification"
    if change["type"] == "aws_eks_node_group":

        def without_version(values: dict[str, Any]) -> dict[str, Any]:
            templates = [_drop(t, {"version"}) for t in values.get("launch_template") or []]
            return {**values, "launch_template": templates}

        if without_version(before) == without_version(after):
            return "follows the launch template's version, bumped only by the quirk above"
    return None


def test_the_default_security_group_keeps_no_rules(
    harness_platform_outputs: dict[str, Any], harness_aws_clients: Callable[[str], Any]
) -> None:
    """The VPC's default group starts with a self-referencing ingress and an all-egress rule; the platform
    adopts it and removes both, so nothing launched into it by mistake can talk to anything."""
    group_id = harness_platform_outputs["default_security_group_id"]
    group = harness_aws_clients("ec2").describe_security_groups(GroupIds=[group_id])
    (found,) = group["SecurityGroups"]
    assert found["GroupName"] == "default" and found["VpcId"] == harness_platform_outputs["vpc_id"]
    assert found["IpPermissions"] == [] and found["IpPermissionsEgress"] == []


@pytest.mark.parametrize(
    ("output", "service_account"),
    [
        ("karpenter_controller_role_arn", "karpenter_service_account"),
        ("lb_controller_role_arn", "lb_controller_service_account"),
    ],
)
def test_controller_roles_trust_only_their_cluster_namespace_and_service_account(
    output: str,
    service_account: str,
    harness_platform_outputs: dict[str, Any],
    harness_aws_clients: Callable[[str], Any],
) -> None:
    """The trust policy as IAM stores it: the EKS Pod Identity session tags pin the role to one service account."""
    role_name = str(harness_platform_outputs[output]).rsplit("/", 1)[-1]
    role = harness_aws_clients("iam").get_role(RoleName=role_name)["Role"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    account = harness_platform_outputs[service_account]
    assert statement["Principal"] == {"Service": checks.POD_IDENTITY_PRINCIPAL}
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:RequestTag/eks-cluster-arn": harness_platform_outputs["cluster_arn"],
            "aws:RequestTag/kubernetes-namespace": account["namespace"],
            "aws:RequestTag/kubernetes-service-account": account["name"],
        }
    }


def test_a_second_plan_shows_no_changes(harness_platform: Stack) -> None:
    plan = harness_platform.terraform.plan(harness_platform.variables())
    touched = {rc["address"]: rc for rc in plan.document.get("resource_changes", [])}
    real = {address: actions for address, actions in plan.changes if emulator_quirk(touched[address]) is None}
    assert real == {}


def test_the_quirk_filter_still_sees_real_drift() -> None:
    template = {"type": "aws_launch_template", "change": {"before": {"name": "a"}, "after": {"name": "b"}}}
    assert emulator_quirk(template) is None
    quirk = {
        "type": "aws_launch_template",
        "change": {
            "before": {"name": "a", "latest_version": 1, "tag_specifications": [{"resource_type": "launch-template"}]},
            "after": {"name": "a", "tag_specifications": []},
        },
    }
    assert emulator_quirk(quirk) is not None


def gone_for_good(arn: str, clients: Callable[[str], Any]) -> bool:
    """Deleted resources the tagging API still lists: a NAT gateway stays visible as `deleted` for a while,
    a KMS key waits out its deletion window as `PendingDeletion`, a terminated instance stays listed for about
    an hour and a spot request it ended stays `closed` (all on AWS too; the local tier's Karpenter leaves the
    last two in the session's emulator)."""
    resource = arn.split(":", 5)[5]
    if resource.startswith("instance/"):
        reservations = clients("ec2").describe_instances(InstanceIds=[resource.split("/", 1)[1]])["Reservations"]
        return all(i["State"]["Name"] == "terminated" for r in reservations for i in r["Instances"])
    if resource.startswith("spot-instance-request/"):
        ids = [resource.split("/", 1)[1]]
        found = clients("ec2").describe_spot_instance_requests(SpotInstanceRequestIds=ids)["SpotInstanceRequests"]
        return all(r["State"] in ("closed", "cancelled") for r in found)
    if resource.startswith("natgateway/"):
        found = clients("ec2").describe_nat_gateways(NatGatewayIds=[resource.split("/", 1)[1]])["NatGateways"]
        return all(g["State"] in ("deleting", "deleted") for g in found)
    if resource.startswith("key/"):
        return bool(clients("kms").describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "PendingDeletion")
    return False


def test_destroy_leaves_nothing_tagged_with_the_run_even_after_deletes_behind_its_back(
    harness_platform: Stack, harness_aws_target: AwsTarget, harness_aws_clients: Callable[[str], Any]
) -> None:
    """The destroy plans without a refresh (runner.DESTROY_FLAGS): objects deleted outside Terraform stay in the
    state, and their delete must count as done."""
    outputs = harness_platform.outputs()
    harness_aws_clients("sqs").delete_queue(QueueUrl=outputs["karpenter_interruption_queue_url"])
    node_role = outputs["karpenter_node_role_name"]
    attached = harness_aws_clients("iam").list_attached_role_policies(RoleName=node_role)["AttachedPolicies"]
    harness_aws_clients("iam").detach_role_policy(RoleName=node_role, PolicyArn=attached[0]["PolicyArn"])
    harness_platform.terraform.destroy(harness_platform.variables())
    assert harness_platform.terraform.managed_resources() == []
    run_id = harness_platform.run.id
    clients = harness_aws_clients
    tagged = [arn for arn in find_tagged_arns(clients, run_id) if not gone_for_good(arn, clients)]
    leftovers = [leak.label() for leak in find_leaks(harness_aws_clients, run_id)] + tagged
    verdict = checks.judge_nothing_left(leftovers, run_id)
    assert verdict.ok, verdict.evidence
