"""gitops/ (what Argo CD syncs): schema-valid, rendered from the cluster secret, free of the known defects.

Each check is a function from a repository tree to a list of problems ("file:line: what is wrong"). Every
check runs on the real tree (no problems expected) and on a copy with one defect planted (the problem must
be reported), so none can pass by checking nothing.

Schemas: the gate's SchemaValidator (harness/gate/schema.py): core kinds against kubernetes-validate's strict
schemas for versions.yaml `kubernetes`, custom resources against the reference CRDs' openAPIV3Schema with
unknown fields rejected; here their metadata is also checked as ObjectMeta. CEL rules
(x-kubernetes-validations) are not evaluated offline.

Rendering: the ApplicationSets' Go templates are rendered with the sample cluster secret in
tests/fixtures/gitops (the expressions docs/gitops.md allows), and their kustomize JSON6902 patches are
applied to the base manifests, as Argo CD does at sync time.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import hcl2
import jsonpatch
import jsonpointer
import kubernetes_validate
import pytest
import yaml
from hcl2.utils import SerializationOptions
from kubernetes.utils import quantity

from harness.errors import InputError
from harness.gate.loaders import yaml_documents
from harness.gate.schema import SchemaValidator
from harness.project import read_yaml, reference_dir, repo_root, versions

REPO = repo_root()
FIXTURE_SECRET = Path(__file__).resolve().parent.parent / "fixtures" / "gitops" / "cluster-secret.yaml"
BOOTSTRAP_CHART = Path("infra") / "addons" / "charts" / "bootstrap"
ARGOCD_NAMESPACE = "argocd"  # the bootstrap chart's release namespace (infra/addons local.argocd_namespace)

PLACEHOLDER = "set-by-applicationset"  # docs/gitops.md: the base manifests' stand-in for cluster values
SCALE_OUT_ANNOTATION = "eks-platform/scale-out-replicas"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
DISCOVERY_TAG = "karpenter.sh/discovery"
ALB_TAGS = "alb.ingress.kubernetes.io/tags"
APP_FINALIZER = "resources-finalizer.argocd.argoproj.io"
MANAGED_LABEL = ("eks-platform/managed", "true")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
AMI_ALIAS = re.compile(r"^al2023@v\d{8}$")
URL_LIKE = re.compile(r"://|^git@")


# The Kubernetes client ships no type annotations; this is its Quantity parser ("500m", "128Gi").
parse_quantity = cast(Callable[[Any], Decimal], quantity.parse_quantity)


def annotation_expression(key: str) -> str:
    """The one template form that takes a value from the cluster secret (docs/gitops.md)."""
    return f'{{{{ index .metadata.annotations "{key}" }}}}'


def contract_annotations(architecture_md: str) -> set[str]:
    """The cluster-secret annotations docs/architecture.md promises (its "Cluster secret" table)."""
    section = architecture_md.partition("## Cluster secret")[2].partition("\n## ")[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class Doc:
    """One YAML document with where it came from."""

    path: Path  # relative to the repository root
    line: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def load_documents(file: Path, root: Path) -> list[Doc]:
    """The file's documents; malformed YAML is a one-line InputError naming file and line (the gate's loader)."""
    return [Doc(file.relative_to(root), line, body) for body, line, _ in yaml_documents(file) if body is not None]


def gitops_documents(root: Path) -> list[Doc]:
    files = sorted(p for p in (root / "gitops").rglob("*") if p.suffix in (".yaml", ".yml"))
    return [doc for file in files for doc in load_documents(file, root)]


def manifests(root: Path) -> list[Doc]:
    """Everything Argo CD applies (kustomization files are build instructions, not objects)."""
    return [doc for doc in gitops_documents(root) if doc.kind != "Kustomization"]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.kind == kind]


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a document with its JSON pointer, map keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            pointer = f"{path}/{jsonpointer.escape(str(key))}"
            yield pointer, str(key)
            yield from strings(item, pointer)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}/{index}")
    elif isinstance(value, str):
        yield path, value


def dig(value: Any, *keys: str | int) -> Any:
    """value[k1][k2]...; None as soon as a step is missing."""
    for key in keys:
        if isinstance(value, dict) and isinstance(key, str):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


# ---------------------------------------------------------------- schemas


def schema_errors(body: Mapping[str, Any], validator: SchemaValidator) -> list[str]:
    """Strict validation of one object: the gate's validator, plus ObjectMeta for custom resources."""
    kind = str(body.get("kind"))
    errors = [f"{kind} {problem.message}" for problem in validator.problems(body)]
    group, _, version = str(body.get("apiVersion")).rpartition("/")
    if (group, version, kind) in validator.crd_schemas:
        # A CRD declares metadata as a bare object; the API server still checks it as ObjectMeta.
        carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": body.get("metadata") or {}}
        try:
            kubernetes_validate.validate(carrier, validator.kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{kind} {'.'.join(map(str, error.path))}: {error.message}")
    return errors


def schema_problems(root: Path, validator: SchemaValidator) -> list[str]:
    return [f"{doc.where}: {error}" for doc in manifests(root) for error in schema_errors(doc.body, validator)]


# ---------------------------------------------------------------- rendering: ApplicationSet -> Application -> objects

TEMPLATE_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
ANNOTATION_LOOKUP = re.compile(r'index \.metadata\.annotations "([^"]+)"')


class RenderError(Exception):
    """A template or patch that Argo CD would fail on (or that this renderer does not understand)."""


@dataclass(frozen=True)
class Cluster:
    """What the cluster generator offers a goTemplate: name, server, the secret's labels and annotations."""

    name: str
    server: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> Cluster:
        meta, data = secret.get("metadata") or {}, secret.get("stringData") or {}
        return cls(
            name=str(data.get("name", "")),
            server=str(data.get("server", "")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )


def normalized_name(name: str) -> str:
    """The cluster generator's `nameNormalized` (Argo CD applicationset/utils SanitizeName): lowercase,
    anything but [-a-z0-9.] replaced by '-', at most 253 characters, no leading or trailing '-' or '.'."""
    return re.sub(r"[^-a-z0-9.]", "-", name.lower())[:253].strip("-.")


def render_text(text: str, cluster: Cluster) -> str:
    def substitute(match: re.Match[str]) -> str:
        action = match.group(1)
        if lookup := ANNOTATION_LOOKUP.fullmatch(action):
            key = lookup.group(1)
            if key not in cluster.annotations:
                raise RenderError(f"annotation {key!r} is not on the cluster secret")
            return cluster.annotations[key]
        fields = {".name": cluster.name, ".nameNormalized": normalized_name(cluster.name), ".server": cluster.server}
        if action in fields:
            return fields[action]
        raise RenderError(f"unsupported template action {{{{ {action} }}}}")

    return TEMPLATE_ACTION.sub(substitute, text)


def render(value: Any, cluster: Cluster) -> Any:
    if isinstance(value, dict):
        return {render_text(str(k), cluster): render(v, cluster) for k, v in value.items()}
    if isinstance(value, list):
        return [render(item, cluster) for item in value]
    if isinstance(value, str):
        return render_text(value, cluster)
    return value


def selects(generator: Mapping[str, Any], cluster: Cluster) -> bool:
    selector = dig(generator, "clusters", "selector") or {}
    if selector.get("matchExpressions"):
        raise RenderError("cluster generator matchExpressions: not supported by this renderer")
    return all(cluster.labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def generated_applications(appset: Mapping[str, Any], cluster: Cluster) -> list[dict[str, Any]]:
    spec = appset.get("spec") or {}
    if spec.get("goTemplate") is not True:
        raise RenderError("spec.goTemplate is not true: the {{ ... }} expressions would not be Go templates")
    apps = []
    for generator in spec.get("generators") or []:
        if "clusters" not in generator:
            raise RenderError(f"generator {sorted(generator)}: only the cluster generator is supported")
        if selects(generator, cluster):
            template = spec.get("template") or {}
            apps.append(
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": render(template.get("metadata") or {}, cluster),
                    "spec": render(template.get("spec") or {}, cluster),
                }
            )
    return apps


def patch_matches(body: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    if target.get("labelSelector") or target.get("annotationSelector"):
        raise RenderError("patch target selectors: not supported by this renderer")
    group, _, version = str(body.get("apiVersion", "")).rpartition("/")
    meta = body.get("metadata") or {}
    actual = {"group": group, "version": version, "kind": body.get("kind"), "name": meta.get("name"),
              "namespace": meta.get("namespace")}
    return all(actual[field] == target[field] for field in actual if field in target)


def kustomize_resources(directory: Path, root: Path) -> list[Doc]:
    kustomization = next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)
    if kustomization is None:
        raise RenderError(f"{directory.relative_to(root)}: no kustomization.yaml, so kustomize patches cannot apply")
    spec = read_yaml(kustomization) or {}
    return [doc for resource in spec.get("resources") or [] for doc in load_documents(directory / resource, root)]


def effective_manifests(app: Mapping[str, Any], root: Path) -> list[dict[str, Any]]:
    """The objects the Application applies: the kustomization's resources with the app's patches applied."""
    source = dig(app, "spec", "source") or {}
    bodies = [copy.deepcopy(doc.body) for doc in kustomize_resources(root / str(source.get("path")), root)]
    for patch in dig(source, "kustomize", "patches") or []:
        target = patch.get("target") or {}
        try:
            operations = yaml.safe_load(patch.get("patch") or "")
        except yaml.YAMLError as error:
            raise RenderError(f"patch for {target}: not YAML once rendered ({error.__class__.__name__})") from None
        if not isinstance(operations, list):
            raise RenderError(f"patch for {target}: expected a JSON6902 list of operations")
        matched = [i for i, body in enumerate(bodies) if patch_matches(body, target)]
        if not matched:
            raise RenderError(f"patch target {target} matches no manifest in {source.get('path')}")
        for i in matched:
            try:
                bodies[i] = jsonpatch.apply_patch(bodies[i], operations)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
                raise RenderError(f"patch for {target}: {error}") from None
    return bodies


def rendered(root: Path, cluster: Cluster) -> list[tuple[Doc, dict[str, Any], list[dict[str, Any]]]]:
    """(ApplicationSet, generated Application, its effective manifests) for every ApplicationSet."""
    return [
        (appset, app, effective_manifests(app, root))
        for appset in of_kind(manifests(root), "ApplicationSet")
        for app in generated_applications(appset.body, cluster)
    ]


def rendered_problems(root: Path, cluster: Cluster, validator: SchemaValidator) -> list[str]:
    problems = []
    for appset in of_kind(manifests(root), "ApplicationSet"):
        try:
            apps = generated_applications(appset.body, cluster)
            if not apps:
                problems.append(f"{appset.where}: generates no Application for the cluster secret")
            for app in apps:
                problems += [f"{appset.where}: generated {e}" for e in schema_errors(app, validator)]
                for body in effective_manifests(app, root):
                    name = f"{body.get('kind')}/{dig(body, 'metadata', 'name')}"
                    problems += [f"{appset.where}: {name} after patches: {e}"
                                 for e in schema_errors(body, validator)]
                    problems += [f"{appset.where}: {name} {pointer} still holds {PLACEHOLDER!r} after patches"
                                 for pointer, text in strings(body) if PLACEHOLDER in text]
        except RenderError as error:
            problems.append(f"{appset.where}: {error}")
    return problems


def rendered_value_problems(root: Path, cluster: Cluster) -> list[str]:
    """The cluster-specific fields hold exactly the cluster secret's values once rendered."""
    notes = cluster.annotations
    expected = {
        "EC2NodeClass": {
            "/spec/role": notes["eks-platform/karpenter-node-role"],
            f"/spec/subnetSelectorTerms/0/tags/{jsonpointer.escape(DISCOVERY_TAG)}": notes["eks-platform/cluster-name"],
            f"/spec/securityGroupSelectorTerms/0/tags/{jsonpointer.escape(DISCOVERY_TAG)}":
                notes["eks-platform/cluster-name"],
            "/spec/tags/run-id": notes["eks-platform/run-id"],
            "/spec/tags/expires-at": notes["eks-platform/expires-at"],
        },
        "Ingress": {
            f"/metadata/annotations/{jsonpointer.escape(ALB_TAGS)}":
                f"project=eks-platform,run-id={notes['eks-platform/run-id']},"
                f"expires-at={notes['eks-platform/expires-at']}",
        },
    }
    problems, seen = [], set()
    for appset, app, bodies in rendered(root, cluster):
        for field, key in (("repoURL", "eks-platform/gitops-repo-url"),
                           ("targetRevision", "eks-platform/gitops-revision")):
            if dig(app, "spec", "source", field) != notes[key]:
                problems.append(f"{appset.where}: source.{field} is not the {key} annotation")
        for body in bodies:
            kind = str(body.get("kind"))
            seen.add(kind)
            for pointer, want in expected.get(kind, {}).items():
                got = jsonpointer.resolve_pointer(body, pointer, None)
                if got != want:
                    problems.append(f"{appset.where}: {kind} {pointer} renders as {got!r}, expected {want!r}")
    problems += [f"no ApplicationSet renders a {kind}" for kind in sorted(set(expected) - seen)]
    return problems


# ---------------------------------------------------------------- defect checks on the base manifests


def requirement(nodepool: Doc, key: str) -> Mapping[str, Any] | None:
    requirements = dig(nodepool.body, "spec", "template", "spec", "requirements") or []
    return next((r for r in requirements if r.get("key") == key), None)


def spot_problems(root: Path) -> list[str]:
    nodepools = of_kind(manifests(root), "NodePool")
    problems = [] if nodepools else ["gitops/: no NodePool"]
    for pool in nodepools:
        wanted = requirement(pool, CAPACITY_TYPE)
        if wanted is None or wanted.get("operator") != "In" or wanted.get("values") != ["spot"]:
            problems.append(f"{pool.where}: NodePool {pool.name} must require {CAPACITY_TYPE} In [spot], has {wanted}")
    return problems


def hardcoded_problems(root: Path) -> list[str]:
    """Cluster-specific fields carry the placeholder (patched at sync); nothing URL-like is written down."""
    docs = manifests(root)
    problems = [
        f"{doc.where}: {pointer} = {text!r} looks like a hard-coded URL (it comes from the cluster secret)"
        for doc in docs for pointer, text in strings(doc.body) if URL_LIKE.search(text)
    ]

    def expect(doc: Doc, what: str, value: Any, want: str) -> None:
        if value != want:
            problems.append(f"{doc.where}: {doc.kind} {doc.name} {what} is {value!r}, expected {want!r}")

    for cls in of_kind(docs, "EC2NodeClass"):
        expect(cls, "spec.role", dig(cls.body, "spec", "role"), PLACEHOLDER)
        for field in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
            for i, term in enumerate(dig(cls.body, "spec", field) or []):
                expect(cls, f"spec.{field}[{i}] tag {DISCOVERY_TAG}", dig(term, "tags", DISCOVERY_TAG), PLACEHOLDER)
        for tag in ("run-id", "expires-at"):
            expect(cls, f"spec.tags.{tag}", dig(cls.body, "spec", "tags", tag), PLACEHOLDER)
    for ingress in of_kind(docs, "Ingress"):
        annotation = str(dig(ingress.body, "metadata", "annotations", ALB_TAGS))
        tags = dict(pair.partition("=")[::2] for pair in annotation.split(","))
        for tag in ("run-id", "expires-at"):
            expect(ingress, f"annotation {ALB_TAGS} {tag}", tags.get(tag), PLACEHOLDER)
    for appset in of_kind(docs, "ApplicationSet"):
        source = dig(appset.body, "spec", "template", "spec", "source") or {}
        expect(appset, "source.repoURL", source.get("repoURL"), annotation_expression("eks-platform/gitops-repo-url"))
        expect(appset, "source.targetRevision", source.get("targetRevision"),
               annotation_expression("eks-platform/gitops-revision"))
    return problems


def workload_problems(root: Path) -> list[str]:
    """Every container states what it needs (requests, memory limit) and is probed; pods go to Karpenter only."""
    docs = manifests(root)
    pools = {pool.name: pool for pool in of_kind(docs, "NodePool")}
    problems = []
    for deployment in of_kind(docs, "Deployment"):
        pod = dig(deployment.body, "spec", "template", "spec") or {}
        for container in pod.get("containers") or []:
            what = f"{deployment.where}: container {container.get('name')}"
            resources = container.get("resources") or {}
            problems += [f"{what} has no {section} {resource}"
                         for section, resource in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
                         if not dig(resources, section, resource)]
            problems += [f"{what} has no {probe}" for probe in ("readinessProbe", "livenessProbe")
                         if probe not in container]
        pool = pools.get(str(dig(pod, "nodeSelector", NODEPOOL_LABEL)))
        if pool is None:
            problems.append(f"{deployment.where}: nodeSelector {NODEPOOL_LABEL} names no NodePool in gitops/ "
                            f"(known: {sorted(pools)})")
            continue
        tolerated = {(t.get("key"), t.get("value"), t.get("effect")) for t in pod.get("tolerations") or []}
        for taint in dig(pool.body, "spec", "template", "spec", "taints") or []:
            if (taint.get("key"), taint.get("value"), taint.get("effect")) not in tolerated:
                problems.append(f"{deployment.where}: does not tolerate NodePool {pool.name} taint {taint}")
    return problems


def ingress_problems(root: Path) -> list[str]:
    docs = manifests(root)
    services = {(str(dig(svc.body, "metadata", "namespace")), svc.name): svc for svc in of_kind(docs, "Service")}
    wanted = {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": "ip",
    }
    problems = []
    for ingress in of_kind(docs, "Ingress"):
        annotations = dig(ingress.body, "metadata", "annotations") or {}
        if dig(ingress.body, "spec", "ingressClassName") != "alb":
            problems.append(f"{ingress.where}: spec.ingressClassName must be alb")
        if "kubernetes.io/ingress.class" in annotations:
            problems.append(f"{ingress.where}: drop the deprecated kubernetes.io/ingress.class annotation")
        problems += [f"{ingress.where}: annotation {k} must be {v!r}, is {annotations.get(k)!r}"
                     for k, v in wanted.items() if annotations.get(k) != v]
        if not annotations.get("alb.ingress.kubernetes.io/healthcheck-path"):
            problems.append(f"{ingress.where}: no alb.ingress.kubernetes.io/healthcheck-path")
        for path in (rule for r in dig(ingress.body, "spec", "rules") or [] for rule in dig(r, "http", "paths") or []):
            backend = dig(path, "backend", "service") or {}
            service = services.get((str(dig(ingress.body, "metadata", "namespace")), str(backend.get("name"))))
            port_names = {p.get("name") for p in dig(service.body, "spec", "ports") or []} if service else set()
            if service is None or dig(backend, "port", "name") not in port_names:
                problems.append(f"{ingress.where}: backend {backend} is not a named port of a Service in gitops/")
    return problems


def nodeclass_problems(root: Path) -> list[str]:
    docs = manifests(root)
    classes = {cls.name for cls in of_kind(docs, "EC2NodeClass")}
    problems = []
    for pool in of_kind(docs, "NodePool"):
        ref = dig(pool.body, "spec", "template", "spec", "nodeClassRef") or {}
        kind = (ref.get("group"), ref.get("kind"))
        if kind != ("karpenter.k8s.aws", "EC2NodeClass") or ref.get("name") not in classes:
            problems.append(f"{pool.where}: nodeClassRef {ref} does not resolve to an EC2NodeClass in gitops/")
    for cls in of_kind(docs, "EC2NodeClass"):
        metadata = dig(cls.body, "spec", "metadataOptions") or {}
        if metadata.get("httpTokens") != "required" or metadata.get("httpPutResponseHopLimit") != 1:
            problems.append(f"{cls.where}: metadataOptions must be httpTokens required, httpPutResponseHopLimit 1")
        roots = [m for m in dig(cls.body, "spec", "blockDeviceMappings") or [] if m.get("rootVolume")]
        ebs = dig(roots, 0, "ebs") or {}
        if len(roots) != 1 or ebs.get("encrypted") is not True or ebs.get("volumeType") != "gp3":
            problems.append(f"{cls.where}: needs one root volume, encrypted gp3")
        terms = dig(cls.body, "spec", "amiSelectorTerms") or []
        if [sorted(term) for term in terms] != [["alias"]]:
            problems.append(f"{cls.where}: amiSelectorTerms must be one pinned alias")
    return problems


def pin_problems(root: Path, pins: Mapping[str, str]) -> list[str]:
    """Literals that cannot be dynamic equal their single source, versions.yaml."""
    docs = manifests(root)
    problems = []
    alias = pins.get("karpenter_ami_alias", "")
    if not AMI_ALIAS.match(alias):
        problems.append(f"versions.yaml: karpenter_ami_alias {alias!r} must be a dated release al2023@vYYYYMMDD")
    for cls in of_kind(docs, "EC2NodeClass"):
        for term in dig(cls.body, "spec", "amiSelectorTerms") or []:
            if term.get("alias") != alias:
                problems.append(f"{cls.where}: AMI alias {term.get('alias')!r} differs from versions.yaml {alias!r}")
    for deployment in of_kind(docs, "Deployment"):
        for container in dig(deployment.body, "spec", "template", "spec", "containers") or []:
            if container.get("image") != pins.get("game_2048_image"):
                problems.append(f"{deployment.where}: image {container.get('image')!r} differs from versions.yaml "
                                f"game_2048_image {pins.get('game_2048_image')!r}")
    return problems


def appset_problems(root: Path) -> list[str]:
    """Generation, sync and deletion behave as docs/gitops.md says."""
    problems = []
    for appset in of_kind(manifests(root), "ApplicationSet"):
        spec = appset.body.get("spec") or {}
        template = dig(spec, "template", "spec") or {}
        sync = template.get("syncPolicy") or {}

        def need(ok: bool, what: str, appset: Doc = appset) -> None:
            if not ok:
                problems.append(f"{appset.where}: ApplicationSet {appset.name}: {what}")

        need(spec.get("goTemplate") is True, "spec.goTemplate must be true")
        need("missingkey=error" in (spec.get("goTemplateOptions") or []),
             'goTemplateOptions must hold "missingkey=error"')
        selectors = [dig(g, "clusters", "selector", "matchLabels") for g in spec.get("generators") or []]
        need(selectors == [dict([MANAGED_LABEL])], f"one cluster generator selecting {MANAGED_LABEL[0]}: \"true\"")
        need(dig(spec, "syncPolicy", "preserveResourcesOnDeletion") is False,
             "spec.syncPolicy.preserveResourcesOnDeletion must be false (deletion cleans up)")
        need(dig(spec, "syncPolicy", "applicationsSync") in (None, "sync", "create-delete"),
             "spec.syncPolicy.applicationsSync must let the ApplicationSet delete Applications")
        need(APP_FINALIZER in (dig(spec, "template", "metadata", "finalizers") or []),
             f"template.metadata.finalizers must hold {APP_FINALIZER}")
        need(dig(sync, "automated", "prune") is True and dig(sync, "automated", "selfHeal") is True,
             "syncPolicy.automated needs prune and selfHeal")
        backoff = dig(sync, "retry", "backoff") or {}
        need(bool(dig(sync, "retry", "limit")) and all(backoff.get(k) for k in ("duration", "factor", "maxDuration")),
             "syncPolicy.retry needs limit and backoff duration, factor, maxDuration")
        try:
            kinds = {doc.kind for doc in kustomize_resources(root / str(dig(template, "source", "path")), root)}
        except (RenderError, OSError) as error:
            need(False, f"source.path: {error}")
            continue
        options = sync.get("syncOptions") or []
        if kinds & {"NodePool", "EC2NodeClass"}:
            need("SkipDryRunOnMissingResource=true" in options,
                 "syncs Karpenter resources: needs SkipDryRunOnMissingResource=true (CRDs may not exist yet)")
        if dig(template, "destination", "namespace") and kinds - CLUSTER_SCOPED_KINDS:
            need("CreateNamespace=true" in options or "Namespace" in kinds, "namespaced app needs CreateNamespace=true")
    return problems


# ---------------------------------------------------------------- the AppProject against what its Applications deliver

# Kinds without a namespace among those the platform syncs (Kubernetes core, and the reference CRDs' spec.scope).
CLUSTER_SCOPED_KINDS = {"Namespace", "NodePool", "EC2NodeClass"}
HELM_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def render_chart_template(text: str, values: Mapping[str, Any], namespace: str) -> str:
    """The bootstrap chart's templates use only `.Values.<key>` (optionally under `required "..."` and
    `| quote`) and `.Release.Namespace`; anything else is reported rather than guessed."""

    def substitute(match: re.Match[str]) -> str:
        action = match.group(1)
        quote = action.endswith("| quote")
        action = action.removesuffix("| quote").strip()
        action = re.sub(r'^required\s+"[^"]*"\s+', "", action)
        if action == ".Release.Namespace":
            value = namespace
        elif action.startswith(".Values.") and action[len(".Values."):] in values:
            value = str(values[action[len(".Values."):]])
        else:
            raise RenderError(f"unsupported chart template action {{{{ {match.group(1)} }}}}")
        return f'"{value}"' if quote else value

    return HELM_ACTION.sub(substitute, text)


def bootstrap_chart(chart: Path, repo_url: str) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind, rendered as infra/addons installs them (repoURL = gitops_repo_url)."""
    values = {**(read_yaml(chart / "values.yaml") or {}), "repoURL": repo_url}
    objects: dict[str, dict[str, Any]] = {}
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = render_chart_template(template.read_text(encoding="utf-8"), values, ARGOCD_NAMESPACE)
        for body in yaml.safe_load_all(text):
            if body:
                objects[str(body["kind"])] = body
    return objects


def plain_directory(root: Path, path: str) -> list[dict[str, Any]]:
    """What an Application with a plain directory source (no kustomization) applies."""
    files = sorted(p for p in (root / path).glob("*") if p.suffix in (".yaml", ".yml"))
    return [doc.body for file in files for doc in load_documents(file, root)]


def group_of(body: Mapping[str, Any]) -> str:
    return str(body.get("apiVersion", "")).rpartition("/")[0]


def permits(entries: list[dict[str, Any]], group: str, kind: str) -> bool:
    return any(fnmatch.fnmatchcase(group, str(e.get("group", ""))) and fnmatch.fnmatchcase(kind, str(e.get("kind", "")))
               for e in entries)


def destination_permitted(project: Mapping[str, Any], server: str, namespace: str) -> bool:
    """Argo CD's isDestinationMatched for allow entries: server and namespace globs (`*` matches anything)."""
    return any(
        fnmatch.fnmatchcase(server, str(d.get("server", "")))
        and fnmatch.fnmatchcase(namespace, str(d.get("namespace", "")))
        for d in dig(project, "spec", "destinations") or []
    )


def project_problems(root: Path, chart: Path, cluster: Cluster) -> list[str]:
    """Every platform Application names the bootstrap chart's AppProject, and that project admits its
    repository, its destination and every object it delivers (kind and namespace), nothing assumed."""
    repo_url = cluster.annotations["eks-platform/gitops-repo-url"]
    try:
        objects = bootstrap_chart(chart, repo_url)
        generated = [(f"{appset.where}: {app['metadata']['name']}", app, bodies)
                     for appset, app, bodies in rendered(root, cluster)]
    except RenderError as error:
        return [str(error)]
    project, root_app = objects.get("AppProject"), objects.get("Application")
    if project is None or root_app is None:
        return [f"{chart}: the bootstrap chart must render an AppProject and the root Application"]
    name, spec = dig(project, "metadata", "name"), project.get("spec") or {}
    problems = []
    if APP_FINALIZER not in (dig(project, "metadata", "finalizers") or []):
        problems.append(f"AppProject {name}: needs finalizer {APP_FINALIZER} (kept until no Application uses it)")
    root_delivers = plain_directory(root, str(dig(root_app, "spec", "source", "path")))
    for label, app, bodies in [("root Application bootstrap", root_app, root_delivers), *generated]:
        destination = dig(app, "spec", "destination") or {}
        server, default_namespace = str(destination.get("server", "")), str(destination.get("namespace", ""))
        if dig(app, "spec", "project") != name:
            problems.append(f"{label}: project {dig(app, 'spec', 'project')!r}, expected the platform's {name!r}")
        if dig(app, "spec", "source", "repoURL") not in (spec.get("sourceRepos") or []):
            problems.append(f"{label}: repoURL is not in AppProject {name} sourceRepos")
        if not destination_permitted(project, server, default_namespace):
            problems.append(f"{label}: destination {server} namespace {default_namespace!r} is not permitted "
                            f"by AppProject {name}")
        for body in bodies:
            kind, group = str(body.get("kind")), group_of(body)
            what = f"{label}: {group or 'core'}/{kind} {dig(body, 'metadata', 'name')}"
            if kind in CLUSTER_SCOPED_KINDS:
                if not permits(spec.get("clusterResourceWhitelist") or [], group, kind):
                    problems.append(f"{what}: cluster-scoped kind not in clusterResourceWhitelist")
                continue
            if not permits(spec.get("namespaceResourceWhitelist") or [], group, kind):
                problems.append(f"{what}: kind not in namespaceResourceWhitelist")
            namespace = str(dig(body, "metadata", "namespace") or default_namespace)
            if not destination_permitted(project, server, namespace):
                problems.append(f"{what}: namespace {namespace!r} is not a destination of AppProject {name}")
    return problems


def kustomization_problems(root: Path) -> list[str]:
    """Each kustomization lists files that exist, and every manifest beside it is listed (none forgotten)."""
    problems = []
    for kustomization in sorted((root / "gitops").rglob("kustomization.yaml")):
        where = kustomization.relative_to(root)
        listed = (read_yaml(kustomization) or {}).get("resources") or []
        problems += [f"{where}: resource {name} does not exist" for name in listed
                     if not (kustomization.parent / name).is_file()]
        beside = {p.name for p in kustomization.parent.iterdir() if p.suffix in (".yaml", ".yml")}
        problems += [f"{where}: {name} is not listed in resources, so Argo CD never applies it"
                     for name in sorted(beside - set(listed) - set(KUSTOMIZATION_NAMES))]
    return problems


# ---------------------------------------------------------------- replica arithmetic


@dataclass(frozen=True)
class OpsCapacity:
    """The whole ops node group at its maximum size: an upper bound on what could run there."""

    cpu: Decimal
    memory: Decimal
    source: str


def ops_capacity(root: Path) -> OpsCapacity | None:
    """From infra/platform's variable defaults and EC2's instance facts (moto's copy); None if undefined."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    variables_tf = root / "infra" / "platform" / "variables.tf"
    if not variables_tf.is_file():
        return None
    with variables_tf.open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle, serialization_options=SerializationOptions(strip_string_quotes=True))
    blocks = parsed.get("variable", [])
    defaults = {name: body.get("default") for block in blocks for name, body in block.items()}
    types, max_size = defaults.get("ops_instance_types"), defaults.get("ops_max_size")
    if not types or not max_size:
        return None
    largest = max(
        (INSTANCE_TYPES[t]["VCpuInfo"]["DefaultVCpus"], INSTANCE_TYPES[t]["MemoryInfo"]["SizeInMiB"]) for t in types
    )
    return OpsCapacity(
        cpu=Decimal(largest[0] * int(max_size)),
        memory=Decimal(largest[1] * int(max_size)) * 1024 * 1024,
        source=f"{max_size} x {'/'.join(types)} ({variables_tf.relative_to(root)})",
    )


def capacity_problems(root: Path, ops: OpsCapacity) -> list[str]:
    """The scale-out replica count cannot fit on the ops nodes but fits under the NodePool's cost cap."""
    docs = manifests(root)
    pools = {pool.name: pool for pool in of_kind(docs, "NodePool")}
    problems = []
    for deployment in of_kind(docs, "Deployment"):
        raw = dig(deployment.body, "metadata", "annotations", SCALE_OUT_ANNOTATION)
        if not str(raw).isdigit():
            problems.append(f"{deployment.where}: annotation {SCALE_OUT_ANNOTATION} must be a replica count")
            continue
        scale_out, baseline = int(raw), int(dig(deployment.body, "spec", "replicas") or 1)
        if scale_out <= baseline:
            problems.append(f"{deployment.where}: scale-out {scale_out} is not above the baseline {baseline}")
        pod = dig(deployment.body, "spec", "template", "spec") or {}
        need = {
            resource: scale_out * sum(parse_quantity(dig(c, "resources", "requests", resource) or 0)
                                      for c in pod.get("containers") or [])
            for resource in ("cpu", "memory")
        }
        if need["cpu"] <= ops.cpu and need["memory"] <= ops.memory:
            problems.append(f"{deployment.where}: {scale_out} replicas request {need['cpu']} CPU and "
                            f"{need['memory']} bytes: that fits on the ops nodes ({ops.source}), "
                            "so the scale-out proves nothing")
        pool = pools.get(str(dig(pod, "nodeSelector", NODEPOOL_LABEL)))
        limits = dig(pool.body, "spec", "limits") if pool else None
        for resource in ("cpu", "memory"):
            if not limits or resource not in limits:
                problems.append(f"{deployment.where}: its NodePool sets no {resource} limit (the sandbox cost cap)")
            elif need[resource] > parse_quantity(limits[resource]):
                problems.append(f"{deployment.where}: {scale_out} replicas need {need[resource]} {resource}, above "
                                f"NodePool {pool.name if pool else '?'} limit {limits[resource]}")
    return problems


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    try:
        reference = reference_dir()
    except InputError as error:
        pytest.skip(f"reference data unavailable: {error}")
    return SchemaValidator.for_reference(versions(REPO)["kubernetes"], reference)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster.from_secret(yaml.safe_load(FIXTURE_SECRET.read_text(encoding="utf-8")))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of gitops/ to plant defects in."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "gitops", root / "gitops")
    return root


Mutation = Callable[[dict[str, Any]], None]


def edit(root: Path, relative: str, change: Mutation) -> None:
    """Change the (single) document of a file in the copy."""
    file = root / relative
    body = yaml.safe_load(file.read_text(encoding="utf-8"))
    change(body)
    file.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


def setter(*path: str | int, value: Any) -> Mutation:
    def change(body: dict[str, Any]) -> None:
        parent = dig(body, *path[:-1])
        parent[path[-1]] = value

    return change


def remover(*path: str | int) -> Mutation:
    def change(body: dict[str, Any]) -> None:
        del dig(body, *path[:-1])[path[-1]]

    return change


NODEPOOL = "gitops/ops/karpenter/nodepool.yaml"
NODECLASS = "gitops/ops/karpenter/ec2nodeclass.yaml"
DEPLOYMENT = "gitops/apps/game-2048/deployment.yaml"
INGRESS = "gitops/apps/game-2048/ingress.yaml"
OPS_APPSET = "gitops/bootstrap/ops.yaml"
GAME_APPSET = "gitops/bootstrap/game.yaml"
CONTAINER = ("spec", "template", "spec", "containers", 0)
REQUIREMENTS = ("spec", "template", "spec", "requirements")
TEMPLATE_SPEC = ("spec", "template", "spec")


def first_patch_ops(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(yaml.safe_load(body["spec"]["template"]["spec"]["source"]["kustomize"]["patches"][0]["patch"]))


def rewrite_first_patch(change: Callable[[list[dict[str, Any]]], object]) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        operations = first_patch_ops(body)
        change(operations)
        body["spec"]["template"]["spec"]["source"]["kustomize"]["patches"][0]["patch"] = yaml.safe_dump(operations)

    return mutate


def assert_reports(problems: list[str], expected: str) -> None:
    assert any(expected in p for p in problems), f"expected a problem mentioning {expected!r}, got {problems}"


# ---------------------------------------------------------------- tests: schemas


def test_every_manifest_is_schema_valid(validator: SchemaValidator) -> None:
    docs = manifests(REPO)
    assert {doc.kind for doc in docs} >= {"ApplicationSet", "NodePool", "EC2NodeClass", "Namespace", "Deployment",
                                          "Service", "Ingress", "PodDisruptionBudget"}
    assert schema_problems(REPO, validator) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(NODEPOOL, setter(*REQUIREMENTS, 0, "operator", value="Within"), "is not one of",
                     id="nodepool-bad-operator"),
        pytest.param(NODEPOOL, setter("spec", "disruption", "consolidateAfter", value="soon"), "does not match",
                     id="nodepool-bad-duration"),
        pytest.param(NODECLASS, setter("spec", "metadataOptions", "httpTokenz", value="required"),
                     "httpTokenz", id="nodeclass-unknown-field"),
        pytest.param(NODECLASS, setter("metadata", "lables", value={}), "lables", id="crd-metadata-typo"),
        pytest.param(DEPLOYMENT, setter(*CONTAINER, "resource", value={}), "resource", id="core-unknown-field"),
        pytest.param(DEPLOYMENT, setter("spec", "replicas", value="two"), "replicas", id="core-wrong-type"),
        pytest.param(OPS_APPSET, setter("spec", "syncPolicy", "preserveResourcesOnDelete", value=False),
                     "preserveResourcesOnDelete", id="appset-field-typo"),
        pytest.param(GAME_APPSET, setter("spec", "syncPolicy", "applicationsSync", value="delete-only"),
                     "is not one of", id="appset-bad-enum"),
    ],
)
def test_schema_check_rejects_invalid_manifests(
    tree: Path, validator: SchemaValidator, relative: str, mutation: Mutation, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(schema_problems(tree, validator), expected)


def test_schema_check_rejects_unknown_kinds(tree: Path, validator: SchemaValidator) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "extra.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: x\n", encoding="utf-8"
    )
    assert_reports(schema_problems(tree, validator), "Gadget")


def test_malformed_yaml_is_a_one_line_error_naming_file_and_line(tree: Path) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "service.yaml").write_text("kind: Service\nspec: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"service\.yaml:\d+: invalid YAML") as caught:
        manifests(tree)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- tests: rendering


def test_rendered_applications_and_manifests_are_valid(validator: SchemaValidator, cluster: Cluster) -> None:
    assert rendered_problems(REPO, cluster, validator) == []
    names = {str(app["metadata"]["name"]) for _, app, _ in rendered(REPO, cluster)}
    assert names == {"ops-karpenter-in-cluster", "game-2048-in-cluster"}


def test_a_second_cluster_secret_generates_applications_of_its_own(cluster: Cluster) -> None:
    """Application names carry the cluster, so a second managed cluster adds Applications instead of
    fighting over the first one's (the ApplicationSet would otherwise report duplicate names)."""
    second = Cluster("Prod EKS (eu-west-1)", "https://prod.example.com", cluster.labels, cluster.annotations)
    names = [str(app["metadata"]["name"]) for c in (cluster, second) for _, app, _ in rendered(REPO, c)]
    assert len(names) == len(set(names)) == 4
    assert "ops-karpenter-prod-eks--eu-west-1" in names


def test_normalized_names_follow_argo_cd() -> None:
    assert normalized_name("in-cluster") == "in-cluster"
    assert normalized_name("arn:aws:eks:eu-west-1:123456789012:cluster/Demo") == (
        "arn-aws-eks-eu-west-1-123456789012-cluster-demo")
    assert normalized_name("-.Edge.-") == "edge"


def test_rendered_values_come_from_the_cluster_secret(cluster: Cluster) -> None:
    assert rendered_value_problems(REPO, cluster) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(OPS_APPSET, rewrite_first_patch(lambda ops: ops.pop(0)), "still holds",
                     id="placeholder-left-unpatched"),
        pytest.param(OPS_APPSET, rewrite_first_patch(lambda ops: ops[0].update(path="/spec/rolez")), "patch for",
                     id="patch-path-missing"),
        pytest.param(OPS_APPSET, rewrite_first_patch(
            lambda ops: ops[0].update(value=annotation_expression("eks-platform/node-role"))),
            "not on the cluster secret", id="annotation-not-in-contract"),
        pytest.param(GAME_APPSET, setter("spec", "template", "spec", "source", "repoURL", value="{{ .repo }}"),
                     "unsupported template action", id="unknown-template-action"),
        pytest.param(GAME_APPSET, setter("spec", "generators", 0, "clusters", "selector", "matchLabels",
                                         value={"eks-platform/managed": "yes"}),
                     "generates no Application", id="selector-matches-nothing"),
        pytest.param(GAME_APPSET, setter("spec", "template", "spec", "source", "kustomize", "patches", 0, "target",
                                         "name", value="game"), "matches no manifest", id="patch-target-wrong"),
        pytest.param(GAME_APPSET, setter("spec", "template", "spec", "destination", "server", value=7),
                     "server", id="generated-app-invalid"),
    ],
)
def test_render_check_reports_broken_templates_and_patches(
    tree: Path, validator: SchemaValidator, cluster: Cluster, relative: str, mutation: Mutation,
    expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(rendered_problems(tree, cluster, validator), expected)


def test_render_check_reports_a_value_that_breaks_the_patch_yaml(validator: SchemaValidator, cluster: Cluster) -> None:
    # The patches single-quote each value: a quote inside a value would end the string early.
    quoting = Cluster(cluster.name, cluster.server, cluster.labels,
                      {**cluster.annotations, "eks-platform/run-id": "it's"})
    assert_reports(rendered_problems(REPO, quoting, validator), "not YAML once rendered")


def test_rendered_value_check_reports_a_value_from_the_wrong_annotation(tree: Path, cluster: Cluster) -> None:
    edit(tree, OPS_APPSET, rewrite_first_patch(
        lambda ops: ops[0].update(value=annotation_expression("eks-platform/cluster-name"))))
    assert_reports(rendered_value_problems(tree, cluster), "/spec/role renders as 'sample-cluster'")


# ---------------------------------------------------------------- tests: the defects of the published version


def test_nodepool_requires_spot() -> None:
    assert spot_problems(REPO) == []


@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param(lambda body: body["spec"]["template"]["spec"]["requirements"].pop(0), id="requirement-missing"),
        pytest.param(setter(*REQUIREMENTS, 0, "values", value=["spot", "on-demand"]), id="on-demand-allowed"),
        pytest.param(setter(*REQUIREMENTS, 0, "operator", value="NotIn"), id="spot-excluded"),
    ],
)
def test_spot_check_reports_a_nodepool_that_can_launch_on_demand(tree: Path, mutation: Mutation) -> None:
    edit(tree, NODEPOOL, mutation)
    assert_reports(spot_problems(tree), CAPACITY_TYPE)


def test_no_cluster_specific_value_is_hard_coded() -> None:
    assert hardcoded_problems(REPO) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(NODECLASS, setter("spec", "role", value="KarpenterNodeRole-demo"), "spec.role", id="role"),
        pytest.param(NODECLASS, setter("spec", "subnetSelectorTerms", 0, "tags", DISCOVERY_TAG, value="demo"),
                     "subnetSelectorTerms", id="cluster-name"),
        pytest.param(NODECLASS, setter("spec", "tags", "run-id", value="r20250101-0000-abcd"), "spec.tags.run-id",
                     id="run-id"),
        pytest.param(INGRESS, setter("metadata", "annotations", ALB_TAGS, value="project=eks-platform"),
                     "expires-at", id="alb-tags"),
        pytest.param(GAME_APPSET, setter("spec", "template", "spec", "source", "repoURL",
                                         value="https://github.com/example/eks-platform.git"),
                     "hard-coded URL", id="repo-url"),
        pytest.param(OPS_APPSET, setter("spec", "template", "spec", "source", "targetRevision", value="main"),
                     "targetRevision", id="revision"),
    ],
)
def test_hardcoded_check_reports_cluster_values_written_down(
    tree: Path, relative: str, mutation: Mutation, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(hardcoded_problems(tree), expected)


def test_workloads_request_resources_are_probed_and_go_to_karpenter() -> None:
    assert workload_problems(REPO) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(remover(*CONTAINER, "resources", "requests"), "no requests cpu", id="no-requests"),
        pytest.param(remover(*CONTAINER, "resources", "limits"), "no limits memory", id="no-memory-limit"),
        pytest.param(remover(*CONTAINER, "readinessProbe"), "no readinessProbe", id="no-readiness"),
        pytest.param(setter(*TEMPLATE_SPEC, "nodeSelector", NODEPOOL_LABEL, value="ops"), "names no NodePool",
                     id="wrong-pool"),
        pytest.param(remover(*TEMPLATE_SPEC, "tolerations"), "does not tolerate", id="no-toleration"),
    ],
)
def test_workload_check_reports_unsized_or_misplaced_pods(tree: Path, mutation: Mutation, expected: str) -> None:
    edit(tree, DEPLOYMENT, mutation)
    assert_reports(workload_problems(tree), expected)


def test_ingress_makes_an_internet_facing_alb_with_ip_targets() -> None:
    assert ingress_problems(REPO) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(setter("metadata", "annotations", "alb.ingress.kubernetes.io/target-type", value="instance"),
                     "target-type", id="instance-targets"),
        pytest.param(setter("metadata", "annotations", "kubernetes.io/ingress.class", value="alb"),
                     "kubernetes.io/ingress.class", id="legacy-class-annotation"),
        pytest.param(remover("spec", "ingressClassName"), "ingressClassName", id="no-class"),
        pytest.param(setter("metadata", "annotations", "alb.ingress.kubernetes.io/scheme", value="internal"),
                     "scheme", id="internal"),
        pytest.param(remover("metadata", "annotations", "alb.ingress.kubernetes.io/healthcheck-path"),
                     "healthcheck-path", id="no-health-check"),
        pytest.param(setter("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port",
                            value={"name": "web"}), "named port", id="unknown-port"),
    ],
)
def test_ingress_check_reports_what_breaks_the_alb(tree: Path, mutation: Mutation, expected: str) -> None:
    edit(tree, INGRESS, mutation)
    assert_reports(ingress_problems(tree), expected)


def test_node_class_is_hardened_and_referenced() -> None:
    assert nodeclass_problems(REPO) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(NODECLASS, setter("spec", "metadataOptions", "httpPutResponseHopLimit", value=2), "HopLimit",
                     id="hop-limit"),
        pytest.param(NODECLASS, setter("spec", "blockDeviceMappings", 0, "ebs", "encrypted", value=False),
                     "encrypted", id="unencrypted"),
        pytest.param(NODECLASS, setter("spec", "amiSelectorTerms", value=[{"tags": {"Name": "x"}}]), "alias",
                     id="no-alias"),
        pytest.param(NODEPOOL, setter(*TEMPLATE_SPEC, "nodeClassRef", "name", value="default"), "does not resolve",
                     id="dangling-ref"),
    ],
)
def test_node_class_check_reports_weak_or_dangling_settings(
    tree: Path, relative: str, mutation: Mutation, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(nodeclass_problems(tree), expected)


def test_pinned_literals_match_versions_yaml() -> None:
    assert pin_problems(REPO, versions(REPO)) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "pins", "expected"),
    [
        pytest.param(NODECLASS, setter("spec", "amiSelectorTerms", 0, "alias", value="al2023@latest"), {},
                     "differs from versions.yaml", id="alias-drift"),
        pytest.param(DEPLOYMENT, setter(*CONTAINER, "image", value="nginx"), {}, "game_2048_image",
                     id="image-drift"),
        pytest.param(None, None, {"karpenter_ami_alias": "al2023@latest"}, "dated release", id="alias-latest"),
    ],
)
def test_pin_check_reports_drift_from_versions_yaml(
    tree: Path, relative: str | None, mutation: Mutation | None, pins: dict[str, str], expected: str
) -> None:
    if relative and mutation:
        edit(tree, relative, mutation)
    assert_reports(pin_problems(tree, {**versions(REPO), **pins}), expected)


def test_applicationsets_sync_retry_and_clean_up() -> None:
    assert appset_problems(REPO) == []


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(OPS_APPSET, setter("spec", "goTemplate", value=False), "goTemplate", id="no-go-template"),
        pytest.param(OPS_APPSET, setter("spec", "goTemplateOptions", value=[]), "missingkey", id="missingkey"),
        pytest.param(OPS_APPSET, setter("spec", "syncPolicy", "preserveResourcesOnDeletion", value=True),
                     "preserveResourcesOnDeletion", id="preserve-on-delete"),
        pytest.param(OPS_APPSET, setter("spec", "syncPolicy", "applicationsSync", value="create-update"),
                     "applicationsSync", id="cannot-delete-apps"),
        pytest.param(GAME_APPSET, remover("spec", "template", "metadata", "finalizers"), "finalizers",
                     id="no-finalizer"),
        pytest.param(GAME_APPSET, setter(*TEMPLATE_SPEC, "syncPolicy", "automated", "prune", value=False), "prune",
                     id="no-prune"),
        pytest.param(GAME_APPSET, remover(*TEMPLATE_SPEC, "syncPolicy", "retry", "backoff"), "retry",
                     id="no-backoff"),
        pytest.param(OPS_APPSET, setter(*TEMPLATE_SPEC, "syncPolicy", "syncOptions", value=[]),
                     "SkipDryRunOnMissingResource", id="no-skip-dry-run"),
        pytest.param(GAME_APPSET, setter("spec", "generators", 0, "clusters", "selector", "matchLabels",
                                         value={"env": "prod"}), "cluster generator", id="wrong-selector"),
        pytest.param(GAME_APPSET, setter(*TEMPLATE_SPEC, "source", "path", value="gitops/apps/missing"),
                     "source.path", id="missing-path"),
    ],
)
def test_applicationset_check_reports_unsafe_sync_or_deletion(
    tree: Path, relative: str, mutation: Mutation, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(appset_problems(tree), expected)


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A copy of the bootstrap chart to plant defects in."""
    copy_of = tmp_path / "bootstrap"
    shutil.copytree(REPO / BOOTSTRAP_CHART, copy_of)
    return copy_of


def edit_appproject(chart: Path, change: Callable[[str], str]) -> None:
    template = chart / "templates" / "appproject.yaml"
    template.write_text(change(template.read_text(encoding="utf-8")), encoding="utf-8")


def test_the_app_project_admits_exactly_what_the_platform_applications_deliver(cluster: Cluster) -> None:
    assert project_problems(REPO, REPO / BOOTSTRAP_CHART, cluster) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda t: t.replace("    - group: apps\n      kind: Deployment\n", ""),
                     "apps/Deployment game-2048: kind not in namespaceResourceWhitelist", id="kind-missing"),
        pytest.param(lambda t: t.replace("      kind: EC2NodeClass\n", "      kind: EC2NodeClassz\n"),
                     "cluster-scoped kind not in clusterResourceWhitelist", id="cluster-kind-missing"),
        pytest.param(lambda t: t.replace("      namespace: game-2048\n", "      namespace: games\n"),
                     "is not permitted by AppProject", id="namespace-missing"),
        pytest.param(lambda t: t.replace('.Values.repoURL | quote }}', '"https://example.com/other.git" }}'),
                     "unsupported chart template action", id="unrenderable"),
        pytest.param(lambda t: t.replace("  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n", ""),
                     "needs finalizer", id="no-finalizer"),
    ],
)
def test_project_check_reports_what_the_project_would_refuse(
    chart: Path, cluster: Cluster, change: Callable[[str], str], expected: str
) -> None:
    edit_appproject(chart, change)
    assert_reports(project_problems(REPO, chart, cluster), expected)


def test_project_check_reports_an_application_outside_the_project(tree: Path, cluster: Cluster) -> None:
    edit(tree, GAME_APPSET, setter(*TEMPLATE_SPEC, "project", value="default"))
    assert_reports(project_problems(tree, REPO / BOOTSTRAP_CHART, cluster), "project 'default'")


def test_project_check_reports_a_repository_the_project_does_not_admit(chart: Path, cluster: Cluster) -> None:
    edit_appproject(chart, lambda t: t.replace(".Values.repoURL | quote }}", ".Values.path | quote }}"))
    assert_reports(project_problems(REPO, chart, cluster), "repoURL is not in AppProject")


def test_kustomizations_list_exactly_their_manifests() -> None:
    assert kustomization_problems(REPO) == []


def test_kustomization_check_reports_missing_and_forgotten_files(tree: Path) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "service.yaml").unlink()
    (tree / "gitops" / "ops" / "karpenter" / "forgotten.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")
    problems = kustomization_problems(tree)
    assert_reports(problems, "service.yaml does not exist")
    assert_reports(problems, "forgotten.yaml is not listed")


# ---------------------------------------------------------------- tests: replica arithmetic


@pytest.fixture(scope="module")
def ops() -> OpsCapacity:
    capacity = ops_capacity(REPO)
    if capacity is None:
        pytest.skip("infra/platform/variables.tf has no ops_instance_types/ops_max_size defaults to size against")
    return capacity


def test_scale_out_outgrows_the_ops_nodes_and_fits_the_nodepool(ops: OpsCapacity) -> None:
    assert capacity_problems(REPO, ops) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(setter("metadata", "annotations", SCALE_OUT_ANNOTATION, value="3"), "fits on the ops nodes",
                     id="too-few"),
        pytest.param(setter("metadata", "annotations", SCALE_OUT_ANNOTATION, value="200"), "above NodePool",
                     id="beyond-cost-cap"),
        pytest.param(setter("spec", "replicas", value=300), "not above the baseline", id="baseline-too-high"),
        pytest.param(remover("metadata", "annotations", SCALE_OUT_ANNOTATION), "must be a replica count",
                     id="undocumented"),
    ],
)
def test_capacity_check_reports_a_scale_out_that_proves_nothing_or_costs_too_much(
    tree: Path, ops: OpsCapacity, mutation: Mutation, expected: str
) -> None:
    edit(tree, DEPLOYMENT, mutation)
    assert_reports(capacity_problems(tree, ops), expected)
