"""The EKS minor upgrade the platform is prepared for: versions.yaml `upgrade_from_kubernetes` (and what runs on that
minor) is where it starts, `kubernetes` where it ends. The gate proves the step before anything is changed."""

from __future__ import annotations

from collections.abc import Iterator

from semantic_version import NpmSpec, Version

from harness.gate.model import Location, Model
from harness.gate.rules import Issue, rule
from harness.gate.rules.versions import (
    CHART_PINS,
    FROM_KUBERNETES,
    karpenter_too_old,
    karpenter_version,
    kubernetes_version,
    version_tuple,
)

FROM_KUBE_PROXY = "upgrade_from_eks_addon_kube_proxy"
# kube-proxy may be up to three minors older than the API server (the Kubernetes version skew policy).
KUBE_PROXY_SKEW = 3

Minor = tuple[int, int]


def minor(version: str) -> Minor:
    parts = (*version_tuple(version.lstrip("v")), 0, 0)
    return parts[0], parts[1]


def shown(version: Minor) -> str:
    return f"{version[0]}.{version[1]}"


def admits(constraint: str, version: Minor) -> bool:
    """Whether a chart's kubeVersion (helm's semver constraints: ranges joined by ',' or ' ', alternatives by
    '||') admits the minor. EKS's patch versions carry a pre-release-like suffix, hence the '-0' idiom charts use."""
    spec = NpmSpec(" ".join(part.strip() for part in constraint.split(",")))
    return Version(f"{version[0]}.{version[1]}.0") in spec


@rule("EKS049", "the prepared upgrade is one EKS minor step that everything running supports on both minors")
def upgrade(model: Model) -> Iterator[Issue]:
    """EKS upgrades a cluster one minor at a time, and for the length of the upgrade the controllers, their charts
    and the add-ons run against both minors: the old one before the control plane moves, the new one after.
    With versions.yaml `upgrade_from_kubernetes` set, this checks, before anything is changed: the step is one
    minor; Karpenter supports both minors (the reference compatibility table); each pinned chart's `kubeVersion`
    admits both; the kube-proxy add-on of the old side (`upgrade_from_eks_addon_kube_proxy`) is the old minor's
    and within the skew kube-proxy may have behind the new API server. APIs the new minor removed are EKS001's."""
    if FROM_KUBERNETES not in model.versions or model.versions_file is None:
        return
    file = model.versions_file

    def at(key: str) -> Location:
        return Location(file, model.versions_lines.get(key, 1))

    found = kubernetes_version(model)
    if found is None:
        return
    start, end = minor(str(model.versions[FROM_KUBERNETES])), minor(found[0])
    both = (start, end)
    if end != (start[0], start[1] + 1):
        yield Issue(
            f"the upgrade from Kubernetes {shown(start)} to {shown(end)} is not one minor step: EKS upgrades a "
            "cluster one minor at a time",
            at(FROM_KUBERNETES),
            f'upgrade_from_kubernetes: "{end[0]}.{end[1] - 1}" (and upgrade through each minor in turn)',
        )
    if (karpenter := karpenter_version(model)) is not None:
        for version in both:
            if minimum := karpenter_too_old(model, karpenter[0], shown(version)):
                yield Issue(
                    f"Karpenter {karpenter[0]} does not support Kubernetes {shown(version)}, which runs during the "
                    f"upgrade (needs >= {minimum})",
                    karpenter[1],
                    f"upgrade Karpenter to >= {minimum} before the cluster (versions.yaml karpenter)",
                )
    for chart, pin in sorted(CHART_PINS.items()):
        constraint = model.reference.chart_kube_versions.get(chart)
        outside = [shown(v) for v in both if constraint and not admits(constraint, v)]
        if outside:
            yield Issue(
                f"the {chart} chart declares kubeVersion {constraint!r}: Kubernetes {', '.join(outside)}, on which "
                "it runs during the upgrade, is outside it",
                at(pin),
                f"pin a {chart} chart whose kubeVersion admits {shown(start)} and {shown(end)}",
            )
    proxy = model.versions.get(FROM_KUBE_PROXY)
    if proxy is not None and minor(str(proxy)) != start:
        yield Issue(
            f"the old side's kube-proxy add-on {proxy} is not Kubernetes {shown(start)}'s: the add-on must match the "
            "cluster's minor before the upgrade",
            at(FROM_KUBE_PROXY),
            f"a kube-proxy add-on version v{shown(start)}.x-eksbuild.N (aws eks describe-addon-versions)",
        )
    elif proxy is not None and end[1] - minor(str(proxy))[1] > KUBE_PROXY_SKEW:
        yield Issue(
            f"kube-proxy {proxy} is more than {KUBE_PROXY_SKEW} minors behind Kubernetes {shown(end)}",
            at(FROM_KUBE_PROXY),
            "upgrade kube-proxy before the control plane",
        )
