"""Versions: compatibility, agreement with versions.yaml, deprecated APIs, Helm value keys."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from harness.errors import InputError
from harness.gate.facts import ARGO_CHART, KARPENTER_CHART, LB_CHART, node_classes, pod_spec_path, resolved
from harness.gate.model import Location, Manifest, Model, Severity, as_dict, as_list, chart_name
from harness.gate.rules import Issue, rule
from harness.images.reference import parse_reference
from harness.toolchain.components import COMPONENTS, CONTROL_PLANE_BUILDS, UPGRADE_FROM_MINOR

CHART_PINS = {KARPENTER_CHART: "karpenter", ARGO_CHART: "argo_cd_chart", LB_CHART: "aws_load_balancer_controller"}
# The values that set each controller chart's image tag, most specific first (Argo CD's components each take their
# own tag before the global one); the version each must equal is its toolchain component's (Component.chart).
IMAGE_TAG_VALUES: dict[str, tuple[tuple[str, ...], ...]] = {
    LB_CHART: (("image", "tag"),),
    KARPENTER_CHART: (("controller", "image", "tag"),),
    ARGO_CHART: tuple(
        (*component, "image", "tag")
        for component in (("controller",), ("repoServer",), ("server",), ("applicationSet",), ("global",))
    ),
}
FROM_KUBERNETES = UPGRADE_FROM_MINOR  # the minor the prepared upgrade starts from (EKS049)
# required_version is recorded as the requirement of a provider named "terraform".
PROVIDER_PINS = {
    "aws": "aws_provider",
    "helm": "helm_provider",
    "kubernetes": "kubernetes_provider",
    "http": "http_provider",
    "terraform": "terraform",
}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:3])


def _pad(version: tuple[int, ...], length: int = 3) -> tuple[int, ...]:
    return version + (0,) * (length - len(version))


def satisfies(version: str, constraint: str) -> bool:
    """Terraform version constraint syntax: comma-separated =, !=, >, >=, <, <=, ~> terms."""
    actual = _pad(version_tuple(version))
    for term in (t.strip() for t in constraint.split(",") if t.strip()):
        match = re.fullmatch(r"(~>|>=|<=|!=|=|>|<)?\s*v?([0-9][0-9.]*)", term)
        if match is None:
            continue
        operator, raw = match.group(1) or "=", match.group(2)
        wanted = version_tuple(raw)
        padded = _pad(wanted)
        if operator == "~>":  # at least this version, and only the rightmost given part may grow
            fixed = wanted[:-1] if len(wanted) > 1 else ()
            if actual < padded or actual[: len(fixed)] != fixed:
                return False
        elif not {
            "=": actual == padded,
            "!=": actual != padded,
            ">": actual > padded,
            ">=": actual >= padded,
            "<": actual < padded,
            "<=": actual <= padded,
        }[operator]:
            return False
    return True


def kubernetes_version(model: Model) -> tuple[str, Location] | None:
    for cluster in model.terraform.of_type("aws_eks_cluster"):
        if (version := resolved(cluster.get("version"))) is not None:
            return version, Location(cluster.file, cluster.line_of("version"))
    if "kubernetes" in model.versions and model.versions_file is not None:
        return model.versions["kubernetes"], Location(model.versions_file, model.versions_lines.get("kubernetes", 1))
    return None


def karpenter_version(model: Model) -> tuple[str, Location] | None:
    found = model.release_for(KARPENTER_CHART)
    if found is not None and (version := resolved(found[0].get("version"))) is not None:
        return version, Location(found[0].file, found[0].line_of("version"))
    if "karpenter" in model.versions and model.versions_file is not None:
        return model.versions["karpenter"], Location(model.versions_file, model.versions_lines.get("karpenter", 1))
    return None


def karpenter_too_old(model: Model, karpenter: str, minor: str) -> str | None:
    """The oldest Karpenter release that supports Kubernetes `minor` (the reference compatibility table) when
    `karpenter` is older than it; None when it is not, or the table does not list the minor."""
    minimum = as_dict(model.reference.compatibility.get("karpenter_min_for_kubernetes")).get(minor)
    return str(minimum) if minimum is not None and version_tuple(karpenter) < version_tuple(str(minimum)) else None


@rule("EKS015", "the Karpenter release supports the cluster's Kubernetes version")
def compatibility(model: Model) -> Iterator[Issue]:
    """Each Kubernetes minor needs a minimum Karpenter release (the compatibility matrix of
    aws/karpenter-provider-aws, transcribed in the reference `compatibility.yaml`). An older Karpenter on a
    newer cluster fails in ways that look unrelated: nodes that never become ready, CRD validation errors.
    Compared: the cluster version (Terraform, else versions.yaml `kubernetes`) with the Karpenter chart
    version (the Helm release, else versions.yaml `karpenter`). A chart version newer than the newest
    release in the reference data (`latest`) is reported too: a typo, or a release nothing here vouches for."""
    yield from _unreleased(model)
    kubernetes, karpenter = kubernetes_version(model), karpenter_version(model)
    table = as_dict(model.reference.compatibility.get("karpenter_min_for_kubernetes"))
    if kubernetes is None or karpenter is None or not table:
        return
    minor = ".".join(kubernetes[0].split(".")[:2])
    if table.get(minor) is None:
        newest = max(table, key=version_tuple)
        if version_tuple(minor) > version_tuple(newest):
            yield Issue(
                f"Kubernetes {minor} is newer than any Karpenter release in the compatibility table "
                f"(newest: Kubernetes {newest})",
                kubernetes[1],
                "use a Kubernetes version Karpenter supports, or update the reference data",
            )
        return
    if minimum := karpenter_too_old(model, karpenter[0], minor):
        yield Issue(
            f"Karpenter {karpenter[0]} does not support Kubernetes {minor} (needs >= {minimum})",
            karpenter[1],
            f"upgrade Karpenter to >= {minimum} (versions.yaml karpenter)",
        )


def _unreleased(model: Model) -> Iterator[Issue]:
    """Chart versions newer than the newest release the reference data knows: a typo, or a release that
    did not exist when the reference was pinned (the other checks could not vouch for it)."""
    latest = as_dict(model.reference.compatibility.get("latest"))
    for release, _values in model.helm_releases():
        key = CHART_PINS.get(chart_name(release))
        version = resolved(release.get("version"))
        if chart_name(release) in model.shipped_charts:
            continue  # published by the controller's own pinned module: that module vouches for it
        newest = latest.get(key) if key else None
        if version is not None and newest is not None and version_tuple(version) > version_tuple(str(newest)):
            yield Issue(
                f"{release.address}: chart version {version} is newer than the newest known release {newest}",
                Location(release.file, release.line_of("version")),
                "check the version exists, then update the reference data to it",
            )


def _container_images(model: Model) -> Iterator[tuple[str, Location, str]]:
    for manifest in model.effective:
        path = pod_spec_path(manifest)
        spec = manifest.get(*path) if path else None
        if not isinstance(spec, dict):
            continue
        for group in ("initContainers", "containers"):
            for index, container in enumerate(as_list(spec.get(group))):
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    yield container["image"], manifest.where(*(path or ()), group, index, "image"), manifest.label


def _repository(image: str) -> str:
    name = image.split("@")[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


@rule("EKS016", "every layer uses the versions pinned in versions.yaml")
def pinned_versions(model: Model) -> Iterator[Issue]:
    """versions.yaml is the one place versions are chosen. Where a layer cannot read it (a literal in a
    `helm_release`, a `required_providers` constraint, the cluster version, the EC2NodeClass AMI alias, a
    container image) it must agree: chart versions equal `karpenter`, `argo_cd_chart`,
    `aws_load_balancer_controller`; provider constraints admit `aws_provider`, `helm_provider`,
    `kubernetes_provider`, and `required_version` admits `terraform`; `aws_eks_cluster.version` equals
    `kubernetes`; an EC2NodeClass alias equals `karpenter_ami_alias`; images of the same repository equal any
    `*_image` pin; the control planes the toolchain builds (`kubernetes_release`, `upgrade_from_kubernetes_release`)
    are releases of the minors they stand for (`kubernetes`, `upgrade_from_kubernetes`)."""
    pins = model.versions
    if not pins:
        return
    for release, _values in model.helm_releases():
        key = CHART_PINS.get(chart_name(release))
        version = resolved(release.get("version"))
        if key in pins and version is not None and version.lstrip("v") != pins[key].lstrip("v"):
            yield Issue(
                f"{release.address}: chart version {version} but versions.yaml {key} is {pins[key]}",
                Location(release.file, release.line_of("version")),
                f"read the version from versions.yaml ({key})",
            )
    for provider in model.terraform.providers:
        key = PROVIDER_PINS.get(provider.name)
        if key in pins and provider.version and not satisfies(pins[key], provider.version):
            what = "required_version" if provider.name == "terraform" else f"provider {provider.name} constraint"
            yield Issue(
                f"{what} {provider.version!r} ({provider.root}) excludes versions.yaml {key} {pins[key]}",
                Location(provider.file, provider.line),
                f"use a constraint that admits {pins[key]}",
            )
    for cluster in model.terraform.of_type("aws_eks_cluster"):
        version = resolved(cluster.get("version"))
        if "kubernetes" in pins and version is not None and version != pins["kubernetes"]:
            yield Issue(
                f"{cluster.address}: version {version} but versions.yaml kubernetes is {pins['kubernetes']}",
                Location(cluster.file, cluster.line_of("version")),
                "read the version from versions.yaml",
            )
    if "karpenter_ami_alias" in pins:
        for node_class in node_classes(model):
            for index, term in enumerate(node_class.list("spec", "amiSelectorTerms")):
                alias = term.get("alias") if isinstance(term, dict) else None
                if isinstance(alias, str) and alias != pins["karpenter_ami_alias"]:
                    yield Issue(
                        f"{node_class.label}: AMI alias {alias} but versions.yaml karpenter_ami_alias is "
                        f"{pins['karpenter_ami_alias']}",
                        node_class.where("spec", "amiSelectorTerms", index, "alias"),
                        "use the pinned alias (a new AMI is a reviewed change)",
                    )
    for component, minor_key, _ in CONTROL_PLANE_BUILDS:
        release_key = component.version_key
        built, minor = pins.get(release_key), pins.get(minor_key)
        if built is None or minor is None or model.versions_file is None:
            continue
        if version_tuple(str(built))[:2] != version_tuple(str(minor)):
            yield Issue(
                f"versions.yaml {release_key} {built} is not Kubernetes {minor} ({minor_key}): the local target "
                "would prove another minor than the cluster runs",
                Location(model.versions_file, model.versions_lines.get(release_key, 1)),
                f"a {minor}.x release the Go module proxy serves (toolchain/ wrapper and versions.yaml together)",
            )
    images = {key: value for key, value in pins.items() if key.endswith("_image")}
    for image, where, label in _container_images(model):
        for key, pinned in images.items():
            if _repository(image) == _repository(pinned) and image != pinned:
                yield Issue(f"{label}: image {image} but versions.yaml {key} is {pinned}", where, f"use {pinned}")


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values.get(key) if isinstance(values, Mapping) else None  # type: ignore[assignment]
    return values


@rule("EKS046", "each controller's image is the version the local target proves (binary = image)")
def controller_images(model: Model) -> Iterator[Issue]:
    """The local target runs each controller from a binary built at the version versions.yaml pins for it
    (`aws_load_balancer_controller`, `karpenter`, `argo_cd`): a green local run says something about a real
    account only when the cluster runs that same version. The image tag a release runs is the one its values set
    (LB controller `image.tag`, Karpenter `controller.image.tag`, Argo CD per component or `global.image.tag`),
    else the chart's `appVersion` (when the reference data or the controller's module holds that chart version); it
    must equal the pinned version. The Argo CD chart 10.1.1 ships v3.4.4, so
    infra/addons sets `global.image.tag` to `argo_cd`; removing it would deploy 3.4.4 while 3.6.2 is proven."""
    pins = model.versions
    built_at = {c.chart: c.version_key for c in COMPONENTS if c.chart}
    for release, values in model.helm_releases():
        chart = chart_name(release)
        key, paths = built_at.get(chart, ""), IMAGE_TAG_VALUES.get(chart, ())
        if key not in pins or not paths:
            continue
        pinned = pins[key].lstrip("v")
        for path in paths[:-1] if chart == ARGO_CHART else ():  # a component's own tag overrides the global one
            tag = resolved(_lookup(values.values, path))
            if tag is not None and str(tag).lstrip("v") != pinned:
                yield Issue(
                    f"{release.address}: {'.'.join(path)} {tag} but the toolchain builds {key} {pins[key]}",
                    values.sources.get(path, Location(release.file, release.line_of("values"))),
                    f"set it to v{pinned} (versions.yaml {key}), or leave it to the global tag",
                )
        path = paths[-1]
        explicit = resolved(_lookup(values.values, path))
        known = model.reference.chart_values.get(chart, ("", {}))[0] == resolved(release.get("version"))
        tag = explicit if explicit is not None else model.reference.chart_app_versions.get(chart) if known else None
        if tag is None or str(tag).lstrip("v") == pinned:
            continue
        source = f"{'.'.join(path)} {tag}" if explicit is not None else f"chart appVersion {tag} (no {'.'.join(path)})"
        yield Issue(
            f"{release.address}: runs {source} but the toolchain builds and the local target proves {key} {pins[key]}",
            values.sources.get(path, Location(release.file, release.line_of("values"))),
            f"set {'.'.join(path)} to the pinned version (versions.yaml {key}), or pin a chart that ships it",
        )


def moving_tag(image: str) -> bool:
    """No digest, and no tag or `latest` (harness.images.reference parses references the way runtimes do)."""
    try:
        return parse_reference(image).moving
    except InputError:  # not a reference any runtime could pin either
        return True


@rule("EKS028", "workload images are pinned, not a moving tag", Severity.WARNING)
def moving_images(model: Model) -> Iterator[Issue]:
    """Karpenter starts new nodes when the app scales out, minutes or months after the first replicas
    started, and each new node pulls the image again. With a moving tag (`:latest`, or no tag at all, which
    pulls `latest`) those replicas can get different bits than the ones already running: an unreviewed
    rollout that no manifest change records, and that a rollback cannot undo. `imagePullPolicy: IfNotPresent`
    does not help across nodes: it only reuses an image already on the same node, and a new node has none.
    Reported for every container and initContainer image that has neither a digest (`@sha256:` and 64 hex
    digits) nor a tag other than `latest`; in `localhost:5000/app` the 5000 is a registry port, not a tag.
    Pin a digest (`repo@sha256:...`, or `repo:tag@sha256:...` to keep the tag readable): `harness pin-image`
    looks it up where the registry is reachable. A version tag passes (a registry can still move it, but
    by convention it does not). A warning: the image works today."""
    for image, where, label in _container_images(model):
        if resolved(image) is None or "${" in image or not moving_tag(image):
            continue  # unrendered templates are judged once rendered
        yield Issue(
            f"{label}: image {image} is a moving tag: replicas Karpenter starts later may pull different "
            "bits than the first ones",
            where,
            f"pin it by digest: run `harness pin-image` where the registry is reachable, or write "
            f"{_repository(image)}@sha256:<digest>",
        )


REMOVED_APIS = {
    "karpenter.sh/v1beta1": "karpenter.sh/v1 (Karpenter dropped v1beta1 in 1.1)",
    "karpenter.sh/v1alpha5": "karpenter.sh/v1 NodePool (Provisioner was removed)",
    "karpenter.k8s.aws/v1beta1": "karpenter.k8s.aws/v1 (Karpenter dropped v1beta1 in 1.1)",
    "karpenter.k8s.aws/v1alpha1": "karpenter.k8s.aws/v1 EC2NodeClass (AWSNodeTemplate was removed)",
    "extensions/v1beta1": "apps/v1 or networking.k8s.io/v1",
    "networking.k8s.io/v1beta1": "networking.k8s.io/v1",
    "policy/v1beta1": "policy/v1",
    "batch/v1beta1": "batch/v1",
    "autoscaling/v2beta1": "autoscaling/v2",
    "autoscaling/v2beta2": "autoscaling/v2",
    "apiextensions.k8s.io/v1beta1": "apiextensions.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1": "rbac.authorization.k8s.io/v1",
    # Kubernetes API removals up to the pinned 1.36 (kubernetes.io/docs/reference/using-api/deprecation-guide; 1.36
    # removed only alpha APIs, CHANGELOG-1.36).
    "discovery.k8s.io/v1beta1": "discovery.k8s.io/v1 (removed in Kubernetes 1.25)",
    "node.k8s.io/v1beta1": "node.k8s.io/v1 (removed in Kubernetes 1.25)",
    "storage.k8s.io/v1beta1": "storage.k8s.io/v1 (CSIStorageCapacity: removed in Kubernetes 1.27)",
    "flowcontrol.apiserver.k8s.io/v1beta1": "flowcontrol.apiserver.k8s.io/v1 (removed in Kubernetes 1.26)",
    "flowcontrol.apiserver.k8s.io/v1beta2": "flowcontrol.apiserver.k8s.io/v1 (removed in Kubernetes 1.29)",
    "flowcontrol.apiserver.k8s.io/v1beta3": "flowcontrol.apiserver.k8s.io/v1 (removed in Kubernetes 1.32)",
    "admissionregistration.k8s.io/v1beta1": "admissionregistration.k8s.io/v1 (removed in Kubernetes 1.22)",
    "scheduling.k8s.io/v1beta1": "scheduling.k8s.io/v1 (removed in Kubernetes 1.22)",
    "coordination.k8s.io/v1beta1": "coordination.k8s.io/v1 (removed in Kubernetes 1.22)",
    "certificates.k8s.io/v1beta1": "certificates.k8s.io/v1 (removed in Kubernetes 1.22)",
}
DEPRECATED_ANNOTATIONS = {
    "kubernetes.io/ingress.class": "spec.ingressClassName",
    "karpenter.sh/do-not-evict": "karpenter.sh/do-not-disrupt",
    "karpenter.sh/do-not-consolidate": "karpenter.sh/do-not-disrupt",
}


@rule("EKS017", "no deprecated annotations", Severity.WARNING)
def deprecated(model: Model) -> Iterator[Issue]:
    """Deprecated annotations keep "working" by being ignored or by overriding the field that replaced
    them: `kubernetes.io/ingress.class` is superseded by `spec.ingressClassName`, `karpenter.sh/do-not-evict`
    and `karpenter.sh/do-not-consolidate` by `karpenter.sh/do-not-disrupt`. A warning: they still work today,
    but not for long, and they hide which setting wins. (Removed API versions are errors, reported by EKS001.)"""
    for manifest in model.effective:
        for path in (("metadata", "annotations"), ("spec", "template", "metadata", "annotations")):
            annotations = manifest.get(*path)
            if not isinstance(annotations, dict):
                continue
            for key, replacement in DEPRECATED_ANNOTATIONS.items():
                if key in annotations:
                    yield Issue(
                        f"{manifest.label}: annotation {key} is deprecated",
                        manifest.where(*path, key),
                        f"use {replacement}",
                    )


def _free_form(default: Any) -> bool:
    """A values map whose keys the chart does not enumerate (annotations, config maps, ...)."""
    if default is None:
        return True
    if isinstance(default, dict):
        return not default or any("." in str(k) or "/" in str(k) for k in default)
    return False


def unknown_keys(
    values: Mapping[str, Any], defaults: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        path = (*prefix, str(key))
        if key not in defaults:
            if not (prefix and ("." in str(key) or "/" in str(key))):  # nested dotted keys are config entries
                yield path
            continue
        default = defaults[key]
        if isinstance(value, dict) and isinstance(default, dict) and not _free_form(default):
            yield from unknown_keys(value, default, path)


def dotted(path: tuple[str, ...]) -> str:
    return "".join(f'["{p}"]' if "." in p else (f".{p}" if i else p) for i, p in enumerate(path))


@rule("EKS018", "Helm values use keys the pinned chart defines")
def helm_keys(model: Model) -> Iterator[Issue]:
    """Helm ignores values the chart does not read: a misspelt key (`settings.clustername`), a key from an
    older chart version (`settings.aws.clusterName`), or one at the wrong level is silently dropped and the
    chart's default applies. Every key a `helm_release` sets must exist in the pinned chart's default
    values (reference data `charts/`), except inside maps the chart leaves open: empty maps such as
    `podAnnotations`, and config maps whose entries are dotted keys such as Argo CD's
    `configs.params["server.insecure"]` (a nested key containing "." or "/" is taken as such an entry).
    Argo CD Applications of these charts are checked the same way (`helm.valuesObject`, `helm.values`)."""
    fix = "fix the key's spelling or level (see the chart's values.yaml)"
    for release, values in model.helm_releases():
        chart = chart_name(release)
        if chart not in model.reference.chart_values:
            continue
        pinned_version, defaults = model.reference.chart_values[chart]
        for path in unknown_keys(values.values, defaults):
            yield Issue(
                f"{release.address}: value {dotted(path)} is not a key of chart {chart} {pinned_version}",
                values.sources.get(path, Location(release.file, release.line_of("values"))),
                fix,
            )
    for app in model.rendered.applications:
        for field, source in _chart_sources(app):
            chart = str(source.get("chart"))
            if chart not in model.reference.chart_values:
                continue
            pinned_version, defaults = model.reference.chart_values[chart]
            helm = as_dict(source.get("helm"))
            app_values = as_dict(helm.get("valuesObject")) or as_dict(_yaml_values(helm.get("values")))
            for path in unknown_keys(app_values, defaults):
                yield Issue(
                    f"{app.label}: value {dotted(path)} is not a key of chart {chart} {pinned_version}",
                    app.where(*field, "helm", *(("valuesObject", *path) if "valuesObject" in helm else ("values",))),
                    fix,
                )


def _chart_sources(app: Manifest) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    candidates: list[tuple[tuple[Any, ...], dict[str, Any]]]
    if app.map("spec", "source"):
        candidates = [(("spec", "source"), app.map("spec", "source"))]
    else:
        candidates = [(("spec", "sources", i), as_dict(s)) for i, s in enumerate(app.list("spec", "sources"))]
    return ((field, source) for field, source in candidates if source.get("chart"))


def _yaml_values(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None
