"""The GitOps chain: ApplicationSet generators, templates, source paths, repo, CRD ordering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.gate.effective import generator_params, missing_parameters
from harness.gate.facts import resolved
from harness.gate.model import Location, Model, as_list
from harness.gate.rules import Issue, rule

KARPENTER_GROUPS = ("karpenter.sh", "karpenter.k8s.aws")
SKIP_DRY_RUN = "SkipDryRunOnMissingResource=true"
REPO_ANNOTATION = "eks-platform/gitops-repo-url"
REVISION_ANNOTATION = "eks-platform/gitops-revision"


def _normal_repo(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


@rule("EKS013", "Argo CD source paths exist and every source uses one repo URL and revision")
def sources(model: Model) -> Iterator[Issue]:
    """Each Application (written, or rendered by an ApplicationSet) syncs `source.path` of `repoURL` at
    `targetRevision`. A path that does not exist in the repository makes the sync fail with "app path does
    not exist"; a second repo URL or revision (a fork, a stale branch name in one template or in the
    Terraform variables behind the cluster secret annotations) makes part of the platform follow other
    commits than the rest. All known repo URLs must be equal, and all revisions too."""
    for app, path in model.rendered.missing_paths:
        yield Issue(
            f"{app.label}: source path {path!r} does not exist in the repository",
            app.where("spec", "source", "path"),
            "point source.path at a directory of the GitOps tree",
        )
    repos: list[tuple[str, str, Location]] = []
    revisions: list[tuple[str, str, Location]] = []
    for secret in model.rendered.cluster_secrets:
        if (url := resolved(secret.annotations.get(REPO_ANNOTATION))) is not None:
            repos.append((_normal_repo(url), f"cluster secret {secret.name}", secret.location))
        if (revision := resolved(secret.annotations.get(REVISION_ANNOTATION))) is not None:
            revisions.append((revision, f"cluster secret {secret.name}", secret.location))
    for app in model.rendered.applications:
        spec = app.map("spec")
        for index, source in enumerate([spec.get("source")] if spec.get("source") else as_list(spec.get("sources"))):
            if not isinstance(source, dict) or source.get("chart"):
                continue
            field: tuple[Any, ...] = ("spec", "source") if spec.get("source") else ("spec", "sources", index)
            if (url := resolved(source.get("repoURL"))) is not None:
                repos.append((_normal_repo(url), app.label, app.where(*field, "repoURL")))
            if (revision := resolved(source.get("targetRevision"))) is not None:
                revisions.append((revision, app.label, app.where(*field, "targetRevision")))
    for what, entries in (("repo URL", repos), ("revision", revisions)):
        if len({value for value, _label, _where in entries}) <= 1:
            continue
        first_value, first_label, _ = entries[0]
        for value, label, where in entries[1:]:
            if value != first_value:
                yield Issue(
                    f"{label}: {what} {value!r} differs from {first_value!r} ({first_label})",
                    where,
                    f"use one {what} everywhere (template it from the cluster secret annotation)",
                )


@rule("EKS014", "Karpenter custom resources sync even before their CRDs exist")
def crd_ordering(model: Model) -> Iterator[Issue]:
    """The Karpenter chart installs the NodePool and EC2NodeClass CRDs. When Argo CD syncs the custom
    resources first (a fresh cluster, a recreated Application), its dry run fails with "the server could not
    find the requested resource" and the sync stops. Each Karpenter resource delivered by an Application
    needs `SkipDryRunOnMissingResource=true`, in the Application's `syncPolicy.syncOptions` or in the
    resource's `argocd.argoproj.io/sync-options` annotation."""
    for manifest in model.effective:
        if manifest.group not in KARPENTER_GROUPS:
            continue
        app = model.rendered.delivered_by.get(id(manifest))
        if app is None:
            continue
        annotation = str((manifest.map("metadata", "annotations")).get("argocd.argoproj.io/sync-options", ""))
        options = app.list("spec", "syncPolicy", "syncOptions")
        if SKIP_DRY_RUN in annotation or SKIP_DRY_RUN in options:
            continue
        yield Issue(
            f"{manifest.label}: synced by {app.label} without {SKIP_DRY_RUN}",
            app.where("spec", "syncPolicy"),
            f"add {SKIP_DRY_RUN} to the Application's syncPolicy.syncOptions",
        )


@rule("EKS027", "ApplicationSets generate for the cluster and use only annotations it sets")
def templates_resolve(model: Model) -> Iterator[Issue]:
    """Cluster-specific values travel from Terraform's Argo CD cluster secret (its annotations) into the
    ApplicationSet templates. A cluster generator whose selector matches no cluster secret generates no
    Application at all, silently; a template that reads an annotation the secret does not set fails the
    generation (`missingkey=error`) or renders an empty value. Checked when cluster secrets are known
    (from Terraform or a manifest)."""
    secrets = model.rendered.cluster_secrets
    if not secrets:
        return
    for appset in (m for m in model.manifests if m.kind == "ApplicationSet" and m.group == "argoproj.io"):
        template = appset.get("spec", "template")
        go_template = bool(appset.get("spec", "goTemplate"))
        for index, generator in enumerate(appset.list("spec", "generators")):
            if not isinstance(generator, dict) or "clusters" not in generator:
                continue
            params_list = generator_params(generator, secrets) or []
            if not params_list:
                yield Issue(
                    f"{appset.label}: cluster generator {index} matches no cluster secret "
                    f"({', '.join(s.name for s in secrets)})",
                    appset.where("spec", "generators", index),
                    'select labels the Terraform cluster secret carries (eks-platform/managed: "true")',
                )
            for params in params_list:
                for path, expression in missing_parameters(template, params, go_template):
                    yield Issue(
                        f"{appset.label}: template reads {expression}, which cluster secret "
                        f"{params.get('name')} does not provide",
                        appset.where("spec", "template", *path),
                        "add the annotation to the cluster secret in Terraform, or fix the key",
                    )
