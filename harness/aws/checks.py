"""AWS-side judgements of the platform: pure `judge_*` functions over API responses, thin `fetch_*` around boto3.

The same judges run against moto in-process (unit tier), a moto server (emulator tier) and a real account
(e2e). `verify_platform` fetches, judges and reports what the target cannot serve as not applicable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from harness.aws.clients import AwsTarget
from harness.aws.leaks import tag_map
from harness.aws.run_tags import CreatedResource, read_tags
from harness.keys import DISCOVERY_TAG, ELB_SUBNET_TAG, INTERNAL_ELB_SUBNET_TAG
from harness.results import Result
from harness.run import RUN_ID_TAG

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = frozenset({"sts:AssumeRole", "sts:TagSession"})
EC2_PRINCIPAL = "ec2.amazonaws.com"
EVENTS_PRINCIPAL = "events.amazonaws.com"
MIN_AZS = 2

# Check names: one per judge, also used when its fetch fails.
PUBLIC_SUBNETS = "public subnets discoverable by the ALB controller"
PRIVATE_SUBNETS = "private subnets for internal ALBs and Karpenter"
DISCOVERY_GROUP = "exactly one Karpenter discovery security group"
OPS_NODE_GROUP = "ops node group labels, taint and capacity type"
QUEUE_EXISTS = "interruption queue exists"
INTERRUPTION_RULES = "EventBridge rules feed the interruption queue"
QUEUE_POLICY = "interruption queue policy admits EventBridge"
RUN_TAGS = "the run's tags on what it created"
CONTROLLER_RUN_TAGS = "the run's tags on what the controllers created"
IMDS = "IMDSv2 with hop limit 1 on the ops launch template"
POD_IDENTITY = "pod identity associations for the controllers"
ACCESS_ENTRIES = "access entry lets Karpenter nodes join"
NOTHING_LEFT = "nothing tagged with the run id is left"

EventKind = tuple[str, str]  # (source, detail-type) of an EventBridge rule


# --- judges -----------------------------------------------------------------------------------------------
def judge_public_subnets(subnets: Sequence[Mapping[str, Any]], expected_ids: Sequence[str]) -> Result:
    name = PUBLIC_SUBNETS
    found = {s["SubnetId"]: s for s in subnets}
    missing = sorted(set(expected_ids) - set(found))
    untagged = sorted(
        i for i in expected_ids if i in found and tag_map(found[i].get("Tags")).get(ELB_SUBNET_TAG) != "1"
    )
    zones = sorted({found[i]["AvailabilityZone"] for i in expected_ids if i in found})
    evidence = {"subnets": list(expected_ids), "zones": zones, "missing": missing, "untagged": untagged}
    if missing:
        return Result.failed(name, f"subnets not found: {', '.join(missing)}", **evidence)
    if untagged:
        return Result.failed(name, f"{', '.join(untagged)} lack tag {ELB_SUBNET_TAG}=1", **evidence)
    if len(zones) < MIN_AZS:
        return Result.failed(name, f"ALBs need subnets in >= {MIN_AZS} zones, found {len(zones)}", **evidence)
    why = f"{len(expected_ids)} subnets tagged {ELB_SUBNET_TAG}=1 across {len(zones)} zones"
    return Result.passed(name, why, **evidence)


def judge_private_subnets(
    subnets: Sequence[Mapping[str, Any]], expected_ids: Sequence[str], cluster_name: str
) -> Result:
    name = PRIVATE_SUBNETS
    wanted = {INTERNAL_ELB_SUBNET_TAG: "1", DISCOVERY_TAG: cluster_name}
    found = {s["SubnetId"]: s for s in subnets}
    missing = sorted(set(expected_ids) - set(found))
    wrong = {
        i: sorted(k for k, v in wanted.items() if tag_map(found[i].get("Tags")).get(k) != v)
        for i in expected_ids
        if i in found
    }
    wrong = {i: keys for i, keys in wrong.items() if keys}
    zones = sorted({found[i]["AvailabilityZone"] for i in expected_ids if i in found})
    evidence = {"subnets": list(expected_ids), "zones": zones, "missing": missing, "missing_tags": wrong}
    if missing:
        return Result.failed(name, f"subnets not found: {', '.join(missing)}", **evidence)
    if wrong:
        detail = "; ".join(f"{i} lacks {', '.join(keys)}" for i, keys in wrong.items())
        want = f"{INTERNAL_ELB_SUBNET_TAG}=1, {DISCOVERY_TAG}={cluster_name}"
        return Result.failed(name, f"{detail} (want {want})", **evidence)
    if len(zones) < MIN_AZS:
        return Result.failed(name, f"need subnets in >= {MIN_AZS} zones, found {len(zones)}", **evidence)
    tagged = f"{INTERNAL_ELB_SUBNET_TAG}=1 and {DISCOVERY_TAG}={cluster_name}"
    return Result.passed(name, f"{len(expected_ids)} subnets tagged {tagged}", **evidence)


def judge_discovery_security_group(groups: Sequence[Mapping[str, Any]], cluster_name: str, expected_id: str) -> Result:
    name = DISCOVERY_GROUP
    tagged = sorted(g["GroupId"] for g in groups if tag_map(g.get("Tags")).get(DISCOVERY_TAG) == cluster_name)
    evidence = {"tagged": tagged, "expected": expected_id}
    if len(tagged) != 1:
        return Result.failed(
            name,
            f"{len(tagged)} security groups carry {DISCOVERY_TAG}={cluster_name}; Karpenter needs exactly 1",
            **evidence,
        )
    if tagged[0] != expected_id:
        return Result.failed(
            name, f"the tagged group is {tagged[0]}, the platform output says {expected_id}", **evidence
        )
    return Result.passed(name, f"{expected_id} is the only group tagged {DISCOVERY_TAG}={cluster_name}", **evidence)


@dataclass(frozen=True)
class OpsNodeGroupSpec:
    """The ops node group as configured (platform outputs and the node group's Terraform configuration)."""

    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]  # EKS API form: key, value, effect (NO_SCHEDULE, ...)
    capacity_type: str
    instance_types: Sequence[str]


def judge_ops_node_group(nodegroup: Mapping[str, Any] | None, spec: OpsNodeGroupSpec) -> Result:
    name = OPS_NODE_GROUP
    if nodegroup is None:
        return Result.failed(name, "the ops node group does not exist")
    labels = dict(nodegroup.get("labels") or {})
    taints = sorted((t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in nodegroup.get("taints") or [])
    want_taints = sorted((t["key"], t.get("value", ""), t["effect"]) for t in spec.taints)
    problems = [f"label {k}={v} missing" for k, v in spec.labels.items() if labels.get(k) != v]
    problems += [f"taint {k}={v}:{e} missing" for k, v, e in want_taints if (k, v, e) not in taints]
    if nodegroup.get("capacityType") != spec.capacity_type:
        problems.append(f"capacity type {nodegroup.get('capacityType')}, configured {spec.capacity_type}")
    if list(nodegroup.get("instanceTypes") or []) != list(spec.instance_types):
        problems.append(f"instance types {nodegroup.get('instanceTypes')}, configured {list(spec.instance_types)}")
    evidence = {
        "labels": labels,
        "taints": [":".join(t) for t in taints],
        "capacity_type": nodegroup.get("capacityType"),
    }
    if problems:
        return Result.failed(name, "; ".join(problems), **evidence)
    return Result.passed(
        name, f"{len(spec.labels)} labels, {len(want_taints)} taints, {spec.capacity_type} as configured", **evidence
    )


def judge_interruption_queue(queue_url: str | None, queue_name: str) -> Result:
    name = QUEUE_EXISTS
    if not queue_url:
        return Result.failed(name, f"no SQS queue named {queue_name}", queue=queue_name)
    return Result.passed(name, f"{queue_name} exists", queue=queue_name, url=queue_url)


def judge_interruption_rules(
    rules: Sequence[Mapping[str, Any]], queue_arn: str, required: frozenset[EventKind] | None
) -> Result:
    """`rules`: {Name, EventPattern (JSON), Targets}; `required`: the kinds Karpenter documents (None if unknown)."""
    name = INTERRUPTION_RULES
    covered: set[EventKind] = set()
    for rule in rules:
        if not any(t.get("Arn") == queue_arn for t in rule.get("Targets") or []):
            continue
        pattern = json.loads(rule.get("EventPattern") or "{}")
        covered |= {(s, d) for s in pattern.get("source", []) for d in pattern.get("detail-type", [])}
    evidence = {"rules": sorted(r["Name"] for r in rules), "covered": sorted(" / ".join(k) for k in covered)}
    if not covered:
        return Result.failed(name, f"no rule targets {queue_arn}", **evidence)
    if required is None:
        return Result.passed(
            name, f"{len(covered)} event kinds reach the queue (not compared: no reference data)", **evidence
        )
    missing = sorted(" / ".join(k) for k in required - covered)
    if missing:
        return Result.failed(
            name, f"events Karpenter handles that never reach the queue: {'; '.join(missing)}", **evidence
        )
    return Result.passed(name, f"all {len(required)} event kinds Karpenter handles reach the queue", **evidence)


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document) if document else {}
    statements = (document or {}).get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def judge_queue_policy(policy: str | None, queue_arn: str) -> Result:
    name = QUEUE_POLICY
    for statement in _statements(policy):
        services = _as_list((statement.get("Principal") or {}).get("Service"))
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource")) or [queue_arn]
        if (
            statement.get("Effect") == "Allow"
            and EVENTS_PRINCIPAL in services
            and any(a in ("sqs:SendMessage", "sqs:*") for a in actions)
            and any(r in (queue_arn, "*") for r in resources)
        ):
            return Result.passed(
                name, f"{EVENTS_PRINCIPAL} may sqs:SendMessage to the queue", statement=dict(statement)
            )
    return Result.failed(
        name, f"no Allow statement lets {EVENTS_PRINCIPAL} sqs:SendMessage to {queue_arn}", policy=policy or ""
    )


def judge_role_trust(role: Mapping[str, Any] | None, label: str, principal: str, actions: frozenset[str]) -> Result:
    name = f"{label} trusts {principal}"
    if role is None:
        return Result.failed(name, "the role does not exist")
    allowed: set[str] = set()
    for statement in _statements(role.get("AssumeRolePolicyDocument")):
        if statement.get("Effect") == "Allow" and principal in _as_list(
            (statement.get("Principal") or {}).get("Service")
        ):
            allowed |= set(_as_list(statement.get("Action")))
    evidence = {"role": role.get("Arn", ""), "actions": sorted(allowed)}
    if not allowed:
        return Result.failed(name, f"no Allow statement for the service principal {principal}", **evidence)
    missing = sorted(actions - allowed)
    if missing:
        return Result.failed(name, f"{principal} lacks {', '.join(missing)}", **evidence)
    return Result.passed(name, f"{principal} may {', '.join(sorted(actions))}", **evidence)


def judge_run_tags(
    tagged: Mapping[str, Mapping[str, str]],
    expected: Mapping[str, str],
    *,
    name: str = RUN_TAGS,
    own_api: Sequence[str] = (),
    unlisted: Sequence[str] = (),
) -> Result:
    """`tagged`: each created resource (by label) -> its tags as AWS reports them; `own_api`: the labels read through
    their service's own API; `unlisted`: those the Resource Groups Tagging API does not list with the run's id."""
    wrong = {resource: sorted(k for k, v in expected.items() if tags.get(k) != v) for resource, tags in tagged.items()}
    wrong = {r: keys for r, keys in wrong.items() if keys}
    evidence = {
        "resources": sorted(tagged),
        "missing": wrong,
        "read_through_own_api": sorted(own_api),
        "unlisted": sorted(unlisted),
    }
    if not tagged:
        return Result.failed(name, "no resources to inspect", **evidence)
    if wrong:
        detail = "; ".join(
            f"{r} lacks {', '.join(keys)}"
            + (" (the tagging API does not list it with the run's id)" if r in unlisted else "")
            for r, keys in sorted(wrong.items())
        )
        return Result.failed(name, detail, **evidence)
    why = f"{len(tagged)} resources carry {', '.join(sorted(expected))}"
    if own_api:
        why += f" ({len(own_api)} read through their service's own tags API)"
    return Result.passed(name, why, **evidence)


def judge_launch_template_metadata(version: Mapping[str, Any] | None) -> Result:
    name = IMDS
    if version is None:
        return Result.failed(name, "the ops node group has no launch template")
    options = (version.get("LaunchTemplateData") or {}).get("MetadataOptions") or {}
    evidence = {"template": version.get("LaunchTemplateId", ""), "metadata_options": dict(options)}
    problems = []
    if options.get("HttpTokens") != "required":
        problems.append(f"HttpTokens is {options.get('HttpTokens')!r}, want 'required'")
    if options.get("HttpPutResponseHopLimit") != 1:
        problems.append(f"hop limit is {options.get('HttpPutResponseHopLimit')!r}, want 1")
    if problems:
        return Result.failed(name, "; ".join(problems), **evidence)
    return Result.passed(name, "HttpTokens=required, HttpPutResponseHopLimit=1", **evidence)


def judge_pod_identity_associations(associations: Sequence[Mapping[str, Any]], expected: Mapping[str, str]) -> Result:
    """`expected`: "namespace/serviceaccount" -> role ARN."""
    name = POD_IDENTITY
    actual = {f"{a['namespace']}/{a['serviceAccount']}": a.get("roleArn", "") for a in associations}
    problems = [
        f"{sa} -> {actual.get(sa) or 'nothing'}, want {role}" for sa, role in expected.items() if actual.get(sa) != role
    ]
    if problems:
        return Result.failed(name, "; ".join(problems), associations=actual)
    return Result.passed(name, f"{len(expected)} service accounts map to their roles", associations=actual)


def judge_access_entries(entries: Sequence[Mapping[str, Any]], node_role_arn: str) -> Result:
    name = ACCESS_ENTRIES
    kinds = {e["principalArn"]: e.get("type", "") for e in entries}
    if kinds.get(node_role_arn) != "EC2_LINUX":
        return Result.failed(
            name,
            f"{node_role_arn} has access entry type {kinds.get(node_role_arn) or 'none'}, want EC2_LINUX",
            entries=kinds,
        )
    return Result.passed(name, "the Karpenter node role has an EC2_LINUX access entry", entries=kinds)


def judge_nothing_left(leftovers: Sequence[str], run_id: str) -> Result:
    name = NOTHING_LEFT
    if leftovers:
        return Result.failed(name, f"{len(leftovers)} resources of run {run_id} remain", leftovers=list(leftovers))
    return Result.passed(name, f"no resource tagged run-id={run_id} remains", leftovers=[])


# --- fetches ----------------------------------------------------------------------------------------------
def _not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code.endswith(("NotFound", "NotFoundException", "NoSuchEntity", "NonExistentQueue"))


def fetch_subnets(ec2: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    # Filter instead of SubnetIds= so one missing subnet does not hide the others.
    return list(ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": list(ids)}])["Subnets"])


def fetch_discovery_groups(ec2: Any, vpc_id: str) -> list[dict[str, Any]]:
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "tag-key", "Values": [DISCOVERY_TAG]}]
    return list(ec2.describe_security_groups(Filters=filters)["SecurityGroups"])


def fetch_nodegroup(eks: Any, cluster: str, nodegroup: str) -> dict[str, Any] | None:
    try:
        return dict(eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)["nodegroup"])
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def fetch_launch_template_version(ec2: Any, nodegroup: Mapping[str, Any] | None) -> dict[str, Any] | None:
    spec = (nodegroup or {}).get("launchTemplate")
    if not spec:
        return None
    ref = {"LaunchTemplateId": spec["id"]} if spec.get("id") else {"LaunchTemplateName": spec["name"]}
    versions = ec2.describe_launch_template_versions(**ref, Versions=[str(spec.get("version") or "$Default")])
    found = versions["LaunchTemplateVersions"]
    return dict(found[0]) if found else None


def fetch_queue(sqs: Any, name: str) -> tuple[str | None, dict[str, str]]:
    """(url, attributes) of the queue, or (None, {}) when it does not exist."""
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if _not_found(exc):
            return None, {}
        raise
    return url, dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {}))


def fetch_rules_targeting(events: Any, target_arn: str) -> list[dict[str, Any]]:
    names = events.list_rule_names_by_target(TargetArn=target_arn).get("RuleNames", [])
    return [
        {**events.describe_rule(Name=rule), "Targets": events.list_targets_by_rule(Rule=rule).get("Targets", [])}
        for rule in names
    ]


def fetch_role(iam: Any, arn_or_name: str) -> dict[str, Any] | None:
    try:
        role = dict(iam.get_role(RoleName=arn_or_name.rsplit("/", 1)[-1])["Role"])
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    role["Tags"] = iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])
    return role


def fetch_pod_identity_associations(eks: Any, cluster: str) -> list[dict[str, Any]]:
    summaries = eks.list_pod_identity_associations(clusterName=cluster).get("associations", [])
    return [
        dict(
            eks.describe_pod_identity_association(clusterName=cluster, associationId=s["associationId"])["association"]
        )
        for s in summaries
    ]


def fetch_access_entries(eks: Any, cluster: str) -> list[dict[str, Any]]:
    arns = eks.list_access_entries(clusterName=cluster).get("accessEntries", [])
    return [dict(eks.describe_access_entry(clusterName=cluster, principalArn=a)["accessEntry"]) for a in arns]


def karpenter_interruption_events(reference: Path) -> frozenset[EventKind]:
    """The (source, detail-type) pairs of the EventBridge rules in Karpenter's getting-started template."""
    path = next(iter(sorted((reference / "iam").glob("karpenter-*cloudformation.yaml"))), None)
    if path is None:
        return frozenset()

    class CfnLoader(yaml.SafeLoader):
        """Reads CloudFormation short-form tags (!Sub, !GetAtt, ...) as plain values."""

    def any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    CfnLoader.add_multi_constructor("!", any_tag)
    template = yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)
    kinds: set[EventKind] = set()
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") == "AWS::Events::Rule":
            pattern = resource["Properties"]["EventPattern"]
            kinds |= {(s, d) for s in pattern.get("source", []) for d in pattern.get("detail-type", [])}
    return frozenset(kinds)


# --- the whole AWS side of the platform -------------------------------------------------------------------
@dataclass(frozen=True)
class Expectations:
    """What the platform should look like, derived from its outputs, configuration and the run."""

    outputs: Mapping[str, Any]
    ops: OpsNodeGroupSpec
    run_tags: Mapping[str, str]
    interruption_events: frozenset[EventKind] | None
    created: Sequence[CreatedResource] = ()  # what the state of infra/platform says the run created (taggable)


def _guarded(name: str, judge: Callable[[], Result]) -> Result:
    """An API error becomes a failed Result naming it, so one broken call does not hide the other checks."""
    try:
        return judge()
    except (ClientError, BotoCoreError, KeyError) as exc:
        return Result.failed(name, f"could not fetch: {exc}")


def verify_platform(target: AwsTarget, expect: Expectations) -> list[Result]:
    """Every AWS assertion on the platform; those needing what the target lacks are not applicable."""
    out = expect.outputs
    ec2, eks, iam, sqs, events = (target.client(s) for s in ("ec2", "eks", "iam", "sqs", "events"))
    cluster = str(out["cluster_name"])
    caps = target.capabilities
    results: list[Result] = []
    nodegroup: dict[str, Any] | None = None
    queue_arn = ""

    def run(name: str, judge: Callable[[], Result]) -> None:
        results.append(_guarded(name, judge))

    def ops_node_group() -> Result:
        nonlocal nodegroup
        nodegroup = fetch_nodegroup(eks, cluster, str(out["ops_node_group_name"]))
        return judge_ops_node_group(nodegroup, expect.ops)

    def queue() -> Result:
        nonlocal queue_arn
        url, attributes = fetch_queue(sqs, str(out["karpenter_interruption_queue_name"]))
        queue_arn = attributes.get("QueueArn", "")
        results.append(judge_interruption_queue(url, str(out["karpenter_interruption_queue_name"])))
        return judge_queue_policy(attributes.get("Policy"), queue_arn)

    run(
        PUBLIC_SUBNETS,
        lambda: judge_public_subnets(fetch_subnets(ec2, out["public_subnet_ids"]), out["public_subnet_ids"]),
    )
    run(
        PRIVATE_SUBNETS,
        lambda: judge_private_subnets(
            fetch_subnets(ec2, out["private_subnet_ids"]), out["private_subnet_ids"], cluster
        ),
    )
    run(
        DISCOVERY_GROUP,
        lambda: judge_discovery_security_group(
            fetch_discovery_groups(ec2, str(out["vpc_id"])), cluster, str(out["discovery_security_group_id"])
        ),
    )
    run(OPS_NODE_GROUP, ops_node_group)
    run(IMDS, lambda: judge_launch_template_metadata(fetch_launch_template_version(ec2, nodegroup)))
    run(QUEUE_POLICY, queue)
    run(
        INTERRUPTION_RULES,
        lambda: judge_interruption_rules(
            fetch_rules_targeting(events, queue_arn), queue_arn, expect.interruption_events
        ),
    )
    roles = {
        "Karpenter controller role": (
            out["karpenter_controller_role_arn"],
            POD_IDENTITY_PRINCIPAL,
            POD_IDENTITY_ACTIONS,
        ),
        "LB controller role": (out["lb_controller_role_arn"], POD_IDENTITY_PRINCIPAL, POD_IDENTITY_ACTIONS),
        "Karpenter node role": (out["karpenter_node_role_arn"], EC2_PRINCIPAL, frozenset({"sts:AssumeRole"})),
    }
    for label, (arn, principal, actions) in roles.items():

        def trust(label: str = label, arn: str = arn, principal: str = principal, actions: Any = actions) -> Result:
            return judge_role_trust(fetch_role(iam, arn), label, principal, actions)

        run(f"{label} trusts {principal}", trust)
    run(RUN_TAGS, lambda: verify_run_tags(target, expect.created, expect.run_tags))
    if caps.supports("eks_pod_identity_associations"):
        wanted = {
            _service_account(out["karpenter_service_account"]): str(out["karpenter_controller_role_arn"]),
            _service_account(out["lb_controller_service_account"]): str(out["lb_controller_role_arn"]),
        }
        run(
            POD_IDENTITY,
            lambda: judge_pod_identity_associations(fetch_pod_identity_associations(eks, cluster), wanted),
        )
    else:
        results.append(Result.not_applicable(POD_IDENTITY, caps.name, caps.reason("eks_pod_identity_associations")))
    if caps.supports("eks_access_entries"):
        run(
            ACCESS_ENTRIES,
            lambda: judge_access_entries(fetch_access_entries(eks, cluster), str(out["karpenter_node_role_arn"])),
        )
    else:
        results.append(Result.not_applicable(ACCESS_ENTRIES, caps.name, caps.reason("eks_access_entries")))
    return results


def _service_account(value: Any) -> str:
    return f"{value['namespace']}/{value['name']}" if isinstance(value, Mapping) else str(value)


def verify_run_tags(
    target: AwsTarget, created: Sequence[CreatedResource], run_tags: Mapping[str, str], name: str = RUN_TAGS
) -> Result:
    """The run's tags on each created resource, as AWS reports them (harness.aws.run_tags.read_tags)."""
    reading = read_tags(target, created, str(run_tags.get(RUN_ID_TAG, "")))
    return judge_run_tags(reading.tags, run_tags, name=name, own_api=reading.own_api, unlisted=reading.unlisted)
