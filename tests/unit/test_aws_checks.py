"""AWS judges against moto in-process: a platform built with boto3 passes; each planted defect fails its check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws

from harness.aws import checks, run_tags
from harness.aws.clients import AwsTarget
from harness.errors import InputError
from harness.keys import DISCOVERY_TAG, ELB_SUBNET_TAG, INTERNAL_ELB_SUBNET_TAG
from harness.project import capabilities, reference_dir
from harness.results import Status

CLUSTER = "eks-unit"
ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
RUN_TAGS = {"project": "eks-platform", "run-id": "r-unit", "expires-at": "2030-01-01T00:00:00+00:00"}
OPS_LABELS = {"workload-type": "ops", "karpenter.sh/controller": "true"}
OPS_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}
EVENT_KINDS = frozenset(
    {
        ("aws.health", "AWS Health Event"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    }
)


def ec2_tags(extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in {**RUN_TAGS, **(extra or {})}.items()]


def ec2_arn(kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{resource_id}"


def state_entry(address: str, values: dict[str, Any], tags_all: dict[str, str] | None = None) -> dict[str, Any]:
    """A managed resource as `terraform show -json` renders it (tags_all: the provider's default_tags merged in)."""
    return {
        "address": address,
        "mode": "managed",
        "type": address.split(".")[-2],
        "values": {**values, "tags_all": dict(RUN_TAGS if tags_all is None else tags_all)},
    }


def trust(service: str, actions: list[str]) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class Platform:
    """A minimal stand-in for what infra/platform creates, built with boto3 inside mock_aws, and the state of
    infra/platform that records it (`state`, as `terraform show -json` renders it)."""

    def __init__(self, target: AwsTarget) -> None:
        self.target = target
        ec2, eks, iam, sqs, events = (target.client(s) for s in ("ec2", "eks", "iam", "sqs", "events"))
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=ec2_tags())

        def subnet(cidr: str, zone: str, tags: dict[str, str]) -> str:
            sid = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
            ec2.create_tags(Resources=[sid], Tags=ec2_tags(tags))
            return str(sid)

        public = [subnet(f"10.0.{i}.0/24", f"{REGION}{z}", {ELB_SUBNET_TAG: "1"}) for i, z in ((1, "a"), (2, "b"))]
        private_tags = {INTERNAL_ELB_SUBNET_TAG: "1", DISCOVERY_TAG: CLUSTER}
        private = [subnet(f"10.0.{i}.0/24", f"{REGION}{z}", private_tags) for i, z in ((11, "a"), (12, "b"))]
        group = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
        ec2.create_tags(Resources=[group], Tags=ec2_tags({DISCOVERY_TAG: CLUSTER}))

        def role(name: str, service: str, actions: list[str]) -> str:
            created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(service, actions), Tags=ec2_tags())
            return str(created["Role"]["Arn"])

        pod_actions = sorted(checks.POD_IDENTITY_ACTIONS)
        cluster_role = role("cluster", "eks.amazonaws.com", ["sts:AssumeRole"])
        node_role = role("karpenter-node", "ec2.amazonaws.com", ["sts:AssumeRole"])
        controller_role = role("karpenter-controller", checks.POD_IDENTITY_PRINCIPAL, pod_actions)
        lb_role = role("lb-controller", checks.POD_IDENTITY_PRINCIPAL, pod_actions)
        cluster_arn = eks.create_cluster(
            name=CLUSTER, roleArn=cluster_role, resourcesVpcConfig={"subnetIds": private}, tags=dict(RUN_TAGS)
        )["cluster"]["arn"]
        template = ec2.create_launch_template(
            LaunchTemplateName="ops",
            LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": ec2_tags()}],
        )["LaunchTemplate"]
        nodegroup = eks.create_nodegroup(
            clusterName=CLUSTER,
            nodegroupName="ops",
            nodeRole=node_role,
            subnets=private,
            labels=OPS_LABELS,
            taints=[{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}],
            capacityType="ON_DEMAND",
            instanceTypes=["m7i.large"],
            launchTemplate={"id": template["LaunchTemplateId"], "version": "1"},
            tags=dict(RUN_TAGS),
        )["nodegroup"]
        queue_url = sqs.create_queue(QueueName=f"{CLUSTER}-interruption", tags=dict(RUN_TAGS))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_url, self.queue_arn = queue_url, queue_arn
        self.set_queue_policy(checks.EVENTS_PRINCIPAL)
        rules = {}
        for index, (source, detail) in enumerate(sorted(EVENT_KINDS)):
            name = f"rule-{index}"
            pattern = json.dumps({"source": [source], "detail-type": [detail]})
            rules[name] = events.put_rule(Name=name, EventPattern=pattern, Tags=ec2_tags())["RuleArn"]
            events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
        # What the platform creates beyond what the other checks read: each must carry the run's tags too.
        eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": ec2_tags()}])
        self.nat = ec2.create_nat_gateway(
            SubnetId=public[0],
            AllocationId=eip["AllocationId"],
            TagSpecifications=[{"ResourceType": "natgateway", "Tags": ec2_tags()}],
        )["NatGateway"]["NatGatewayId"]
        kms_tags = [{"TagKey": k, "TagValue": v} for k, v in RUN_TAGS.items()]
        self.key = target.client("kms").create_key(Description="secrets", Tags=kms_tags)["KeyMetadata"]
        log_group = f"/aws/eks/{CLUSTER}/cluster"
        target.client("logs").create_log_group(logGroupName=log_group, tags=dict(RUN_TAGS))
        self.log_group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"
        rule = ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}],
            TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ec2_tags()}],
        )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        network = [
            state_entry("module.network.aws_vpc.this", {"id": vpc, "arn": ec2_arn("vpc", vpc)}),
            *(
                state_entry(f"module.network.aws_subnet.public[{i}]", {"id": s, "arn": ec2_arn("subnet", s)})
                for i, s in enumerate(public)
            ),
            *(
                state_entry(f"module.network.aws_subnet.private[{i}]", {"id": s, "arn": ec2_arn("subnet", s)})
                for i, s in enumerate(private)
            ),
            state_entry(
                "module.network.aws_eip.nat",
                {"id": eip["AllocationId"], "arn": ec2_arn("elastic-ip", eip["AllocationId"])},
            ),
            state_entry("module.network.aws_nat_gateway.this", {"id": self.nat}),  # its state has no ARN
            {
                "address": "module.network.aws_route.private_nat",
                "mode": "managed",
                "type": "aws_route",
                "values": {"id": "r-1"},
            },  # not taggable: no tags_all
        ]
        cluster = [
            state_entry("module.cluster.aws_eks_cluster.this", {"id": CLUSTER, "arn": cluster_arn}),
            state_entry(
                "module.cluster.aws_eks_node_group.ops",
                {"id": f"{CLUSTER}:ops", "arn": nodegroup["nodegroupArn"]},
            ),
            state_entry("module.cluster.aws_iam_role.cluster", {"id": "cluster", "arn": cluster_role}),
            state_entry("module.cluster.aws_kms_key.secrets", {"id": self.key["KeyId"], "arn": self.key["Arn"]}),
            state_entry(
                "module.cluster.aws_cloudwatch_log_group.control_plane",
                {"id": log_group, "arn": self.log_group_arn},
            ),
            state_entry(
                "module.cluster.aws_security_group.nodes", {"id": group, "arn": ec2_arn("security-group", group)}
            ),
            state_entry(
                "module.cluster.aws_vpc_security_group_ingress_rule.nodes_self",
                {"id": rule, "arn": ec2_arn("security-group-rule", rule)},
            ),
            state_entry(
                "module.cluster.aws_launch_template.ops",
                {"id": template["LaunchTemplateId"], "arn": ec2_arn("launch-template", template["LaunchTemplateId"])},
            ),
        ]
        karpenter = [
            state_entry("module.karpenter.aws_iam_role.node", {"id": "karpenter-node", "arn": node_role}),
            state_entry(
                "module.karpenter.aws_iam_role.controller", {"id": "karpenter-controller", "arn": controller_role}
            ),
            state_entry("module.lb_controller.aws_iam_role.this", {"id": "lb-controller", "arn": lb_role}),
            state_entry("module.karpenter.aws_sqs_queue.interruption", {"id": queue_url, "arn": queue_arn}),
            *(
                state_entry(f'module.karpenter.aws_cloudwatch_event_rule.interruption["{n}"]', {"id": n, "arn": arn})
                for n, arn in rules.items()
            ),
        ]
        self.state = {
            "values": {
                "root_module": {
                    "resources": [{"address": "data.aws_region.current", "mode": "data", "values": {"id": REGION}}],
                    "child_modules": [{"resources": network}, {"resources": cluster}, {"resources": karpenter}],
                }
            }
        }
        self.outputs: dict[str, Any] = {
            "cluster_name": CLUSTER,
            "vpc_id": vpc,
            "public_subnet_ids": public,
            "private_subnet_ids": private,
            "discovery_security_group_id": group,
            "ops_node_group_name": "ops",
            "ops_node_labels": OPS_LABELS,
            "ops_instance_types": ["m7i.large"],
            "karpenter_node_role_arn": node_role,
            "karpenter_controller_role_arn": controller_role,
            "lb_controller_role_arn": lb_role,
            "karpenter_interruption_queue_name": f"{CLUSTER}-interruption",
            "karpenter_service_account": {"namespace": "kube-system", "name": "karpenter"},
            "lb_controller_service_account": {"namespace": "kube-system", "name": "aws-load-balancer-controller"},
        }
        self.expect = checks.Expectations(
            outputs=self.outputs,
            ops=checks.OpsNodeGroupSpec(OPS_LABELS, [OPS_TAINT], "ON_DEMAND", ["m7i.large"]),
            run_tags=RUN_TAGS,
            interruption_events=EVENT_KINDS,
            created=run_tags.taggable_resources(self.state),
        )

    def set_queue_policy(self, service: str) -> None:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": [service, "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": self.queue_arn,
                }
            ],
        }
        self.target.client("sqs").set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(policy)}
        )

    def verify(self) -> dict[str, checks.Result]:
        return {r.name: r for r in checks.verify_platform(self.target, self.expect)}


@pytest.fixture
def platform(no_real_aws: None) -> Iterator[Platform]:
    with mock_aws():
        yield Platform(AwsTarget(capabilities("emulator"), REGION))


def failed(results: dict[str, checks.Result]) -> dict[str, str]:
    return {name: r.why for name, r in results.items() if r.status is Status.FAIL}


def test_a_correct_platform_passes_every_check_and_reports_missing_capabilities(platform: Platform) -> None:
    results = platform.verify()
    assert failed(results) == {}
    not_applicable = {n: r.why for n, r in results.items() if r.status is Status.NOT_APPLICABLE}
    assert not_applicable == {
        "pod identity associations for the controllers": "not applicable on emulator: the emulator has no EKS "
        "Pod Identity API (CreatePodIdentityAssociation)",
        "access entry lets Karpenter nodes join": "not applicable on emulator: the emulator has no EKS "
        "access-entry API (CreateAccessEntry)",
    }
    assert len(results) == 14
    tags = results["the run's tags on what it created"]
    assert tags.why.startswith(f"{len(platform.expect.created)} resources carry expires-at, project, run-id")
    assert f"module.network.aws_nat_gateway.this {platform.nat}" in tags.evidence["resources"]
    assert not any("aws_route." in r for r in tags.evidence["resources"])  # no tags_all: not taggable
    # IAM always, and what the emulator's tagging API does not list (infra/targets.yaml resource_tagging_api), are
    # read through their service's own API; the rest (NAT gateway, KMS key, log group, queue...) through GetResources.
    own = " ".join(tags.evidence["read_through_own_api"])
    assert all(k in own for k in ("aws_iam_role.", "aws_eks_cluster.", "aws_eip.", "aws_launch_template."))
    assert not any(k in own for k in ("aws_nat_gateway.", "aws_kms_key.", "aws_cloudwatch_log_group.", "aws_vpc."))


def test_a_public_subnet_without_the_elb_tag_fails(platform: Platform) -> None:
    platform.target.client("ec2").delete_tags(
        Resources=[platform.outputs["public_subnet_ids"][0]], Tags=[{"Key": ELB_SUBNET_TAG}]
    )
    assert (
        "lack tag kubernetes.io/role/elb=1"
        in failed(platform.verify())["public subnets discoverable by the ALB controller"]
    )


def test_a_private_subnet_without_discovery_tag_fails(platform: Platform) -> None:
    platform.target.client("ec2").delete_tags(
        Resources=[platform.outputs["private_subnet_ids"][1]], Tags=[{"Key": DISCOVERY_TAG}]
    )
    why = failed(platform.verify())["private subnets for internal ALBs and Karpenter"]
    assert f"lacks {DISCOVERY_TAG}" in why


def test_a_second_discovery_group_fails(platform: Platform) -> None:
    ec2 = platform.target.client("ec2")
    extra = ec2.create_security_group(GroupName="x", Description="x", VpcId=platform.outputs["vpc_id"])["GroupId"]
    ec2.create_tags(Resources=[extra], Tags=[{"Key": DISCOVERY_TAG, "Value": CLUSTER}])
    assert "2 security groups carry" in failed(platform.verify())["exactly one Karpenter discovery security group"]


def test_an_ops_node_group_other_than_configured_fails(platform: Platform) -> None:
    platform.expect = replace(
        platform.expect,
        ops=checks.OpsNodeGroupSpec({**OPS_LABELS, "tier": "ops"}, [OPS_TAINT], "SPOT", ["m7i.large"]),
    )
    why = failed(platform.verify())["ops node group labels, taint and capacity type"]
    assert "label tier=ops missing" in why and "capacity type ON_DEMAND, configured SPOT" in why


def test_a_queue_policy_without_eventbridge_fails(platform: Platform) -> None:
    platform.set_queue_policy("sns.amazonaws.com")
    assert "events.amazonaws.com" in failed(platform.verify())["interruption queue policy admits EventBridge"]


def test_missing_interruption_rules_fail(platform: Platform) -> None:
    platform.expect = replace(
        platform.expect, interruption_events=EVENT_KINDS | {("aws.ec2", "EC2 Instance State-change Notification")}
    )
    why = failed(platform.verify())["EventBridge rules feed the interruption queue"]
    assert why.endswith("aws.ec2 / EC2 Instance State-change Notification")


def test_a_role_trusting_the_wrong_principal_fails(platform: Platform) -> None:
    platform.target.client("iam").update_assume_role_policy(
        RoleName="lb-controller", PolicyDocument=trust(checks.POD_IDENTITY_PRINCIPAL, ["sts:AssumeRole"])
    )
    why = failed(platform.verify())["LB controller role trusts pods.eks.amazonaws.com"]
    assert why == "pods.eks.amazonaws.com lacks sts:TagSession"


def test_an_untagged_role_fails_the_run_tag_check(platform: Platform) -> None:
    platform.target.client("iam").untag_role(RoleName="karpenter-node", TagKeys=["run-id"])
    why = failed(platform.verify())["the run's tags on what it created"]
    assert why == "module.karpenter.aws_iam_role.node karpenter-node lacks run-id"


def test_a_nat_gateway_without_the_run_id_fails_naming_it(platform: Platform) -> None:
    platform.target.client("ec2").delete_tags(Resources=[platform.nat], Tags=[{"Key": "run-id"}])
    why = failed(platform.verify())["the run's tags on what it created"]
    assert why == f"module.network.aws_nat_gateway.this {platform.nat} lacks run-id"


def test_a_kms_key_without_its_expiry_fails_naming_it(platform: Platform) -> None:
    platform.target.client("kms").untag_resource(KeyId=platform.key["KeyId"], TagKeys=["expires-at"])
    why = failed(platform.verify())["the run's tags on what it created"]
    assert why == f"module.cluster.aws_kms_key.secrets {platform.key['KeyId']} lacks expires-at"


def test_what_the_tagging_api_no_longer_lists_is_read_through_its_own_api_where_the_target_declares_it(
    platform: Platform,
) -> None:
    """Without its run-id the tagging API filter leaves a resource out; on the emulator (resource_tagging_api) its
    service's own API still says exactly which tag is missing."""
    platform.target.client("kms").untag_resource(KeyId=platform.key["KeyId"], TagKeys=["run-id"])
    platform.target.client("logs").untag_resource(resourceArn=platform.log_group_arn, tagKeys=["run-id"])
    platform.target.client("sqs").untag_queue(QueueUrl=platform.queue_url, TagKeys=["run-id"])
    why = failed(platform.verify())["the run's tags on what it created"]
    assert why.split("; ") == [
        f"module.cluster.aws_cloudwatch_log_group.control_plane /aws/eks/{CLUSTER}/cluster lacks run-id",
        f"module.cluster.aws_kms_key.secrets {platform.key['KeyId']} lacks run-id",
        f"module.karpenter.aws_sqs_queue.interruption {platform.queue_url} lacks run-id",
    ]


def test_an_untagged_launch_template_fails_through_the_own_api_read(platform: Platform) -> None:
    template = platform.target.client("ec2").describe_launch_templates()["LaunchTemplates"][0]["LaunchTemplateId"]
    platform.target.client("ec2").delete_tags(Resources=[template], Tags=[{"Key": k} for k in RUN_TAGS])
    why = failed(platform.verify())["the run's tags on what it created"]
    assert why == f"module.cluster.aws_launch_template.ops {template} lacks expires-at, project, run-id"


def test_where_the_tagging_api_should_list_eks_a_cluster_it_does_not_list_fails(platform: Platform) -> None:
    """The own-API reads are for the gaps a target declares: without that declaration, what GetResources does
    not list (moto lists no EKS cluster) counts as untagged."""
    caps = platform.target.capabilities
    unsupported = {k: v for k, v in caps.unsupported.items() if k != run_tags.RESOURCE_TAGGING_API}
    platform.target = AwsTarget(replace(caps, unsupported=unsupported), REGION)
    why = failed(platform.verify())["the run's tags on what it created"]
    unlisted = "lacks expires-at, project, run-id (the tagging API does not list it with the run's id)"
    assert f"module.cluster.aws_eks_cluster.this {CLUSTER} {unlisted}" in why
    assert "aws_nat_gateway" not in why and "aws_iam_role" not in why  # listed / read through IAM as before


def test_a_deleted_queue_fails_without_hiding_other_checks(platform: Platform) -> None:
    platform.target.client("sqs").delete_queue(QueueUrl=platform.queue_url)
    results = platform.verify()
    assert "no SQS queue named" in failed(results)["interruption queue exists"]
    assert results["public subnets discoverable by the ALB controller"].status is Status.PASS


def test_on_aws_the_eks_only_checks_run(platform: Platform) -> None:
    platform.target = AwsTarget(capabilities("aws"), REGION)
    results = platform.verify()
    assert all(r.status is not Status.NOT_APPLICABLE for r in results.values())
    assert "pod identity associations for the controllers" in results


# --- pure judges on hand-written API responses ------------------------------------------------------------
def test_run_tags_judge() -> None:
    tagged = {"module.network.aws_vpc.this vpc-1": dict(RUN_TAGS), "NodeClaim apps-x instance i-1": dict(RUN_TAGS)}
    result = checks.judge_run_tags(tagged, RUN_TAGS, own_api=["NodeClaim apps-x instance i-1"])
    assert result.status is Status.PASS
    assert result.why == "2 resources carry expires-at, project, run-id (1 read through their service's own tags API)"
    stale = {**tagged, "module.network.aws_eip.nat eipalloc-1": {**RUN_TAGS, "run-id": "r-other"}}
    result = checks.judge_run_tags(stale, RUN_TAGS, name=checks.CONTROLLER_RUN_TAGS)
    assert (result.name, result.status) == (checks.CONTROLLER_RUN_TAGS, Status.FAIL)
    assert result.why == "module.network.aws_eip.nat eipalloc-1 lacks run-id"
    assert checks.judge_run_tags({}, RUN_TAGS).why == "no resources to inspect"


def test_taggable_resources_are_the_managed_ones_with_tags_all() -> None:
    state = {
        "values": {
            "root_module": {
                "resources": [
                    state_entry("aws_vpc.this", {"id": "vpc-1", "arn": ec2_arn("vpc", "vpc-1")}),
                    {"address": "aws_route.r", "mode": "managed", "type": "aws_route", "values": {"id": "r-1"}},
                    {"address": "data.aws_vpc.x", "mode": "data", "values": {"id": "vpc-2", "tags_all": {}}},
                ],
                "child_modules": [
                    {
                        "resources": [
                            state_entry(
                                "module.cluster.aws_eks_access_entry.node",
                                {"id": "c:arn:role", "access_entry_arn": "arn:aws:eks:r:a:access-entry/c/x"},
                            )
                        ]
                    }
                ],
            }
        }
    }
    assert run_tags.taggable_resources(state) == [
        run_tags.CreatedResource("aws_vpc.this", "vpc-1", ec2_arn("vpc", "vpc-1")),
        run_tags.CreatedResource(
            "module.cluster.aws_eks_access_entry.node", "c:arn:role", "arn:aws:eks:r:a:access-entry/c/x"
        ),
    ]
    assert run_tags.taggable_resources({}) == []


def test_imds_judge() -> None:
    good = {"LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}}}
    assert checks.judge_launch_template_metadata(good).status is Status.PASS
    bad = {"LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2}}}
    why = checks.judge_launch_template_metadata(bad).why
    assert "HttpTokens is 'optional'" in why and "hop limit is 2" in why
    assert checks.judge_launch_template_metadata(None).status is Status.FAIL


def test_pod_identity_judge() -> None:
    expected = {"kube-system/karpenter": "arn:role/k"}
    good = [{"namespace": "kube-system", "serviceAccount": "karpenter", "roleArn": "arn:role/k"}]
    assert checks.judge_pod_identity_associations(good, expected).ok
    wrong = [{"namespace": "kube-system", "serviceAccount": "karpenter", "roleArn": "arn:role/x"}]
    assert "want arn:role/k" in checks.judge_pod_identity_associations(wrong, expected).why
    assert not checks.judge_pod_identity_associations([], expected).ok


def test_access_entry_judge() -> None:
    assert checks.judge_access_entries([{"principalArn": "arn:n", "type": "EC2_LINUX"}], "arn:n").ok
    assert "type STANDARD" in checks.judge_access_entries([{"principalArn": "arn:n", "type": "STANDARD"}], "arn:n").why
    assert "type none" in checks.judge_access_entries([], "arn:n").why


def test_nothing_left_judge() -> None:
    assert checks.judge_nothing_left([], "r1").ok
    assert checks.judge_nothing_left(["vpc vpc-1"], "r1").why == "1 resources of run r1 remain"


def test_rules_without_reference_data_say_the_kinds_were_not_compared() -> None:
    rules = [{"Name": "r", "EventPattern": json.dumps({"source": ["aws.ec2"], "detail-type": ["x"]}),
              "Targets": [{"Arn": "arn:q"}]}]  # fmt: skip
    result = checks.judge_interruption_rules(rules, "arn:q", None)
    assert result.ok and "not compared" in result.why
    assert checks.judge_interruption_rules(rules, "arn:other", None).status is Status.FAIL


def test_karpenter_event_kinds_come_from_the_reference_template() -> None:
    try:
        reference = reference_dir()
    except InputError as exc:
        pytest.skip(f"no reference data: {exc}")
    kinds = checks.karpenter_interruption_events(reference)
    assert ("aws.ec2", "EC2 Spot Instance Interruption Warning") in kinds
    assert ("aws.health", "AWS Health Event") in kinds
