"""Cluster-specific values written literally in GitOps manifests, where they should be injected."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.gate.facts import resolved
from harness.gate.model import Location, Manifest, Model, Severity
from harness.gate.rules import Issue, rule

_ACCOUNT_ARN = re.compile(r"arn:aws[\w-]*:[\w-]+:[\w-]*:(\d{12}):")
_CLUSTER_CONTEXT = re.compile(r"cluster|discovery", re.IGNORECASE)
CLUSTER_SECRET = "the Argo CD cluster secret"


@dataclass(frozen=True)
class _Known:
    what: str  # "cluster name", "role name", "repository URL"
    annotation: str | None  # the cluster secret annotation that carries it, if any


def _template(annotation: str) -> str:
    return f"'{{{{ index .metadata.annotations \"{annotation}\" }}}}'"


def _fix(known: _Known) -> str:
    if known.annotation:
        return (
            f"inject it: patch the field from the ApplicationSet with {_template(known.annotation)} (annotation "
            f"{known.annotation} of {CLUSTER_SECRET}, written by Terraform), and keep a neutral placeholder in "
            "the base manifest"
        )
    return (
        f"inject it: add the {known.what} as an annotation of {CLUSTER_SECRET} in Terraform and patch the field "
        "from the ApplicationSet with that annotation"
    )


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def _known_values(model: Model) -> tuple[dict[str, _Known], dict[str, _Known], dict[str, _Known]]:
    """(cluster names, role names, repository URLs) -> how each is injected."""
    by_value: dict[str, str] = {}
    for secret in model.rendered.cluster_secrets:
        for key, value in secret.annotations.items():
            if (text := resolved(value)) and len(text) >= 3:
                by_value.setdefault(text, str(key))
                if text.startswith(("https://", "git@", "ssh://")):
                    by_value.setdefault(_normal_url(text), str(key))
    clusters = {
        name: _Known("cluster name", by_value.get(name))
        for c in model.terraform.of_type("aws_eks_cluster")
        if (name := resolved(c.get("name")))
    }
    roles = {
        name: _Known("role name", by_value.get(name))
        for r in model.terraform.of_type("aws_iam_role")
        if (name := resolved(r.get("name")))
    }
    repos = {_normal_url(v): _Known("repository URL", k) for v, k in by_value.items() if "://" in v or "@" in v}
    return clusters, roles, repos


def _strings(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), f"\0key:{key}"
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def _is_cluster_secret(manifest: Manifest) -> bool:
    return (
        manifest.kind == "Secret"
        and manifest.map("metadata", "labels").get("argocd.argoproj.io/secret-type") == "cluster"
    )


@rule("EKS043", "cluster-specific values are injected, not written in GitOps manifests", Severity.WARNING)
def literal_values(model: Model) -> Iterator[Issue]:
    """The GitOps tree is shared by every cluster that syncs it; what differs per cluster reaches it from
    Terraform through the Argo CD cluster secret's annotations, templated by the ApplicationSets into
    kustomize patches (docs/architecture.md). A cluster-specific value written literally in a manifest
    works for one cluster and silently points every other one at it: the cluster name (in a
    `karpenter.sh/discovery` selector, a `clusterName`, a `kubernetes.io/cluster/<name>` key), an IAM role
    name Terraform creates (an EC2NodeClass `role`), an AWS account id inside an ARN, or the GitOps repository
    URL. Each gets a warning whose fix names the injection path: the cluster secret annotation that carries
    the value, as `{{ index .metadata.annotations "..." }}` in the ApplicationSet (or, when no annotation
    carries it yet, to add one). The cluster secret itself is where the values belong and is not judged;
    the cluster name is looked for only where a cluster is meant (keys mentioning cluster or discovery), so a
    project that shares the cluster's name is not mistaken for it. Manifests are judged only where that
    injection path exists (a cluster secret and an ApplicationSet): a plain repository of literal manifests is
    checked as written. The same values written as literals in a `helm_release`'s `values` or `set` entries
    (`clusterName = "demo"` rather than the platform output) are reported too, wherever they are: the add-ons
    root is applied once per cluster, and its fix is the Terraform output or variable that holds the value."""
    clusters, roles, repos = _known_values(model)
    yield from _helm_literals(model, clusters, roles, repos)
    if not model.rendered.cluster_secrets or not any(m.kind == "ApplicationSet" for m in model.manifests):
        return
    for manifest in model.manifests:
        # An AppProject's sourceRepos is policy (which repositories may be synced), and no ApplicationSet
        # renders it, so there is nothing to inject it from.
        if _is_cluster_secret(manifest) or manifest.kind in ("Kustomization", "Component", "AppProject"):
            continue
        reported: set[tuple[Any, ...]] = set()
        for path, text in _strings(manifest.doc, ()):
            found = _judge(path, text, clusters, roles, repos)
            if found is None or path in reported:
                continue
            reported.add(path)
            what, known = found
            yield Issue(
                f"{manifest.label}: {what} written literally at {'.'.join(map(str, path))}",
                manifest.where(*path),
                _fix(known),
            )


def _helm_literals(
    model: Model, clusters: dict[str, _Known], roles: dict[str, _Known], repos: dict[str, _Known]
) -> Iterator[Issue]:
    for release, values in model.helm_releases():
        for path, text in _strings(values.values, ()):
            written = text[5:] if text.startswith("\0key:") else text
            found = _judge(path, text, clusters, roles, repos) if written in release.literal_strings else None
            if found is None:
                continue
            what, _known = found
            outputs = sorted(
                f"{root} output {name}"
                for root, named in model.terraform.outputs.items()
                for name, value in named.items()
                if resolved(value) == written
            )
            source = f"the {' or '.join(outputs)}" if outputs else "a variable"
            yield Issue(
                f"{release.address}: {what} written literally in chart value {'.'.join(map(str, path))}",
                values.sources.get(tuple(map(str, path)), Location(release.file, release.line_of("values"))),
                f"read it from {source} (infra/addons reads the platform's outputs as local.platform)",
            )


def _judge(
    path: tuple[Any, ...], text: str, clusters: dict[str, _Known], roles: dict[str, _Known], repos: dict[str, _Known]
) -> tuple[str, _Known] | None:
    if "{{" in text:
        return None
    if text.startswith("\0key:"):
        key = text[5:]
        for name, known in clusters.items():
            if key.endswith(f"/cluster/{name}"):
                return f"cluster name {name!r} (in key {key})", known
        return None
    field = str(path[-1]) if path else ""
    if text in clusters and _CLUSTER_CONTEXT.search(field):
        return f"cluster name {text!r}", clusters[text]
    if text in roles and field in ("role", "roleName", "instanceProfile"):
        return f"IAM role name {text!r}", roles[text]
    if (text.startswith(("https://", "git@", "ssh://"))) and _normal_url(text) in repos:
        return f"repository URL {text!r}", repos[_normal_url(text)]
    account = _ACCOUNT_ARN.search(text)
    if account:
        return f"AWS account id {account.group(1)}", _Known("account id", None)
    return None
