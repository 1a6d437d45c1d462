"""Security baseline: Argo CD exposure, instance metadata, API endpoint, controller IAM policies."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.gate.facts import ARGO_CHART, chart_values, node_classes
from harness.gate.hcl import as_mapping, decoded, is_known
from harness.gate.model import Location, Model, TfResource, as_dict, as_list
from harness.gate.rules import Issue, rule

OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def _open(cidrs: Any) -> bool:
    values = decoded(cidrs)
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",")]
    return not values or any(str(v) in OPEN_CIDRS for v in values)


@rule("EKS020", "Argo CD is not exposed to the internet without TLS and source CIDRs")
def argocd_exposure(model: Model) -> Iterator[Issue]:
    """Argo CD holds credentials for every cluster it manages. If its server is reachable from the internet
    (an internet-facing Ingress or a LoadBalancer Service, from the chart values or a manifest), it must be
    served over TLS (`alb.ingress.kubernetes.io/certificate-arn` or Ingress `tls`) and restricted to known
    source CIDRs (`alb.ingress.kubernetes.io/inbound-cidrs`, `loadBalancerSourceRanges`), never 0.0.0.0/0.
    The safe default is no exposure at all: `kubectl port-forward`."""
    exposures: list[tuple[str, dict[str, Any], bool, Location]] = []
    found = chart_values(model, ARGO_CHART)
    if found is not None:
        release, values = found
        server = as_mapping(values.get("server"))
        ingress = as_mapping(server.get("ingress"))
        where = Location(release.file, release.line_of("values"))
        if ingress.get("enabled") is True:
            exposures.append(
                (
                    f"{release.address} server.ingress",
                    dict(as_mapping(ingress.get("annotations"))),
                    bool(ingress.get("tls")),
                    where,
                )
            )
        service = as_mapping(server.get("service"))
        if service.get("type") == "LoadBalancer" and _open(service.get("loadBalancerSourceRanges")):
            yield Issue(
                f"{release.address}: Argo CD server is a LoadBalancer Service open to any source",
                where,
                "keep server.service.type ClusterIP (use port-forward) or set loadBalancerSourceRanges",
            )
    for manifest in model.effective:
        if manifest.kind != "Ingress":
            continue
        names = [
            str(as_dict(as_dict(as_dict(p).get("backend")).get("service")).get("name", ""))
            for r in manifest.list("spec", "rules")
            if isinstance(r, dict)
            for p in as_list(as_dict(r.get("http")).get("paths"))
        ]
        if any(n.startswith("argocd-server") for n in names):
            exposures.append(
                (
                    manifest.label,
                    dict(manifest.map("metadata", "annotations")),
                    bool(manifest.get("spec", "tls")),
                    manifest.where("metadata", "annotations"),
                )
            )
    for label, alb, tls, where in exposures:
        if alb.get("alb.ingress.kubernetes.io/scheme") != "internet-facing":
            continue
        if not (tls or alb.get("alb.ingress.kubernetes.io/certificate-arn")):
            yield Issue(
                f"{label}: Argo CD is internet-facing without TLS",
                where,
                "add alb.ingress.kubernetes.io/certificate-arn and listen-ports HTTPS 443, or do not expose it",
            )
        if _open(alb.get("alb.ingress.kubernetes.io/inbound-cidrs")):
            yield Issue(
                f"{label}: Argo CD is internet-facing to any source address",
                where,
                "set alb.ingress.kubernetes.io/inbound-cidrs to your own CIDRs",
            )


@rule("EKS021", "instance metadata requires IMDSv2 with hop limit 1")
def imds(model: Model) -> Iterator[Issue]:
    """Pods must not borrow the node's IAM role. With IMDSv1 allowed (`http_tokens = "optional"`) or a
    response hop limit above 1, any pod can read the node role's credentials from 169.254.169.254.
    Launch templates (and instances) must set `metadata_options { http_tokens = "required",
    http_put_response_hop_limit = 1 }`; EKS node groups need such a launch template (the EKS default
    template allows hop limit 2); EC2NodeClass `metadataOptions` must keep `httpTokens: required` and
    `httpPutResponseHopLimit: 1` (Karpenter's defaults)."""
    for resource in model.terraform.of_type("aws_launch_template", "aws_instance"):
        options = resource.block("metadata_options")
        where = Location(resource.file, resource.line_of("metadata_options"))
        if not options:
            yield Issue(
                f"{resource.address}: no metadata_options, so IMDSv1 and the AMI's hop limit apply",
                where,
                'add metadata_options { http_tokens = "required", http_put_response_hop_limit = 1 }',
            )
            continue
        tokens, hops = decoded(options.get("http_tokens")), decoded(options.get("http_put_response_hop_limit"))
        if is_known(tokens) and tokens != "required":
            yield Issue(
                f"{resource.address}: http_tokens is {tokens!r}, IMDSv1 stays enabled",
                Location(resource.file, resource.line_of("metadata_options.http_tokens")),
                'set http_tokens = "required"',
            )
        if hops is None or (isinstance(hops, int) and hops > 1):
            yield Issue(
                f"{resource.address}: http_put_response_hop_limit is {hops if hops is not None else 'unset'}"
                ", pods can reach the node's credentials",
                Location(resource.file, resource.line_of("metadata_options.http_put_response_hop_limit")),
                "set http_put_response_hop_limit = 1",
            )
    for group in model.terraform.of_type("aws_eks_node_group"):
        if not group.attrs.get("launch_template"):
            yield Issue(
                f"{group.address}: no launch_template, so EKS's default (hop limit 2) applies",
                Location(group.file, group.line),
                "attach a launch template with IMDSv2 and hop limit 1",
            )
    for node_class in node_classes(model):
        options = node_class.map("spec", "metadataOptions")
        if options.get("httpTokens", "required") != "required":
            yield Issue(
                f"{node_class.label}: metadataOptions.httpTokens is {options.get('httpTokens')!r}",
                node_class.where("spec", "metadataOptions", "httpTokens"),
                "set httpTokens: required",
            )
        hops = options.get("httpPutResponseHopLimit", 1)
        if isinstance(hops, int) and hops > 1:
            yield Issue(
                f"{node_class.label}: metadataOptions.httpPutResponseHopLimit is {hops}",
                node_class.where("spec", "metadataOptions", "httpPutResponseHopLimit"),
                "set httpPutResponseHopLimit: 1",
            )


@rule("EKS022", "the public API endpoint is not open to 0.0.0.0/0")
def api_endpoint(model: Model) -> Iterator[Issue]:
    """An EKS cluster's public endpoint (`vpc_config.endpoint_public_access`, true by default) accepts
    connections from `public_access_cidrs`, which defaults to 0.0.0.0/0. Restrict it to your own
    addresses, or turn the public endpoint off and reach the API from inside the VPC."""
    for cluster in model.terraform.of_type("aws_eks_cluster"):
        config = cluster.block("vpc_config")
        public = decoded(config.get("endpoint_public_access", True))
        cidrs = config.get("public_access_cidrs")
        if public is True and (cidrs is None or (is_known(cidrs) and _open(cidrs))):
            yield Issue(
                f"{cluster.address}: public API endpoint open to {decoded(cidrs) or '0.0.0.0/0 (default)'}",
                Location(
                    cluster.file,
                    cluster.line_of("vpc_config.public_access_cidrs")
                    if cidrs is not None
                    else cluster.line_of("vpc_config"),
                ),
                'set vpc_config.public_access_cidrs to your own CIDRs (e.g. ["203.0.113.7/32"])',
            )


@dataclass
class _Statement:
    actions: list[str]
    location: Location


def _statements(resource: TfResource) -> Iterator[_Statement]:
    """Identity-policy Allow statements (trust and resource policies, which name principals, are skipped)."""
    if resource.mode == "data" and resource.type == "aws_iam_policy_document":
        for index, statement in enumerate(as_list(decoded(resource.attrs.get("statement")))):
            statement = as_mapping(statement)
            if statement.get("principals") or str(statement.get("effect", "Allow")) != "Allow":
                continue
            actions = decoded(statement.get("actions"))
            if isinstance(actions, list) and is_known(actions):
                yield _Statement(
                    [str(a) for a in actions], Location(resource.file, resource.line_of(f"statement[{index}]"))
                )
        return
    document = as_mapping(decoded(resource.attrs.get("policy")))
    statements = decoded(document.get("Statement"))
    for statement in statements if isinstance(statements, list) else [statements] if statements else []:
        statement = as_mapping(statement)
        if statement.get("Principal") or statement.get("Effect", "Allow") != "Allow":
            continue
        actions = decoded(statement.get("Action"))
        actions = [actions] if isinstance(actions, str) else actions
        if isinstance(actions, list) and is_known(actions):
            yield _Statement([str(a) for a in actions], Location(resource.file, resource.line_of("policy")))


# An action only this controller's policy grants: it identifies the module instance holding the policy.
_SIGNATURES = {
    "karpenter": "ec2:CreateFleet",
    "aws-load-balancer-controller": "elasticloadbalancing:CreateLoadBalancer",
}


def _covers(granted: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), granted.lower())


@rule("EKS023", "controller IAM policies grant exactly the upstream reference actions")
def iam_policies(model: Model) -> Iterator[Issue]:
    """The Karpenter controller and the AWS Load Balancer Controller each need the actions of their
    upstream reference policy (Karpenter v1.14 getting-started CloudFormation in the reference data; the LB
    controller's `docs/install/iam_policy.json` from its pinned module, the version of the binary that
    runs). A missing action fails at run time in the middle of a
    launch or a target registration; a wildcard or an extra action grants more than the controller needs.
    The policies are found by module: the module instance whose policies grant the controller's signature
    action (ec2:CreateFleet, elasticloadbalancing:CreateLoadBalancer) is compared as a whole."""
    groups: dict[str, list[_Statement]] = {}
    anchors: dict[str, Location] = {}
    for resource in model.terraform.resources:
        if resource.type not in ("aws_iam_policy_document", "aws_iam_policy", "aws_iam_role_policy"):
            continue
        key = f"{resource.root}:{resource.module_path}"
        statements = list(_statements(resource))
        groups.setdefault(key, []).extend(statements)
        if resource.type == "aws_iam_policy" and key not in anchors:
            anchors[key] = Location(resource.file, resource.line)
    for controller, signature in _SIGNATURES.items():
        reference = model.reference.iam_actions.get(controller)
        if not reference:
            continue
        for key, statements in groups.items():
            granted = [a for s in statements for a in s.actions]
            if signature not in granted:
                continue
            where = anchors.get(key, statements[0].location)
            for statement in statements:
                for action in statement.actions:
                    if "*" in action and action not in reference:
                        yield Issue(
                            f"{controller} policy grants wildcard action {action!r}",
                            statement.location,
                            "list the reference policy's actions instead of a wildcard",
                        )
                    elif "*" not in action and action not in reference:
                        yield Issue(
                            f"{controller} policy grants {action!r}, which the upstream policy does not",
                            statement.location,
                            "remove the action (or suppress with the reason it is needed)",
                        )
            missing = sorted(a for a in reference if not any(_covers(g, a) for g in granted))
            if missing:
                yield Issue(
                    f"{controller} policy lacks {len(missing)} upstream action(s): {', '.join(missing)}",
                    where,
                    "add the missing actions from the reference policy",
                )
