"""The ServiceAccount each controller chart runs as: the one its Pod Identity role is given to, and one the chart
(or something else in the checked tree) creates, with the RBAC the controller needs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from harness.gate.facts import chart_values, resolved
from harness.gate.hcl import as_mapping
from harness.gate.model import Location, Model, TfResource, chart_name
from harness.gate.rules import Issue, rule
from harness.gate.rules.addons import NAMESPACE_TAG, SERVICE_ACCOUNT_TAG, _pod_identity_statements, _required_tags
from harness.gate.rules.security import _SIGNATURES, _statements
from harness.gate.values import lookup

HELM_DEFAULT_NAMESPACE = "default"  # helm_release's namespace when it sets none
# Switches a chart's defaults turn on and its controller needs on EKS, by the values path that holds them.
_NEEDED: dict[tuple[str, ...], str] = {
    ("rbac", "create"): "its RBAC (ClusterRoles and bindings)",
    ("serviceAccount", "create"): "its ServiceAccount",
}
SERVICE_ACCOUNT_KINDS = ("kubernetes_service_account", "kubernetes_service_account_v1")


@dataclass(frozen=True)
class Identity:
    """A namespace/name a Pod Identity role is given to, and what gives it."""

    namespace: str
    name: str
    what: str
    location: Location


def _fullname(release_name: str, chart: str, values: Mapping[str, Any]) -> str:
    """The charts' `<chart>.fullname` helper (karpenter, aws-load-balancer-controller _helpers.tpl)."""
    override = resolved(values.get("fullnameOverride"))
    if override:
        return override[:63].rstrip("-")
    name = resolved(values.get("nameOverride")) or chart
    return (release_name if name in release_name else f"{release_name}-{name}")[:63].rstrip("-")


def chart_service_account(release: TfResource, chart: str, values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) the chart's pods run as, as its `serviceAccountName` helper picks it; None when unknown."""
    namespace = resolved(release.get("namespace")) if "namespace" in release.attrs else HELM_DEFAULT_NAMESPACE
    release_name = resolved(release.get("name"))
    account = as_mapping(values.get("serviceAccount"))
    name = resolved(account.get("name"))
    if not name:
        if release_name is None:
            return None
        name = _fullname(release_name, chart, values) if account.get("create") is not False else "default"
    return (namespace, name) if namespace is not None else None


def _controller_modules(model: Model) -> dict[str, set[tuple[str, str]]]:
    """Controller -> (root, module path) of the module instances whose policies grant its signature action."""
    found: dict[str, set[tuple[str, str]]] = {}
    for resource in model.terraform.resources:
        if resource.type not in ("aws_iam_policy_document", "aws_iam_policy", "aws_iam_role_policy"):
            continue
        granted = {action for statement in _statements(resource) for action in statement.actions}
        for controller, signature in _SIGNATURES.items():
            if signature in granted:
                found.setdefault(controller, set()).add((resource.root, resource.module_path))
    return found


def _within(resource: TfResource, modules: set[tuple[str, str]]) -> bool:
    """In one of the modules or below it. A root module holds every role of its root: it tells none apart."""
    return any(
        resource.root == root
        and path != ""
        and (resource.module_path == path or resource.module_path.startswith(f"{path}."))
        for root, path in modules
    )


def pod_identities(model: Model, modules: set[tuple[str, str]]) -> list[Identity]:
    """Who the controller's role is given to: its Pod Identity associations, else its trust policy's session tags
    (what the pod-identity-role module's service_account input becomes where no association is created)."""
    associations = [
        Identity(namespace, name, association.address, Location(association.file, association.line))
        for association in model.terraform.of_type("aws_eks_pod_identity_association")
        if _within(association, modules)
        and (namespace := resolved(association.get("namespace"))) is not None
        and (name := resolved(association.get("service_account"))) is not None
    ]
    if associations:
        return associations
    trusted = []
    for role in model.terraform.of_type("aws_iam_role"):
        if not _within(role, modules):
            continue
        for statement in _pod_identity_statements(role):
            tags = _required_tags(statement)
            for namespace in tags.get(NAMESPACE_TAG, []):
                for name in tags.get(SERVICE_ACCOUNT_TAG, []):
                    if isinstance(namespace, str) and isinstance(name, str):
                        trusted.append(
                            Identity(
                                namespace,
                                name,
                                f"the trust policy of {role.address}",
                                Location(role.file, role.line_of("assume_role_policy")),
                            )
                        )
    return trusted


def _where(release: TfResource, sources: Mapping[tuple[str, ...], Location], *path: str) -> Location:
    return sources.get(path, Location(release.file, release.line_of("values")))


@rule("EKS047", "each controller chart runs as the ServiceAccount its Pod Identity role is given to")
def controller_identity(model: Model) -> Iterator[Issue]:
    """EKS Pod Identity hands a role's credentials to the pods of one namespace and ServiceAccount: the
    `aws_eks_pod_identity_association` (or, where none is created, the trust policy's
    `kubernetes-namespace`/`kubernetes-service-account` session tags that the pod-identity-role module's
    `service_account` input becomes). The chart decides what its pods run as: the release's `namespace`
    (`default` when unset) and `serviceAccount.name`, else the chart's generated name (`<release>-<chart>`, or
    the release name when it contains the chart's name; `fullnameOverride`/`nameOverride` as the chart's
    helpers apply them), or `default` with `serviceAccount.create=false`. When the two disagree the controller
    starts and every AWS call fails for want of credentials (Karpenter launches nothing, the LB controller
    creates no ALB). Checked for the Karpenter and AWS Load Balancer Controller releases: their role is found
    as for EKS023 (the module instance whose policies grant the controller's signature action; policies in a
    root module tell no role apart and are not judged), and its associations must name the chart's namespace
    and ServiceAccount."""
    modules = _controller_modules(model)
    for release, values in model.helm_releases():
        chart = chart_name(release)
        found = chart_values(model, chart)
        if chart not in modules or found is None:
            continue
        account = chart_service_account(release, chart, found[1])
        identities = pod_identities(model, modules[chart])
        if account is None or not identities or any((i.namespace, i.name) == account for i in identities):
            continue
        given = identities[0]
        at = f"{given.location.file.parent.name}/{given.location.file.name}:{given.location.line}"
        path = ("serviceAccount", "name") if ("serviceAccount", "name") in values.sources else ()
        where = _where(release, values.sources, *path) if path else Location(release.file, release.line_of("namespace"))
        yield Issue(
            f"{release.address}: the {chart} chart runs as ServiceAccount {account[0]}/{account[1]}, but {given.what} "
            f"({at}) gives the controller's role to "
            f"{given.namespace}/{given.name}: its pods get no AWS credentials",
            where,
            f"run the chart as {given.namespace}/{given.name} (release namespace and serviceAccount.name from the "
            "platform output that the association reads), or associate the role with the chart's ServiceAccount",
        )


def _service_accounts_elsewhere(model: Model) -> set[tuple[str, str]]:
    """(namespace, name) of ServiceAccounts the checked tree creates outside the charts."""
    found = {(m.namespace or HELM_DEFAULT_NAMESPACE, m.name) for m in model.effective if m.kind == "ServiceAccount"}
    for account in model.terraform.of_type(*SERVICE_ACCOUNT_KINDS):
        metadata = account.block("metadata")
        name, namespace = resolved(metadata.get("name")), resolved(metadata.get("namespace"))
        if name is not None:
            found.add((namespace or HELM_DEFAULT_NAMESPACE, name))
    return found


def _switches(defaults: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Values paths of the needed switches (_NEEDED) the chart's defaults turn on, at any depth."""
    if not isinstance(defaults, dict):
        return
    for key, value in defaults.items():
        path = (*prefix, str(key))
        if path[-2:] in _NEEDED and value is True:
            yield path
        yield from _switches(value, path)


@rule("EKS048", "chart values keep the RBAC and ServiceAccount their controllers need")
def needed_by_controllers(model: Model) -> Iterator[Issue]:
    """A chart's defaults create what its pods need to run on EKS: the ServiceAccount they run as (which Pod
    Identity associates with a role) and the RBAC that lets the controller watch and change its objects.
    A release whose values turn that off (`rbac.create: false`, `serviceAccount.create: false`, or the same
    switch of a component, `controller.serviceAccount.create` in argo-cd) leaves the controller forbidden by
    the API server, or its pods unschedulable for want of their ServiceAccount ("serviceaccount not found"),
    after a successful `terraform apply`. Turning RBAC off is reported; turning the ServiceAccount off is
    reported unless the checked tree creates that ServiceAccount elsewhere (a `kubernetes_service_account_v1`
    or a ServiceAccount manifest in the release's namespace with the name `serviceAccount.name` gives)."""
    accounts = _service_accounts_elsewhere(model)
    for release, values in model.helm_releases():
        chart = chart_name(release)
        defaults = model.reference.chart_values.get(chart, ("", {}))[1]
        namespace = resolved(release.get("namespace")) if "namespace" in release.attrs else HELM_DEFAULT_NAMESPACE
        for path in _switches(defaults):
            if lookup(values.values, *path) is not False:
                continue
            where = _where(release, values.sources, *path)
            needed = _NEEDED[path[-2:]]
            if path[-2:] == ("serviceAccount", "create"):
                name = resolved(lookup(values.values, *path[:-1], "name")) or "default"
                if (namespace, name) in accounts and name != "default":
                    continue
                yield Issue(
                    f"{release.address}: {'.'.join(path)}=false, and nothing in the checked tree creates "
                    f"ServiceAccount {namespace}/{name}: the {chart} pods cannot start",
                    where,
                    f"remove {'.'.join(path)}=false, or create {namespace}/{name} (a "
                    "kubernetes_service_account_v1) and name it in serviceAccount.name",
                )
            else:
                yield Issue(
                    f"{release.address}: {'.'.join(path)}=false turns off {needed}: the {chart} controller "
                    "is forbidden from the objects it manages",
                    where,
                    f"remove {'.'.join(path)}=false (the chart's RBAC is what the controller needs)",
                )
