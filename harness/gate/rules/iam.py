"""Controller IAM policies against upstream: resources and conditions, beyond the actions EKS023 compares."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.gate.hcl import Unknown, as_mapping, decoded
from harness.gate.model import Location, Model, TfResource, as_list
from harness.gate.rules import Issue, rule
from harness.gate.rules.security import _SIGNATURES

# A reference to another resource's ARN (Terraform attribute, CloudFormation ${X.Arn}) -> (service, resource form).
_REFERENCES = {
    "aws_iam_role": ("iam", "role/*"),
    "aws_sqs_queue": ("sqs", "*"),
    "aws_eks_cluster": ("eks", "cluster/*"),
    "KarpenterNodeRole": ("iam", "role/*"),
    "KarpenterInterruptionQueue": ("sqs", "*"),
}
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


@dataclass
class _Grant:
    actions: list[str]
    resources: list[Any]  # str, or Unknown when only known at apply time
    conditions: list[tuple[str, str, list[Any]]]
    location: Location


def _form(resource: Any) -> tuple[str | None, str] | None:
    """(service, resource part) of an ARN or ARN pattern; None when it cannot be told before apply."""
    text = resource.text if isinstance(resource, Unknown) else resource
    if not isinstance(text, str):
        return None
    if text == "*":
        return (None, "*")
    reference = re.fullmatch(r"(?:\$\{)?(?:data\.)?(\w+)\.\w+\.(?:arn|Arn)\}?|\$\{(\w+)\.Arn\}", text)
    if reference:
        return _REFERENCES.get(reference.group(1) or reference.group(2))
    parts = _PLACEHOLDER.sub("*", text).split(":")
    if len(parts) >= 6 and parts[0] == "arn":
        return (parts[2] if "*" not in parts[2] else None, ":".join(parts[5:]))
    if isinstance(resource, Unknown) and "${" in text and len(parts) >= 2:  # a local holding the ARN's prefix
        return (None, parts[-1])
    return None


def _covers(upstream: tuple[str | None, str], ours: tuple[str | None, str]) -> bool:
    (up_service, up_resource), (our_service, our_resource) = upstream, ours
    if up_service is not None and our_service is not None and up_service != our_service:
        return False
    if up_service is not None and our_service is None and our_resource == "*":
        return False
    return fnmatch.fnmatchcase(our_resource, up_resource)


def _pattern(text: str) -> str:
    """An upstream key or value with its CloudFormation placeholders (${ClusterName}, ${AWS::Region}) as `*`."""
    return _PLACEHOLDER.sub("*", text)


def _value(value: Any) -> Any:
    value = decoded(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, Unknown) else str(value)


def _same(upstream: str, ours: Any) -> bool:
    if isinstance(ours, Unknown):
        return True  # known only at apply time: not judged
    return fnmatch.fnmatchcase(str(ours), _pattern(upstream)) if "${" in upstream else str(ours) == upstream


def _holds(upstream: tuple[str, str, list[str]], conditions: list[tuple[str, str, list[Any]]]) -> bool:
    operator, key, values = upstream
    for our_operator, our_key, our_values in conditions:
        if our_operator.lower() != operator.lower() or not _same(key, our_key):
            continue
        if len(our_values) == len(values) and all(any(_same(v, o) for o in our_values) for v in values):
            return True
    return False


def _grants(resource: TfResource) -> Iterator[_Grant]:
    if resource.mode == "data" and resource.type == "aws_iam_policy_document":
        for index, statement in enumerate(as_list(decoded(resource.attrs.get("statement")))):
            statement = as_mapping(statement)
            if statement.get("principals") or str(statement.get("effect", "Allow")) != "Allow":
                continue
            actions = decoded(statement.get("actions"))
            resources = decoded(statement.get("resources"))
            if not isinstance(actions, list) or not isinstance(resources, list):
                continue
            conditions = [
                (
                    str(decoded(c.get("test"))),
                    decoded(c.get("variable")),
                    [_value(v) for v in as_list(decoded(c.get("values")))],
                )
                for c in (as_mapping(c) for c in as_list(decoded(statement.get("condition"))))
            ]
            yield _Grant(
                [str(a) for a in actions],
                resources,
                conditions,
                Location(resource.file, resource.line_of(f"statement[{index}]")),
            )
        return
    document = as_mapping(decoded(resource.attrs.get("policy")))
    statements = decoded(document.get("Statement"))
    for statement in statements if isinstance(statements, list) else [statements] if statements else []:
        statement = as_mapping(decoded(statement))
        if statement.get("Principal") or statement.get("Effect", "Allow") != "Allow":
            continue
        actions, resources = decoded(statement.get("Action")), decoded(statement.get("Resource"))
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str | Unknown) else resources
        if not isinstance(actions, list) or not isinstance(resources, list):
            continue
        conditions = [
            (str(operator), key, [_value(v) for v in (as_list(decoded(values)) or [decoded(values)])])
            for operator, entries in as_mapping(decoded(statement.get("Condition"))).items()
            for key, values in as_mapping(decoded(entries)).items()
        ]
        yield _Grant(
            [str(a) for a in actions if not isinstance(a, Unknown)],
            resources,
            conditions,
            Location(resource.file, resource.line_of("policy")),
        )


@rule("EKS041", "controller IAM policies scope resources and conditions as upstream does")
def iam_scope(model: Model) -> Iterator[Issue]:
    """Granting the right actions is half of a controller policy: upstream (Karpenter v1.14
    getting-started CloudFormation, the LB controller module's iam_policy.json) also scopes each statement to
    resources (`arn:...:ec2:<region>:*:launch-template/*`, the node role's ARN, the cluster's ARN) and
    conditions (`aws:ResourceTag/kubernetes.io/cluster/<name>: owned`, `aws:RequestedRegion`, the
    `elbv2.k8s.aws/cluster` tag checks). A statement that grants an action on a resource form upstream does not
    allow for it (a misspelt ARN type, `*` instead of the role's ARN), or that drops a condition every upstream
    statement for that action has, lets the controller touch resources of other clusters and applications;
    a wrong ARN form can also make the grant match nothing and fail at run time. Each statement of the
    controller's policies (found as for EKS023) must fit within an upstream statement granting the same
    action: each resource covered by one of its resources, and each of its conditions present (same operator,
    key and values; the cluster name, region and account stand for upstream's placeholders). Values known only
    at apply time are not judged; `--plan-json` gives them."""
    groups: dict[str, list[_Grant]] = {}
    for resource in model.terraform.resources:
        if resource.type in ("aws_iam_policy_document", "aws_iam_policy", "aws_iam_role_policy"):
            groups.setdefault(f"{resource.root}:{resource.module_path}", []).extend(_grants(resource))
    for controller, signature in _SIGNATURES.items():
        upstream = model.reference.iam_statements.get(controller) or []
        if not upstream:
            continue
        for grants in groups.values():
            if not any(signature in g.actions for g in grants):
                continue
            for grant in grants:
                yield from _judge(controller, grant, upstream)


def _judge(controller: str, grant: _Grant, upstream: list[dict[str, Any]]) -> Iterator[Issue]:
    resource_problems: dict[str, list[str]] = {}
    condition_problems: dict[str, list[str]] = {}
    for action in grant.actions:
        candidates = [u for u in upstream if action in u["actions"]]
        if not candidates or "*" in action:
            continue  # an action upstream does not grant at all is EKS023's
        forms = [_form(r) for r in grant.resources]
        if any(f is None for f in forms):
            continue  # a resource only known at apply time
        fitting = [
            u
            for u in candidates
            if all(
                any(_covers(up, f) for up in (_form(r) for r in u["resources"]) if up is not None)
                for f in forms
                if f is not None
            )
        ]
        if not fitting:
            allowed = sorted({str(r) for u in candidates for r in u["resources"]})
            more = f" and {len(allowed) - 3} more" if len(allowed) > 3 else ""
            resource_problems.setdefault(", ".join(allowed[:3]) + more, []).append(action)
            continue
        if not any(all(_holds((c[0], c[1], c[2]), grant.conditions) for c in u["conditions"]) for u in fitting):
            needed = min((u["conditions"] for u in fitting), key=len)
            missing = [
                f"{op} {key}={values}" for op, key, values in needed if not _holds((op, key, values), grant.conditions)
            ]
            condition_problems.setdefault("; ".join(missing), []).append(action)
    shown = ", ".join(str(r.text if isinstance(r, Unknown) else r) for r in grant.resources)
    for scopes, granted in resource_problems.items():
        yield Issue(
            f"{controller} policy grants {', '.join(granted)} on {shown}, a resource form upstream does not "
            f"allow for it (upstream: {scopes})",
            grant.location,
            "scope the statement's resources as the upstream policy does",
        )
    for absent, granted in condition_problems.items():
        yield Issue(
            f"{controller} policy grants {', '.join(granted)} without the upstream condition(s) {absent}",
            grant.location,
            "add the upstream condition(s) to the statement",
        )
