"""Argo CD projects and Application names: what the platform's Applications may sync, and per-cluster names."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.gate.effective import _GO_EXPR, _go_expression, build
from harness.gate.facts import resolved
from harness.gate.hcl import Unknown, decoded
from harness.gate.model import ClusterSecret, Manifest, Model, as_dict, as_list
from harness.gate.rules import Issue, rule

APP_FINALIZER = "resources-finalizer.argocd.argoproj.io"
DEFAULT_PROJECT = "default"
# Kinds without a namespace among those a platform like this syncs: Kubernetes core kinds and the Karpenter
# CRDs (their spec.scope is Cluster). Every other kind is taken as namespaced.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("networking.k8s.io", "IngressClass"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("apiregistration.k8s.io", "APIService"),
        ("karpenter.sh", "NodePool"),
        ("karpenter.sh", "NodeClaim"),
        ("karpenter.sh", "NodeOverlay"),
        ("karpenter.k8s.aws", "EC2NodeClass"),
    }
)
_CLUSTER_NAME_IN_TEMPLATE = re.compile(r"\{\{-?\s*\.?(?:name|nameNormalized)\s*(?:\|[^}]*)?-?\}\}")


def cluster_scoped(manifest: Manifest) -> bool:
    return (manifest.group, manifest.kind) in CLUSTER_SCOPED_KINDS


def _argo(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.kind == kind and m.group == "argoproj.io"]


def platform_applications(model: Model) -> list[Manifest]:
    """Applications as written, rendered by ApplicationSets, and installed by a local Helm chart."""
    return [*model.rendered.applications, *_argo(model.local_charts, "Application")]


def projects(model: Model) -> dict[str, Manifest]:
    return {p.name: p for p in [*_argo(model.manifests, "AppProject"), *_argo(model.local_charts, "AppProject")]}


def _secret_of(app: Manifest, secrets: Sequence[ClusterSecret]) -> ClusterSecret | None:
    _, found, name = app.origin.partition(" for cluster ")
    return next((s for s in secrets if s.name == name), None) if found else None


def symbolic(value: Any, app: Manifest, secrets: Sequence[ClusterSecret]) -> str | None:
    """A static value; or, where a template reads a cluster secret annotation known only at apply time, that
    annotation's Terraform expression as `${...}` (how harness.gate.local_charts renders such values too)."""
    if isinstance(value, str) and "{{" in value and (secret := _secret_of(app, secrets)) is not None:
        params = {
            "metadata": {"annotations": secret.annotations, "labels": secret.labels},
            "name": secret.name,
            "server": secret.server,
        }

        def substitute(match: re.Match[str]) -> str:
            found = decoded(_go_expression(match.group(1), params))
            return "${" + found.text + "}" if isinstance(found, Unknown) else match.group(0)

        value = _GO_EXPR.sub(substitute, value)
    return resolved(value)


def _is_symbolic(value: str) -> bool:
    return "${" in value


def _normal_repo(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def _glob(value: str, pattern: Any) -> bool:
    return isinstance(pattern, str) and fnmatch.fnmatchcase(value, pattern)


def destination_permitted(project: Manifest, server: str, name: str, namespace: str) -> bool:
    """Argo CD's destination match: a server (or cluster name) glob and a namespace glob; `!` entries deny."""
    allowed = denied = False
    for entry in project.list("spec", "destinations"):
        if not isinstance(entry, dict):
            continue
        target = str(entry.get("server") or "")
        by_name = str(entry.get("name") or "")
        pattern_ns = str(entry.get("namespace") or "")
        negated = pattern_ns.startswith("!") or target.startswith("!")
        ns_ok = _glob(namespace, pattern_ns.lstrip("!"))
        cluster_ok = (bool(target) and _glob(server, target.lstrip("!"))) or (bool(by_name) and _glob(name, by_name))
        if ns_ok and cluster_ok:
            denied = denied or negated
            allowed = allowed or not negated
    return allowed and not denied


def _listed(entries: list[Any], group: str, kind: str) -> bool:
    return any(
        isinstance(e, dict) and _glob(group, str(e.get("group", ""))) and _glob(kind, str(e.get("kind", "")))
        for e in entries
    )


def kind_permitted(project: Manifest, manifest: Manifest) -> str | None:
    """Why the project refuses the object's kind (Argo CD's IsGroupKindPermitted), or None."""
    group, kind = manifest.group, manifest.kind
    if cluster_scoped(manifest):
        if not _listed(project.list("spec", "clusterResourceWhitelist"), group, kind):
            return "cluster-scoped kind not in clusterResourceWhitelist"
        if _listed(project.list("spec", "clusterResourceBlacklist"), group, kind):
            return "cluster-scoped kind in clusterResourceBlacklist"
        return None
    allow = project.list("spec", "namespaceResourceWhitelist")
    if allow and not _listed(allow, group, kind):
        return "kind not in namespaceResourceWhitelist"
    if _listed(project.list("spec", "namespaceResourceBlacklist"), group, kind):
        return "kind in namespaceResourceBlacklist"
    return None


def _sources(app: Manifest) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    if app.map("spec", "source"):
        return [(("spec", "source"), app.map("spec", "source"))]
    return [(("spec", "sources", i), s) for i, s in enumerate(app.list("spec", "sources")) if isinstance(s, dict)]


def delivered(model: Model, app: Manifest, chart_apps: set[int]) -> list[Manifest]:
    """What an Application syncs: from the rendered chain, or (an Application a local chart installs, outside
    the chain) its source paths built from the manifests the gate read."""
    if id(app) not in chart_apps:
        return [m for m in model.effective if model.rendered.delivered_by.get(id(m)) is app]
    by_file: dict[Path, list[Manifest]] = {}
    for manifest in model.manifests:
        by_file.setdefault(manifest.file.resolve(), []).append(manifest)
    bases = [b for r in model.gitops_roots for b in (r.resolve(), *r.resolve().parents)]
    objects = []
    for _field, source in _sources(app):
        path = source.get("path")
        if not isinstance(path, str) or "{{" in path or source.get("chart"):
            continue
        directory = next((b / path for b in bases if (b / path).is_dir()), None)
        if directory is not None:
            objects.extend(build(directory.resolve(), by_file, set()))
    return objects


@rule("EKS029", "the platform's AppProject admits every repository, destination and kind its Applications sync")
def app_project(model: Model) -> Iterator[Issue]:
    """An Application syncs only what its AppProject admits: its `repoURL` must match a `sourceRepos` entry,
    its destination (server and namespace) and the namespace of every namespaced object it delivers a
    `destinations` entry, every cluster-scoped kind a `clusterResourceWhitelist` entry (empty admits none),
    every namespaced kind the `namespaceResourceWhitelist` (when it has entries), none of them a blacklist
    entry. Otherwise the sync fails with "not permitted in project", on the cluster, after the merge.
    Checked for every Application (as written, generated by an ApplicationSet for each cluster secret, or
    installed by a Helm chart in the checked tree, such as a bootstrap chart's root Application) whose project
    is defined in the checked tree; what a root Application delivers is its source path as read. An Application
    naming a project the tree does not define is reported too, unless a local chart template could not be
    rendered (see the notes). The AppProject needs Argo CD's `resources-finalizer.argocd.argoproj.io`: without it
    the project can be deleted while its Applications still exist, and their deletion then stalls. A repository
    URL known only at apply time (a Terraform variable behind the cluster secret and the chart values) is
    compared as that variable: equal to the same variable, and not judged against a literal entry.
    `project: default` is EKS030's."""
    known = projects(model)
    for defined in known.values():
        if APP_FINALIZER not in defined.list("metadata", "finalizers"):
            yield Issue(
                f"AppProject {defined.name}: needs finalizer {APP_FINALIZER} (kept until no Application uses it)",
                defined.where("metadata"),
                f"add {APP_FINALIZER} to metadata.finalizers",
            )
    chart_apps = {id(a) for a in _argo(model.local_charts, "Application")}
    secrets = model.rendered.cluster_secrets
    for app in platform_applications(model):
        name = str(app.get("spec", "project") or DEFAULT_PROJECT)
        if name == DEFAULT_PROJECT:
            continue
        project = known.get(name)
        if project is None:
            if known and not model.local_chart_notes:
                yield Issue(
                    f"{app.label}: project {name!r} is not an AppProject of the checked tree "
                    f"({', '.join(sorted(known))})",
                    app.where("spec", "project"),
                    "name the platform's project",
                )
            continue
        repos = [_normal_repo(r) for r in map(resolved, project.list("spec", "sourceRepos")) if r]
        for field, source in _sources(app):
            repo = symbolic(source.get("repoURL"), app, secrets)
            if repo is None or any(_glob(_normal_repo(repo), r) for r in repos):
                continue
            # A value known at apply time only cannot be compared with a literal: either may hold the other.
            if all(_is_symbolic(r) == _is_symbolic(repo) for r in repos):
                yield Issue(
                    f"{app.label}: repoURL {repo} is not in AppProject {name} sourceRepos "
                    f"({', '.join(repos) or 'none'})",
                    app.where(*field, "repoURL"),
                    f"add the repository to AppProject {name} spec.sourceRepos",
                )
        destination = app.map("spec", "destination")
        server, cluster = str(destination.get("server") or ""), str(destination.get("name") or "")
        default_namespace = str(destination.get("namespace") or "")
        if "{{" in server + cluster + default_namespace:
            continue
        if not destination_permitted(project, server, cluster, default_namespace):
            yield Issue(
                f"{app.label}: destination {server or cluster} namespace {default_namespace!r} is not "
                f"permitted by AppProject {name}",
                app.where("spec", "destination"),
                f"add the namespace to AppProject {name} spec.destinations",
            )
        refused: set[tuple[str, str]] = set()
        for manifest in delivered(model, app, chart_apps):
            what = f"{app.label}: {manifest.group or 'core'}/{manifest.kind} {manifest.name}"
            why = kind_permitted(project, manifest)
            if why is not None:
                yield Issue(
                    f"{what}: {why} of AppProject {name}",
                    project.where("spec"),
                    f"add group {manifest.group!r} kind {manifest.kind} to AppProject {name}",
                )
                continue
            namespace = manifest.namespace or default_namespace
            if cluster_scoped(manifest) or (namespace, server) in refused:
                continue
            if not destination_permitted(project, server, cluster, namespace):
                refused.add((namespace, server))
                yield Issue(
                    f"{what}: namespace {namespace!r} is not a destination of AppProject {name}",
                    project.where("spec", "destinations"),
                    f"add the namespace to AppProject {name} spec.destinations",
                )


@rule("EKS030", "no Application uses the project default")
def default_project(model: Model) -> Iterator[Issue]:
    """Argo CD's `default` AppProject admits any repository, any destination cluster and namespace, and any
    kind, cluster-scoped ones included: an Application in it can sync a ClusterRoleBinding or overwrite another
    team's namespace, and no review of the project stands in the way. Every Application (as written, generated
    by an ApplicationSet, or installed by a local Helm chart) must name a project of its own whose admissions
    EKS029 checks; an Application without `spec.project` counts as `default`."""
    names = sorted(projects(model))
    for app in platform_applications(model):
        project = app.get("spec", "project")
        if project in (None, "", DEFAULT_PROJECT):
            yield Issue(
                f"{app.label}: project {DEFAULT_PROJECT!r} admits any repository, destination and kind",
                app.where("spec", "project"),
                f"use the platform's AppProject ({', '.join(names)})"
                if names
                else "define an AppProject that admits only what the Application syncs, and name it",
            )


def _cluster_generators(generators: list[Any]) -> Iterator[int]:
    for index, generator in enumerate(generators):
        if not isinstance(generator, dict):
            continue
        nested = [as_list(as_dict(generator.get(k)).get("generators")) for k in ("matrix", "merge")]
        if "clusters" in generator or any(_contains_clusters(n) for n in nested):
            yield index


def _contains_clusters(generators: list[Any]) -> bool:
    return any(True for _ in _cluster_generators(generators))


@rule("EKS031", "Applications a cluster generator creates carry the cluster in their name")
def per_cluster_names(model: Model) -> Iterator[Issue]:
    """A cluster generator yields one parameter set per selected cluster secret. When the template's
    `metadata.name` does not use `.name` or `.nameNormalized` (fasttemplate: `{{name}}`), a second cluster
    secret renders a second Application of the same name: the ApplicationSet controller reports duplicate
    Application names and generates none for the new cluster, or the clusters take the one Application from
    each other. The name must contain the cluster's `name` or `nameNormalized` (the latter is always a valid
    object name)."""
    for appset in _argo(model.manifests, "ApplicationSet"):
        generators = appset.list("spec", "generators")
        if not _contains_clusters(generators):
            continue
        name = appset.get("spec", "template", "metadata", "name")
        if not isinstance(name, str) or not _CLUSTER_NAME_IN_TEMPLATE.search(name):
            yield Issue(
                f"{appset.label}: generated Application name {name!r} does not include the cluster "
                "(.name or .nameNormalized): a second cluster secret would generate the same name",
                appset.where("spec", "template", "metadata", "name"),
                "name it like '<app>-{{ .nameNormalized }}'",
            )
