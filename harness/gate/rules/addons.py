"""Cluster add-ons: Karpenter's CRD chart, EKS managed add-on pins, and the Pod Identity trust of their roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from harness.gate.facts import KARPENTER_CHART, resolved
from harness.gate.hcl import decoded
from harness.gate.model import Location, Model, TfResource
from harness.gate.rules import Issue, rule
from harness.project import ADDON_PIN_PREFIX

KARPENTER_CRD_CHART = "karpenter-crd"
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
# Session tags EKS Pod Identity sets on every AssumeRole (EKS User Guide, "pod identity abac").
NAMESPACE_TAG, SERVICE_ACCOUNT_TAG = "aws:requesttag/kubernetes-namespace", "aws:requesttag/kubernetes-service-account"
CLUSTER_TAGS = ("aws:requesttag/eks-cluster-arn", "aws:requesttag/eks-cluster-name")


def _pin(model: Model, key: str) -> tuple[str, Location] | None:
    if key not in model.versions or model.versions_file is None:
        return None
    return model.versions[key], Location(model.versions_file, model.versions_lines.get(key, 1))


@rule("EKS032", "Karpenter's CRD chart moves with Karpenter, and the controller chart leaves the CRDs to it")
def karpenter_crds(model: Model) -> Iterator[Issue]:
    """Helm installs a chart's `crds/` folder on the first install only and never upgrades it, so a
    Karpenter upgrade would run the new controller against the old NodePool/EC2NodeClass schemas. The
    `karpenter-crd` chart carries the CRDs as templates, upgraded with every release. When a `karpenter-crd`
    `helm_release` exists, its version must equal `versions.yaml` `karpenter` (and the `karpenter` release's
    version): CRDs of another version than the controller reject or drop fields it writes. The `karpenter`
    release must then set `skip_crds = true`: otherwise both releases claim the same CRDs and the second
    install fails with "exists and cannot be imported into the current release"."""
    crd = model.release_for(KARPENTER_CRD_CHART)
    if crd is None:
        return
    release, _values = crd
    version = resolved(release.get("version"))
    where = Location(release.file, release.line_of("version"))
    pin = _pin(model, "karpenter")
    controller = model.release_for(KARPENTER_CHART)
    controller_version = resolved(controller[0].get("version")) if controller else None
    if version is None and "version" not in release.attrs:
        yield Issue(
            f"{release.address}: no version, so Helm takes the newest karpenter-crd, whatever Karpenter runs",
            Location(release.file, release.line),
            "set version = versions.yaml karpenter",
        )
    elif version is not None and pin is not None and version.lstrip("v") != pin[0].lstrip("v"):
        yield Issue(
            f"{release.address}: karpenter-crd {version} but versions.yaml karpenter is {pin[0]}",
            where,
            "read the version from versions.yaml (karpenter), as the karpenter release does",
        )
    elif version is not None and controller_version is not None and version != controller_version:
        yield Issue(
            f"{release.address}: karpenter-crd {version} but the karpenter release is {controller_version}",
            where,
            "give both releases the same version",
        )
    if controller is not None and decoded(controller[0].get("skip_crds")) is not True:
        yield Issue(
            f"{controller[0].address}: installs its crds/ next to the {KARPENTER_CRD_CHART} release "
            f"({release.address})",
            Location(controller[0].file, controller[0].line_of("skip_crds")),
            "set skip_crds = true on the karpenter release",
        )


def _minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


@rule("EKS033", "EKS add-ons run the versions pinned in versions.yaml")
def addon_versions(model: Model) -> Iterator[Issue]:
    """Without `addon_version`, each new cluster gets whatever default EKS picks that day, and two clusters
    built a week apart differ. Each `aws_eks_addon` whose name has a pin `eks_addon_<name>` in versions.yaml
    (dashes as underscores: `eks_addon_vpc_cni`, `eks_addon_kube_proxy`, ...) must set `addon_version` to
    exactly that pin. kube-proxy is built per Kubernetes minor: its version (the pin and the resource's) must
    share the minor of the cluster (`aws_eks_cluster.version`, else versions.yaml `kubernetes`)."""
    pins = model.versions
    kubernetes = next(
        (v for c in model.terraform.of_type("aws_eks_cluster") if (v := resolved(c.get("version")))),
        pins.get("kubernetes"),
    )
    kube_proxy_pin = _pin(model, f"{ADDON_PIN_PREFIX}kube_proxy")
    if kubernetes and kube_proxy_pin and _minor(kube_proxy_pin[0]) != _minor(kubernetes):
        yield Issue(
            f"versions.yaml {ADDON_PIN_PREFIX}kube_proxy {kube_proxy_pin[0]} is not built for Kubernetes "
            f"{_minor(kubernetes)}",
            kube_proxy_pin[1],
            f"pin a v{_minor(kubernetes)}.x-eksbuild.N version (aws eks describe-addon-versions)",
        )
    for addon in model.terraform.of_type("aws_eks_addon"):
        name = resolved(addon.get("addon_name"))
        if name is None:
            continue
        version = resolved(addon.get("addon_version"))
        key = ADDON_PIN_PREFIX + name.replace("-", "_")
        where = Location(addon.file, addon.line_of("addon_version"))
        if key in pins and "addon_version" not in addon.attrs:
            yield Issue(
                f"{addon.address}: {name} has no addon_version, so EKS installs its default of the day "
                f"(versions.yaml {key} is {pins[key]})",
                where,
                f"set addon_version from versions.yaml {key}",
            )
        elif key in pins and version is not None and version != pins[key]:
            yield Issue(
                f"{addon.address}: {name} {version} but versions.yaml {key} is {pins[key]}",
                where,
                f"read the version from versions.yaml ({key})",
            )
        if (
            name == "kube-proxy"
            and version is not None
            and kubernetes
            and _minor(version) != _minor(kubernetes)
            and (kube_proxy_pin is None or version != kube_proxy_pin[0])
        ):
            yield Issue(
                f"{addon.address}: kube-proxy {version} is not built for Kubernetes {_minor(kubernetes)}",
                where,
                f"use a v{_minor(kubernetes)}.x-eksbuild.N version",
            )


def _document(value: Any) -> Any:
    value = decoded(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _values(value: Any) -> list[Any]:
    value = decoded(value)
    return [decoded(v) for v in value] if isinstance(value, list) else [value]


def _pod_identity_statements(role: TfResource) -> Iterator[dict[str, Any]]:
    document = _document(role.get("assume_role_policy"))
    statements = document.get("Statement") if isinstance(document, dict) else None
    for statement in _values(statements):
        if not isinstance(statement, dict) or statement.get("Effect", "Allow") != "Allow":
            continue
        principal = decoded(statement.get("Principal"))
        services = _values(principal.get("Service")) if isinstance(principal, dict) else []
        if POD_IDENTITY_PRINCIPAL in services:
            yield statement


def _required_tags(statement: dict[str, Any]) -> dict[str, list[Any]]:
    """Condition keys (lowercase, as IAM compares them) the statement requires, with their values."""
    required: dict[str, list[Any]] = {}
    conditions = decoded(statement.get("Condition"))
    for operator, entries in conditions.items() if isinstance(conditions, dict) else []:
        entries = decoded(entries)
        if (
            not isinstance(entries, dict)
            or str(operator).startswith(("StringNot", "ArnNot", "Null"))
            or str(operator).endswith("IfExists")
        ):
            continue
        for key, value in entries.items():
            required.setdefault(str(key).lower(), []).extend(_values(value))
    return required


@rule("EKS034", "roles for EKS Pod Identity trust one cluster, namespace and service account")
def pod_identity_trust(model: Model) -> Iterator[Issue]:
    """A trust policy that lets `pods.eks.amazonaws.com` assume a role without conditions hands the role to
    any Pod Identity association in the account: any cluster, any namespace, any service account someone
    associates with it, by mistake or not. EKS Pod Identity tags every session it requests, so the trust
    statement can demand the tags: `aws:RequestTag/kubernetes-namespace` and
    `aws:RequestTag/kubernetes-service-account`, and the cluster, `aws:RequestTag/eks-cluster-arn` (or
    `eks-cluster-name`), each in a positive condition (`StringEquals`, `StringLike`, `ArnEquals`, ...; not
    `...IfExists`) with a value other than `*`. Read from `assume_role_policy` written with `jsonencode` or as
    JSON text; a document from an `aws_iam_policy_document` data source is not read."""
    for role in model.terraform.of_type("aws_iam_role"):
        for statement in _pod_identity_statements(role):
            tags = _required_tags(statement)

            def pinned(key: str, tags: dict[str, list[Any]] = tags) -> bool:
                return bool(tags.get(key)) and all(v != "*" for v in tags[key])

            missing = [key for key in (NAMESPACE_TAG, SERVICE_ACCOUNT_TAG) if not pinned(key)]
            if not any(pinned(key) for key in CLUSTER_TAGS):
                missing.append(f"{CLUSTER_TAGS[0]} (or {CLUSTER_TAGS[1]})")
            if missing:
                yield Issue(
                    f"{role.address}: trusts {POD_IDENTITY_PRINCIPAL} without requiring "
                    f"{', '.join(missing)}: any Pod Identity association could obtain it",
                    Location(role.file, role.line_of("assume_role_policy")),
                    "add a StringEquals condition on the session tags: cluster ARN, namespace, service account",
                )
