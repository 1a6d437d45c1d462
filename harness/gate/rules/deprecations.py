"""What the pinned Kubernetes, kustomize and AWS Load Balancer Controller versions have deprecated or replaced."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.gate.model import HelmValues, Location, Manifest, Model, Severity, TfResource, as_dict, as_list
from harness.gate.rules import Issue, rule
from harness.gate.rules.versions import DEPRECATED_ANNOTATIONS


@dataclass(frozen=True)
class Replaced:
    component: str  # the versions.yaml key whose pinned version decides
    since: str  # the first version that deprecates it
    replacement: str


# Annotations superseded by fields or by other annotations (EKS017 owns the ones in DEPRECATED_ANNOTATIONS).
# A key ending in "/" is a prefix (one annotation per container).
ANNOTATIONS = {
    "seccomp.security.alpha.kubernetes.io/pod": Replaced("kubernetes", "1.19", "securityContext.seccompProfile"),
    "container.seccomp.security.alpha.kubernetes.io/": Replaced(
        "kubernetes", "1.19", "the container's securityContext.seccompProfile"
    ),
    "container.apparmor.security.beta.kubernetes.io/": Replaced(
        "kubernetes", "1.30", "the container's securityContext.appArmorProfile"
    ),
    "scheduler.alpha.kubernetes.io/critical-pod": Replaced("kubernetes", "1.13", "spec.priorityClassName"),
    "service.alpha.kubernetes.io/tolerate-unready-endpoints": Replaced(
        "kubernetes", "1.11", "spec.publishNotReadyAddresses"
    ),
    "volume.beta.kubernetes.io/storage-class": Replaced("kubernetes", "1.8", "spec.storageClassName"),
    "kubectl.kubernetes.io/default-logs-container": Replaced(
        "kubernetes", "1.21", "kubectl.kubernetes.io/default-container"
    ),
}
# Well-known node labels replaced by their GA names (selecting the old one matches fewer nodes, or none).
LABELS = {
    "beta.kubernetes.io/arch": Replaced("kubernetes", "1.14", "kubernetes.io/arch"),
    "beta.kubernetes.io/os": Replaced("kubernetes", "1.14", "kubernetes.io/os"),
    "beta.kubernetes.io/instance-type": Replaced("kubernetes", "1.17", "node.kubernetes.io/instance-type"),
    "failure-domain.beta.kubernetes.io/zone": Replaced("kubernetes", "1.17", "topology.kubernetes.io/zone"),
    "failure-domain.beta.kubernetes.io/region": Replaced("kubernetes", "1.17", "topology.kubernetes.io/region"),
    "node-role.kubernetes.io/master": Replaced("kubernetes", "1.20", "node-role.kubernetes.io/control-plane"),
}
# kustomization.yaml fields kustomize v5 deprecates (`kustomize edit fix` rewrites them).
KUSTOMIZATION_FIELDS = {
    "patchesStrategicMerge": Replaced("kustomize", "5.0", "patches"),
    "patchesJson6902": Replaced("kustomize", "5.0", "patches (with a target)"),
    "bases": Replaced("kustomize", "2.1", "resources"),
    "commonLabels": Replaced("kustomize", "5.0", "labels (with includeSelectors: true to keep selectors)"),
    "vars": Replaced("kustomize", "5.0", "replacements"),
    "imageTags": Replaced("kustomize", "2.1", "images"),
}
# Kinds whose API the pinned Kubernetes deprecates in favour of another (still served, removal announced).
KINDS = {("", "Endpoints"): Replaced("kubernetes", "1.33", "discovery.k8s.io/v1 EndpointSlice")}
NLB_IP = Replaced(
    "aws_load_balancer_controller",
    "1.2",
    "service.beta.kubernetes.io/aws-load-balancer-type: external with "
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip",
)
LOAD_BALANCER_IP = Replaced(
    "kubernetes",
    "1.24",
    "the load balancer implementation's annotation (AWS: service.beta.kubernetes.io/aws-load-balancer-eip-allocations)",
)
SERVICE_ACCOUNT = Replaced("kubernetes", "1.0", "spec.serviceAccountName")


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.lstrip("v").split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _applies(replaced: Replaced, versions: dict[str, str]) -> bool:
    pinned = versions.get(replaced.component)
    return pinned is None or _version(pinned) >= _version(replaced.since)


_POD_SPECS = (("spec",), ("spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template", "spec"))


def _pod_spec_paths(manifest: Manifest) -> list[tuple[str, ...]]:
    if manifest.kind == "Pod":
        return [("spec",)]
    return [p for p in _POD_SPECS[1:] if isinstance(manifest.get(*p), dict)]


def _label_keys(manifest: Manifest) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(field path, label key) of every node label a manifest selects on."""
    for spec in _pod_spec_paths(manifest):
        for key in manifest.map(*spec, "nodeSelector"):
            yield (*spec, "nodeSelector", key), str(key)
        required = manifest.map(*spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
        for t, term in enumerate(as_list(required.get("nodeSelectorTerms"))):
            for e, expression in enumerate(as_list(as_dict(term).get("matchExpressions"))):
                path = (
                    *spec,
                    "affinity",
                    "nodeAffinity",
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    "nodeSelectorTerms",
                    t,
                    "matchExpressions",
                    e,
                    "key",
                )
                yield path, str(as_dict(expression).get("key"))
        for c, constraint in enumerate(manifest.list(*spec, "topologySpreadConstraints")):
            yield (*spec, "topologySpreadConstraints", c, "topologyKey"), str(as_dict(constraint).get("topologyKey"))
    if manifest.kind == "NodePool":
        for r, requirement in enumerate(manifest.list("spec", "template", "spec", "requirements")):
            yield ("spec", "template", "spec", "requirements", r, "key"), str(as_dict(requirement).get("key"))


@rule("EKS042", "nothing the pinned versions deprecate or replace", Severity.WARNING)
def deprecated_usage(model: Model) -> Iterator[Issue]:
    """What works today but the pinned versions have deprecated or replaced, judged against versions.yaml
    (`kubernetes`, `kustomize`, `aws_load_balancer_controller`): annotations superseded by fields
    (`seccomp.security.alpha.kubernetes.io/pod` by `securityContext.seccompProfile`, AppArmor annotations by
    `securityContext.appArmorProfile`, `scheduler.alpha.kubernetes.io/critical-pod` by `priorityClassName`,
    `volume.beta.kubernetes.io/storage-class` by `storageClassName`, ...), beta node labels in selectors
    (`beta.kubernetes.io/arch`, `failure-domain.beta.kubernetes.io/zone`, `node-role.kubernetes.io/master`),
    deprecated fields (Service `loadBalancerIP`, Pod `serviceAccount`), deprecated kinds (`Endpoints`, replaced
    by EndpointSlice in 1.33), the AWS Load Balancer Controller's `aws-load-balancer-type: nlb-ip`, and
    kustomization fields kustomize v5 deprecates (`patchesStrategicMerge`, `patchesJson6902`, `bases`,
    `commonLabels`, `vars`). Each is a warning naming its replacement: deprecated settings are ignored or
    removed in a later release, usually silently. Annotations and node selectors a `helm_release` passes in its
    values (`podAnnotations`, `service.annotations`, any `...annotations` map; `nodeSelector` maps) are judged
    the same way: the chart copies them into its objects. (`kubernetes.io/ingress.class` and the Karpenter
    annotations are EKS017's; removed API versions are errors, reported by EKS001.)"""
    versions = model.versions
    for release, values in model.helm_releases():
        yield from _chart_values(release, values, values.values, (), versions)
    for manifest in model.effective:
        yield from _annotations(manifest, versions)
        for path, key in _label_keys(manifest):
            replaced = LABELS.get(key)
            if replaced and _applies(replaced, versions):
                yield Issue(
                    f"{manifest.label}: node label {key} is deprecated since Kubernetes {replaced.since}",
                    manifest.where(*path),
                    f"select on {replaced.replacement}",
                )
        kind = KINDS.get((manifest.group, manifest.kind))
        if kind and manifest.api_version == "v1" and _applies(kind, versions):
            yield Issue(
                f"{manifest.label}: the Endpoints API is deprecated since Kubernetes {kind.since}",
                manifest.where("kind"),
                f"use {kind.replacement}",
            )
        if manifest.kind == "Service" and manifest.api_version == "v1":
            if manifest.get("spec", "loadBalancerIP") is not None and _applies(LOAD_BALANCER_IP, versions):
                yield Issue(
                    f"{manifest.label}: spec.loadBalancerIP is deprecated since Kubernetes 1.24",
                    manifest.where("spec", "loadBalancerIP"),
                    f"use {LOAD_BALANCER_IP.replacement}",
                )
            kind_annotation = manifest.map("metadata", "annotations").get(
                "service.beta.kubernetes.io/aws-load-balancer-type"
            )
            if kind_annotation == "nlb-ip" and _applies(NLB_IP, versions):
                yield Issue(
                    f"{manifest.label}: aws-load-balancer-type nlb-ip is deprecated by the AWS Load Balancer "
                    "Controller",
                    manifest.where("metadata", "annotations", "service.beta.kubernetes.io/aws-load-balancer-type"),
                    f"use {NLB_IP.replacement}",
                )
        for spec in _pod_spec_paths(manifest):
            if manifest.get(*spec, "serviceAccount") is not None and _applies(SERVICE_ACCOUNT, versions):
                yield Issue(
                    f"{manifest.label}: spec.serviceAccount is a deprecated alias",
                    manifest.where(*spec, "serviceAccount"),
                    f"use {SERVICE_ACCOUNT.replacement}",
                )
    for manifest in model.manifests:
        if manifest.kind != "Kustomization" and manifest.file.name not in ("kustomization.yaml", "kustomization.yml"):
            continue
        for field, replaced in KUSTOMIZATION_FIELDS.items():
            if field in manifest.doc and _applies(replaced, versions):
                yield Issue(
                    f"{manifest.file.name}: {field} is deprecated since kustomize {replaced.since}",
                    manifest.where(field),
                    f"use {replaced.replacement} (`kustomize edit fix` rewrites it)",
                )


def _replaced_annotation(key: str) -> Replaced | None:
    return ANNOTATIONS.get(key) or next(
        (r for prefix, r in ANNOTATIONS.items() if prefix.endswith("/") and key.startswith(prefix)), None
    )


def _chart_values(
    release: TfResource, values: HelmValues, node: Any, path: tuple[str, ...], versions: dict[str, str]
) -> Iterator[Issue]:
    """Annotation and nodeSelector maps anywhere in a release's values, judged as the objects they end up in."""
    for key, value in as_dict(node).items():
        at = (*path, str(key))
        if isinstance(value, dict) and (str(key).lower().endswith("annotations") or key == "nodeSelector"):
            table = LABELS if key == "nodeSelector" else None
            for inner in value:
                replaced = table.get(str(inner)) if table is not None else _replaced_annotation(str(inner))
                if inner in DEPRECATED_ANNOTATIONS or replaced is None or not _applies(replaced, versions):
                    continue
                what = "node label" if table is not None else "annotation"
                yield Issue(
                    f"{release.address}: chart value {'.'.join(at)} sets {what} {inner}, deprecated since "
                    f"Kubernetes {replaced.since}",
                    values.sources.get((*at, str(inner)), Location(release.file, release.line_of("values"))),
                    f"use {replaced.replacement}",
                )
        elif isinstance(value, dict):
            yield from _chart_values(release, values, value, at, versions)


def _annotations(manifest: Manifest, versions: dict[str, str]) -> Iterator[Issue]:
    paths = [
        ("metadata", "annotations"),
        *[(*p[:-1], "metadata", "annotations") for p in _pod_spec_paths(manifest) if p != ("spec",)],
    ]
    for path in paths:
        for key in manifest.map(*path):
            if key in DEPRECATED_ANNOTATIONS:
                continue
            replaced = _replaced_annotation(str(key))
            if replaced and _applies(replaced, versions):
                yield Issue(
                    f"{manifest.label}: annotation {key} is deprecated since Kubernetes {replaced.since}",
                    manifest.where(*path, key),
                    f"use {replaced.replacement}",
                )
