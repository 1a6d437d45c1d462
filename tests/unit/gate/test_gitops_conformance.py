"""gitops/ (what Argo CD syncs), checked by one checker, the gate, on this repository and on copies with one
defect planted (each check must report its defect, so none can pass by checking nothing).

Everything is read with the gate's loader and rendered with the gate's evaluator (harness.gate.effective): the
ApplicationSets' Go templates with a cluster secret, kustomize, then the Applications' JSON6902 patches, as
Argo CD does at sync time. Two kinds of assertion:

- Contracts the gate owns: the planted defect must come back as a finding of the rule that owns it (EKS001
  schemas, EKS024 spot, EKS027 templates, ...), from `harness check`'s own entry point on a copy of the
  repository (infra/, gitops/, versions.yaml).
- Conventions of this repository, which no rule asks of a user's repository (docs/gitops.md): cluster values
  as placeholders patched at sync, the values the sample cluster secret (tests/fixtures/gitops) renders to,
  sync and deletion policy, probes and limits, the pins, kustomizations listing every manifest, and the
  scale-out arithmetic. They are written over the gate's model (its manifests as written, its effective objects).

CEL rules (x-kubernetes-validations) are not evaluated offline.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes.utils import quantity

from harness.errors import InputError
from harness.gate.api import Report, build_model, check
from harness.gate.effective import normalized_name
from harness.gate.model import Manifest, Model
from harness.gate.rules import all_rules
from harness.gate.rules.argocd import cluster_scoped, platform_applications
from harness.keys import DISCOVERY_TAG, NODEPOOL_LABEL
from harness.kube.karpenter import SCALE_OUT_ANNOTATION
from harness.project import read_yaml, repo_root, versions

REPO = repo_root()
SAMPLE_SECRET = Path(__file__).resolve().parents[2] / "fixtures" / "gitops" / "cluster-secret.yaml"

PLACEHOLDER = "set-by-applicationset"  # docs/gitops.md: the base manifests' stand-in for cluster values
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


# ---------------------------------------------------------------- the gate, run two ways


def gate(root: Path, reference: Path) -> Report:
    """`harness check` on a checkout (the cluster secret is the one infra/addons creates)."""
    return check([root / "infra"], [root / "gitops"], reference)


def rendered_model(root: Path, reference: Path, secret: Path | None = None) -> Model:
    """The gate's model of gitops/ alone, rendered with a sample cluster secret instead of the Terraform one
    (by default the checkout's copy of tests/fixtures/gitops/cluster-secret.yaml)."""
    secret = secret or root / SAMPLE_SECRET.relative_to(REPO)
    return build_model([], [root / "gitops", secret], reference)


def findings(report: Report, rule_id: str) -> list[str]:
    return [f"{f.file}:{f.line}: {f.message}" for f in report.findings if f.rule_id == rule_id]


def rule_issues(rule_id: str, model: Model) -> list[str]:
    """One gate rule over a model built here (the sample-secret rendering)."""
    return [f"{i.location.file.name}:{i.location.line}: {i.message}" for i in all_rules()[rule_id].check(model)]


def assert_reports(problems: list[str], expected: str) -> None:
    assert any(expected in p for p in problems), f"expected a problem mentioning {expected!r}, got {problems}"


# ---------------------------------------------------------------- reading the model


def written(model: Model, kind: str = "") -> list[Manifest]:
    """gitops/ as written (the sample secret and kustomize's own files left out)."""
    gitops = model.gitops_roots[0].resolve()
    return [
        m
        for m in model.manifests
        if m.file.resolve().is_relative_to(gitops) and m.kind != "Kustomization" and (not kind or m.kind == kind)
    ]


def delivered(model: Model) -> list[Manifest]:
    """The objects an Application delivers, after templates and patches."""
    return [m for m in model.effective if id(m) in model.rendered.delivered_by]


def at(manifest: Manifest, *path: Any) -> str:
    where = manifest.where(*path)
    return f"{where.file.name}:{where.line}"


def strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in a document with its path, map keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), str(key)
            yield from strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, (*path, index))
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


# ---------------------------------------------------------------- conventions: rendering with the sample secret


def rendering_problems(model: Model) -> list[str]:
    """Every ApplicationSet generates for the secret, every patch applies, and no placeholder survives."""
    problems = [f"{where.file.name}:{where.line}: {why}" for where, why in model.rendered.unapplied_patches]
    origins = {
        app.origin.partition(" for cluster ")[0] for app in model.rendered.applications if " for cluster " in app.origin
    }
    problems += [
        f"{at(s)}: ApplicationSet {s.name} generates no Application for the cluster secret"
        for s in written(model, "ApplicationSet")
        if f"ApplicationSet {s.name}" not in origins
    ]
    problems += [
        f"{at(m, *path)}: {m.label} {'.'.join(map(str, path))} still holds {PLACEHOLDER!r} after patches"
        for m in delivered(model)
        for path, text in strings(m.doc)
        if PLACEHOLDER in text
    ]
    return problems


def rendered_value_problems(model: Model) -> list[str]:
    """The cluster-specific fields hold exactly the cluster secret's values once rendered."""
    (secret,) = model.rendered.cluster_secrets
    notes = secret.annotations
    expected: dict[str, dict[tuple[Any, ...], str]] = {
        "EC2NodeClass": {
            ("spec", "role"): notes["eks-platform/karpenter-node-role"],
            ("spec", "subnetSelectorTerms", 0, "tags", DISCOVERY_TAG): notes["eks-platform/cluster-name"],
            ("spec", "securityGroupSelectorTerms", 0, "tags", DISCOVERY_TAG): notes["eks-platform/cluster-name"],
            ("spec", "tags", "run-id"): notes["eks-platform/run-id"],
            ("spec", "tags", "expires-at"): notes["eks-platform/expires-at"],
        },
        "Ingress": {
            ("metadata", "annotations", ALB_TAGS): f"project=eks-platform,run-id={notes['eks-platform/run-id']},"
            f"expires-at={notes['eks-platform/expires-at']}",
        },
    }
    problems, seen = [], set()
    for app in model.rendered.applications:
        for field, key in (
            ("repoURL", "eks-platform/gitops-repo-url"),
            ("targetRevision", "eks-platform/gitops-revision"),
        ):
            if app.get("spec", "source", field) != notes[key]:
                problems.append(f"{at(app)}: source.{field} is not the {key} annotation")
    for manifest in delivered(model):
        seen.add(manifest.kind)
        for path, want in expected.get(manifest.kind, {}).items():
            got = manifest.get(*path)
            if got != want:
                shown = ".".join(map(str, path))
                problems.append(f"{at(manifest, *path)}: {manifest.kind} {shown} renders as {got!r}, expected {want!r}")
    problems += [f"no ApplicationSet renders a {kind}" for kind in sorted(set(expected) - seen)]
    return problems


# ---------------------------------------------------------------- conventions: the base manifests as written


def hardcoded_problems(model: Model) -> list[str]:
    """Cluster-specific fields carry the placeholder (patched at sync); nothing URL-like is written down."""
    docs = written(model)
    problems = [
        f"{at(doc, *path)}: {'.'.join(map(str, path))} = {text!r} looks like a hard-coded URL (it comes from the "
        "cluster secret)"
        for doc in docs
        for path, text in strings(doc.doc)
        if URL_LIKE.search(text)
    ]

    def expect(doc: Manifest, what: str, value: Any, want: str) -> None:
        if value != want:
            problems.append(f"{at(doc)}: {doc.kind} {doc.name} {what} is {value!r}, expected {want!r}")

    for cls in (d for d in docs if d.kind == "EC2NodeClass"):
        expect(cls, "spec.role", cls.get("spec", "role"), PLACEHOLDER)
        for field in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
            for i, term in enumerate(cls.list("spec", field)):
                expect(cls, f"spec.{field}[{i}] tag {DISCOVERY_TAG}", dig(term, "tags", DISCOVERY_TAG), PLACEHOLDER)
        for tag in ("run-id", "expires-at"):
            expect(cls, f"spec.tags.{tag}", cls.get("spec", "tags", tag), PLACEHOLDER)
    for ingress in (d for d in docs if d.kind == "Ingress"):
        annotation = str(ingress.get("metadata", "annotations", ALB_TAGS))
        tags = dict(pair.partition("=")[::2] for pair in annotation.split(","))
        for tag in ("run-id", "expires-at"):
            expect(ingress, f"annotation {ALB_TAGS} {tag}", tags.get(tag), PLACEHOLDER)
    for appset in (d for d in docs if d.kind == "ApplicationSet"):
        source = appset.map("spec", "template", "spec", "source")
        expect(appset, "source.repoURL", source.get("repoURL"), annotation_expression("eks-platform/gitops-repo-url"))
        expect(
            appset,
            "source.targetRevision",
            source.get("targetRevision"),
            annotation_expression("eks-platform/gitops-revision"),
        )
    return problems


def workload_problems(model: Model) -> list[str]:
    """Every container has a memory limit and both probes (requests and placement: EKS019, EKS008)."""
    problems = []
    for deployment in written(model, "Deployment"):
        for container in deployment.list("spec", "template", "spec", "containers"):
            what = f"{at(deployment)}: container {container.get('name')}"
            if not dig(container, "resources", "limits", "memory"):
                problems.append(f"{what} has no limits memory")
            problems += [
                f"{what} has no {probe}" for probe in ("readinessProbe", "livenessProbe") if probe not in container
            ]
    return problems


def ingress_problems(model: Model) -> list[str]:
    """The game's ALB is internet-facing and health-checked (class, targets, backends: EKS010, EKS012, EKS017)."""
    problems = []
    for ingress in written(model, "Ingress"):
        annotations = ingress.map("metadata", "annotations")
        scheme = annotations.get("alb.ingress.kubernetes.io/scheme")
        if scheme != "internet-facing":
            problems.append(
                f"{at(ingress)}: annotation alb.ingress.kubernetes.io/scheme must be 'internet-facing', is {scheme!r}"
            )
        if not annotations.get("alb.ingress.kubernetes.io/healthcheck-path"):
            problems.append(f"{at(ingress)}: no alb.ingress.kubernetes.io/healthcheck-path")
    return problems


def nodeclass_problems(model: Model) -> list[str]:
    """One encrypted gp3 root volume and one pinned AMI alias (IMDS and references: EKS021, EKS009)."""
    problems = []
    for cls in written(model, "EC2NodeClass"):
        roots = [m for m in cls.list("spec", "blockDeviceMappings") if isinstance(m, dict) and m.get("rootVolume")]
        ebs = dig(roots, 0, "ebs") or {}
        if len(roots) != 1 or ebs.get("encrypted") is not True or ebs.get("volumeType") != "gp3":
            problems.append(f"{at(cls)}: needs one root volume, encrypted gp3")
        if [sorted(term) for term in cls.list("spec", "amiSelectorTerms")] != [["alias"]]:
            problems.append(f"{at(cls)}: amiSelectorTerms must be one pinned alias")
    return problems


def pin_problems(model: Model, pins: Mapping[str, str]) -> list[str]:
    """versions.yaml pins a dated AMI alias and the game's image (the alias in manifests: EKS016)."""
    problems = []
    alias = pins.get("karpenter_ami_alias", "")
    if not AMI_ALIAS.match(alias):
        problems.append(f"versions.yaml: karpenter_ami_alias {alias!r} must be a dated release al2023@vYYYYMMDD")
    for deployment in written(model, "Deployment"):
        for container in deployment.list("spec", "template", "spec", "containers"):
            if container.get("image") != pins.get("game_2048_image"):
                problems.append(
                    f"{at(deployment)}: image {container.get('image')!r} differs from versions.yaml "
                    f"game_2048_image {pins.get('game_2048_image')!r}"
                )
    return problems


def appset_problems(model: Model) -> list[str]:
    """Generation, sync and deletion behave as docs/gitops.md says (paths, CRD order, templates: EKS013, EKS014,
    EKS027)."""
    problems = []
    for appset in written(model, "ApplicationSet"):
        spec = appset.map("spec")
        sync = appset.map("spec", "template", "spec", "syncPolicy")

        def need(ok: bool, what: str, appset: Manifest = appset) -> None:
            if not ok:
                problems.append(f"{at(appset)}: ApplicationSet {appset.name}: {what}")

        need(
            "missingkey=error" in (spec.get("goTemplateOptions") or []),
            'goTemplateOptions must hold "missingkey=error"',
        )
        selectors = [dig(g, "clusters", "selector", "matchLabels") for g in spec.get("generators") or []]
        need(selectors == [dict([MANAGED_LABEL])], f'one cluster generator selecting {MANAGED_LABEL[0]}: "true"')
        need(
            dig(spec, "syncPolicy", "preserveResourcesOnDeletion") is False,
            "spec.syncPolicy.preserveResourcesOnDeletion must be false (deletion cleans up)",
        )
        need(
            dig(spec, "syncPolicy", "applicationsSync") in (None, "sync", "create-delete"),
            "spec.syncPolicy.applicationsSync must let the ApplicationSet delete Applications",
        )
        need(
            APP_FINALIZER in (dig(spec, "template", "metadata", "finalizers") or []),
            f"template.metadata.finalizers must hold {APP_FINALIZER}",
        )
        need(
            dig(sync, "automated", "prune") is True and dig(sync, "automated", "selfHeal") is True,
            "syncPolicy.automated needs prune and selfHeal",
        )
        backoff = dig(sync, "retry", "backoff") or {}
        need(
            bool(dig(sync, "retry", "limit")) and all(backoff.get(k) for k in ("duration", "factor", "maxDuration")),
            "syncPolicy.retry needs limit and backoff duration, factor, maxDuration",
        )
        objects = _delivered_by(model, appset)
        if appset.get("spec", "template", "spec", "destination", "namespace") and not all(map(cluster_scoped, objects)):
            options = sync.get("syncOptions") or []
            need(
                "CreateNamespace=true" in options or any(m.kind == "Namespace" for m in objects),
                "namespaced app needs CreateNamespace=true",
            )
    return problems


def _delivered_by(model: Model, appset: Manifest) -> list[Manifest]:
    """What the Applications an ApplicationSet generates deliver (the CreateNamespace convention asks for the
    option only where one of them is namespaced)."""
    apps = {id(app) for app in model.rendered.applications if app.origin.startswith(f"ApplicationSet {appset.name} ")}
    return [m for m in model.effective if id(model.rendered.delivered_by.get(id(m))) in apps]


def kustomization_problems(root: Path) -> list[str]:
    """Each kustomization lists files that exist, and every manifest beside it is listed (none forgotten)."""
    problems = []
    for kustomization in sorted((root / "gitops").rglob("kustomization.yaml")):
        where = kustomization.relative_to(root)
        listed = (read_yaml(kustomization) or {}).get("resources") or []
        problems += [
            f"{where}: resource {name} does not exist" for name in listed if not (kustomization.parent / name).is_file()
        ]
        beside = {p.name for p in kustomization.parent.iterdir() if p.suffix in (".yaml", ".yml")}
        problems += [
            f"{where}: {name} is not listed in resources, so Argo CD never applies it"
            for name in sorted(beside - set(listed) - set(KUSTOMIZATION_NAMES))
        ]
    return problems


# ---------------------------------------------------------------- conventions: replica arithmetic


@dataclass(frozen=True)
class OpsCapacity:
    """The whole ops node group at its maximum size: an upper bound on what could run there."""

    cpu: Decimal
    memory: Decimal
    source: str


def ops_capacity(model: Model) -> OpsCapacity | None:
    """From the gate's Terraform model of the ops node group and EC2's instance facts (moto's copy)."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    groups = [g for g in model.terraform.of_type("aws_eks_node_group") if g.name == "ops"]
    types = groups[0].get("instance_types") if groups else None
    max_size = groups[0].get("scaling_config", "max_size") if groups else None
    if not isinstance(types, list) or not isinstance(max_size, int) or not types:
        return None
    largest = max(
        (INSTANCE_TYPES[t]["VCpuInfo"]["DefaultVCpus"], INSTANCE_TYPES[t]["MemoryInfo"]["SizeInMiB"]) for t in types
    )
    return OpsCapacity(
        cpu=Decimal(largest[0] * max_size),
        memory=Decimal(largest[1] * max_size) * 1024 * 1024,
        source=f"{max_size} x {'/'.join(types)} ({groups[0].address})",
    )


def capacity_problems(model: Model, ops: OpsCapacity) -> list[str]:
    """The scale-out replica count cannot fit on the ops nodes but fits under the NodePool's cost cap."""
    pools = {pool.name: pool for pool in written(model, "NodePool")}
    problems = []
    for deployment in written(model, "Deployment"):
        raw = deployment.get("metadata", "annotations", SCALE_OUT_ANNOTATION)
        if not str(raw).isdigit():
            problems.append(f"{at(deployment)}: annotation {SCALE_OUT_ANNOTATION} must be a replica count")
            continue
        scale_out, baseline = int(raw), int(deployment.get("spec", "replicas") or 1)
        if scale_out <= baseline:
            problems.append(f"{at(deployment)}: scale-out {scale_out} is not above the baseline {baseline}")
        pod = deployment.map("spec", "template", "spec")
        need = {
            resource: scale_out
            * sum(parse_quantity(dig(c, "resources", "requests", resource) or 0) for c in pod.get("containers") or [])
            for resource in ("cpu", "memory")
        }
        if need["cpu"] <= ops.cpu and need["memory"] <= ops.memory:
            problems.append(
                f"{at(deployment)}: {scale_out} replicas request {need['cpu']} CPU and "
                f"{need['memory']} bytes: that fits on the ops nodes ({ops.source}), "
                "so the scale-out proves nothing"
            )
        pool = pools.get(str(dig(pod, "nodeSelector", NODEPOOL_LABEL)))
        limits = pool.map("spec", "limits") if pool else None
        for resource in ("cpu", "memory"):
            if not limits or resource not in limits:
                problems.append(f"{at(deployment)}: its NodePool sets no {resource} limit (the sandbox cost cap)")
            elif need[resource] > parse_quantity(limits[resource]):
                problems.append(
                    f"{at(deployment)}: {scale_out} replicas need {need[resource]} {resource}, above "
                    f"NodePool {pool.name if pool else '?'} limit {limits[resource]}"
                )
    return problems


# ---------------------------------------------------------------- fixtures and defect planting


@pytest.fixture(scope="module")
def repo_report(reference: Path) -> Report:
    return gate(REPO, reference)


@pytest.fixture(scope="module")
def repo_model(reference: Path) -> Model:
    return rendered_model(REPO, reference)


@pytest.fixture
def tree(repo_copy: Path) -> Path:
    """The checkout's copy (conftest repo_copy) with the sample cluster secret."""
    root = repo_copy
    (root / SAMPLE_SECRET.relative_to(REPO)).parent.mkdir(parents=True)
    shutil.copy(SAMPLE_SECRET, root / SAMPLE_SECRET.relative_to(REPO))
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


# ---------------------------------------------------------------- the real tree: the gate passes, conventions hold


def test_the_gate_passes_this_repository(repo_report: Report) -> None:
    assert repo_report.errors == 0, [f"{f.rule_id} {f.file}:{f.line}: {f.message}" for f in repo_report.findings]


def test_every_kind_is_there_and_schema_valid_once_rendered_with_the_sample_secret(repo_model: Model) -> None:
    assert {m.kind for m in written(repo_model)} >= {
        "ApplicationSet",
        "NodePool",
        "EC2NodeClass",
        "Namespace",
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
    }
    assert rule_issues("EKS001", repo_model) == []
    assert {app.name for app in repo_model.rendered.applications} == {
        "ops-karpenter-in-cluster",
        "game-2048-in-cluster",
    }


def test_a_second_cluster_secret_generates_applications_of_its_own(tmp_path: Path, reference: Path) -> None:
    """Application names carry the cluster (EKS031), so a second managed cluster adds Applications instead of
    fighting over the first one's (the ApplicationSet would otherwise report duplicate names)."""
    second = yaml.safe_load(SAMPLE_SECRET.read_text(encoding="utf-8"))
    second["metadata"]["name"] = "prod"
    second["stringData"].update(name="Prod EKS (eu-west-1)", server="https://prod.example.com")
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second), encoding="utf-8")
    model = build_model([], [REPO / "gitops", SAMPLE_SECRET, tmp_path / "second.yaml"], reference)

    names = [app.name for app in model.rendered.applications]
    assert len(names) == len(set(names)) == 4
    assert "ops-karpenter-prod-eks--eu-west-1" in names
    assert rule_issues("EKS031", model) == []


def test_normalized_names_follow_argo_cd() -> None:
    assert normalized_name("in-cluster") == "in-cluster"
    assert normalized_name("arn:aws:eks:eu-west-1:123456789012:cluster/Demo") == (
        "arn-aws-eks-eu-west-1-123456789012-cluster-demo"
    )
    assert normalized_name("-.Edge.-") == "edge"
    assert len(normalized_name("x" * 300)) == 253


@pytest.mark.parametrize(
    "conventions",
    [
        pytest.param(rendering_problems, id="rendering"),
        pytest.param(rendered_value_problems, id="rendered-values"),
        pytest.param(hardcoded_problems, id="placeholders"),
        pytest.param(workload_problems, id="workloads"),
        pytest.param(ingress_problems, id="ingress"),
        pytest.param(nodeclass_problems, id="node-class"),
        pytest.param(appset_problems, id="applicationsets"),
    ],
)
def test_this_repository_keeps_its_conventions(repo_model: Model, conventions: Callable[[Model], list[str]]) -> None:
    assert conventions(repo_model) == []


def test_pinned_literals_match_versions_yaml(repo_model: Model) -> None:
    assert pin_problems(repo_model, versions(REPO)) == []


def test_kustomizations_list_exactly_their_manifests() -> None:
    assert kustomization_problems(REPO) == []


# ---------------------------------------------------------------- contracts the gate owns: planted defects


@pytest.mark.parametrize(
    ("relative", "mutation", "rule_id", "expected"),
    [
        # schemas, core and custom (EKS001)
        pytest.param(
            NODEPOOL,
            setter(*REQUIREMENTS, 0, "operator", value="Within"),
            "EKS001",
            "is not one of",
            id="nodepool-bad-operator",
        ),
        pytest.param(
            NODEPOOL,
            setter("spec", "disruption", "consolidateAfter", value="soon"),
            "EKS001",
            "does not match",
            id="nodepool-bad-duration",
        ),
        pytest.param(
            NODECLASS,
            setter("spec", "metadataOptions", "httpTokenz", value="required"),
            "EKS001",
            "httpTokenz",
            id="nodeclass-unknown-field",
        ),
        pytest.param(NODECLASS, setter("metadata", "lables", value={}), "EKS001", "lables", id="crd-metadata-typo"),
        pytest.param(
            DEPLOYMENT, setter(*CONTAINER, "resource", value={}), "EKS001", "resource", id="core-unknown-field"
        ),
        pytest.param(DEPLOYMENT, setter("spec", "replicas", value="two"), "EKS001", "replicas", id="core-wrong-type"),
        pytest.param(
            OPS_APPSET,
            setter("spec", "syncPolicy", "preserveResourcesOnDelete", value=False),
            "EKS001",
            "preserveResourcesOnDelete",
            id="appset-field-typo",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "syncPolicy", "applicationsSync", value="delete-only"),
            "EKS001",
            "is not one of",
            id="appset-bad-enum",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "template", "spec", "destination", "server", value=7),
            "EKS001",
            "server",
            id="generated-app-invalid",
        ),
        # templates and the cluster secret (EKS027)
        pytest.param(
            OPS_APPSET,
            rewrite_first_patch(lambda ops: ops[0].update(value=annotation_expression("eks-platform/node-role"))),
            "EKS027",
            "eks-platform/node-role",
            id="annotation-not-in-contract",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "template", "spec", "source", "repoURL", value="{{ .repo }}"),
            "EKS027",
            ".repo",
            id="unknown-template-action",
        ),
        pytest.param(
            GAME_APPSET,
            setter(
                "spec", "generators", 0, "clusters", "selector", "matchLabels", value={"eks-platform/managed": "yes"}
            ),
            "EKS027",
            "matches no cluster secret",
            id="selector-matches-nothing",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "generators", 0, "clusters", "selector", "matchLabels", value={"env": "prod"}),
            "EKS027",
            "matches no cluster secret",
            id="wrong-selector",
        ),
        pytest.param(
            OPS_APPSET,
            setter("spec", "goTemplate", value=False),
            "EKS027",
            "eks-platform/cluster-name",
            id="no-go-template",
        ),
        # sync order and sources (EKS014, EKS013)
        pytest.param(
            OPS_APPSET,
            setter(*TEMPLATE_SPEC, "syncPolicy", "syncOptions", value=[]),
            "EKS014",
            "SkipDryRunOnMissingResource",
            id="no-skip-dry-run",
        ),
        pytest.param(
            GAME_APPSET,
            setter(*TEMPLATE_SPEC, "source", "path", value="gitops/apps/missing"),
            "EKS013",
            "gitops/apps/missing",
            id="missing-path",
        ),
        # spot only (EKS024)
        pytest.param(
            NODEPOOL,
            lambda body: body["spec"]["template"]["spec"]["requirements"].pop(0),
            "EKS024",
            "capacity type",
            id="spot-requirement-missing",
        ),
        pytest.param(
            NODEPOOL,
            setter(*REQUIREMENTS, 0, "values", value=["spot", "on-demand"]),
            "EKS024",
            "capacity type",
            id="on-demand-allowed",
        ),
        pytest.param(
            NODEPOOL, setter(*REQUIREMENTS, 0, "operator", value="NotIn"), "EKS024", "capacity type", id="spot-excluded"
        ),
        # what Karpenter needs of a workload, and where it may run (EKS019, EKS008)
        pytest.param(DEPLOYMENT, remover(*CONTAINER, "resources", "requests"), "EKS019", "request", id="no-requests"),
        pytest.param(
            DEPLOYMENT,
            setter(*TEMPLATE_SPEC, "nodeSelector", NODEPOOL_LABEL, value="ops"),
            "EKS008",
            "no node group",
            id="wrong-pool",
        ),
        pytest.param(DEPLOYMENT, remover(*TEMPLATE_SPEC, "tolerations"), "EKS008", "no node group", id="no-toleration"),
        # the ALB chain (EKS010, EKS012, EKS017)
        pytest.param(
            INGRESS,
            setter("metadata", "annotations", "alb.ingress.kubernetes.io/target-type", value="instance"),
            "EKS010",
            "target-type instance",
            id="instance-targets",
        ),
        pytest.param(
            INGRESS,
            setter("metadata", "annotations", "kubernetes.io/ingress.class", value="alb"),
            "EKS017",
            "kubernetes.io/ingress.class",
            id="legacy-class-annotation",
        ),
        pytest.param(INGRESS, remover("spec", "ingressClassName"), "EKS012", "ingressClassName", id="no-class"),
        pytest.param(
            INGRESS,
            setter("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", value={"name": "web"}),
            "EKS010",
            "web",
            id="unknown-port",
        ),
        # the node class (EKS021, EKS009) and the pins (EKS016)
        pytest.param(
            NODECLASS,
            setter("spec", "metadataOptions", "httpPutResponseHopLimit", value=2),
            "EKS021",
            "httpPutResponseHopLimit",
            id="hop-limit",
        ),
        pytest.param(
            NODEPOOL,
            setter(*TEMPLATE_SPEC, "nodeClassRef", "name", value="default"),
            "EKS009",
            "default",
            id="dangling-ref",
        ),
        pytest.param(
            NODECLASS,
            setter("spec", "amiSelectorTerms", 0, "alias", value="al2023@latest"),
            "EKS016",
            "al2023@latest",
            id="alias-drift",
        ),
        # a placeholder the ApplicationSet forgot to patch (EKS005; the convention below names the field)
        pytest.param(
            OPS_APPSET,
            rewrite_first_patch(lambda ops: ops.pop(0)),
            "EKS005",
            PLACEHOLDER,
            id="placeholder-left-unpatched",
        ),
    ],
)
def test_the_gate_reports_a_broken_contract(
    tree: Path, reference: Path, relative: str, mutation: Mutation, rule_id: str, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(findings(gate(tree, reference), rule_id), expected)


def test_the_gate_rejects_unknown_kinds(tree: Path, reference: Path) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "extra.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: x\n", encoding="utf-8"
    )
    assert_reports(findings(gate(tree, reference), "EKS001"), "Gadget")


def test_malformed_yaml_is_a_one_line_error_naming_file_and_line(tree: Path, reference: Path) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "service.yaml").write_text("kind: Service\nspec: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"service\.yaml:\d+: invalid YAML") as caught:
        gate(tree, reference)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- conventions: planted defects


@pytest.mark.parametrize(
    ("relative", "mutation", "expected"),
    [
        pytest.param(
            OPS_APPSET,
            rewrite_first_patch(lambda ops: ops.pop(0)),
            "spec.role still holds",
            id="placeholder-left-unpatched",
        ),
        pytest.param(
            OPS_APPSET,
            rewrite_first_patch(lambda ops: ops[0].update(path="/spec/rolez")),
            "still holds",
            id="patch-path-missing",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "template", "spec", "source", "kustomize", "patches", 0, "target", "name", value="game"),
            "matches no manifest",
            id="patch-target-wrong",
        ),
        pytest.param(
            GAME_APPSET,
            setter(
                "spec", "generators", 0, "clusters", "selector", "matchLabels", value={"eks-platform/managed": "yes"}
            ),
            "generates no Application",
            id="selector-matches-nothing",
        ),
    ],
)
def test_rendering_reports_templates_and_patches_that_do_not_apply(
    tree: Path, reference: Path, relative: str, mutation: Mutation, expected: str
) -> None:
    edit(tree, relative, mutation)
    assert_reports(rendering_problems(rendered_model(tree, reference)), expected)


def test_a_patch_path_that_does_not_exist_leaves_an_invalid_object(tree: Path, reference: Path) -> None:
    edit(tree, OPS_APPSET, rewrite_first_patch(lambda ops: ops[0].update(path="/spec/rolez")))
    assert_reports(rule_issues("EKS001", rendered_model(tree, reference)), "rolez")


def test_rendering_reports_a_value_that_breaks_the_patch_yaml(tree: Path, reference: Path) -> None:
    # The patches single-quote each value: a quote inside a value would end the string early.
    secret = yaml.safe_load(SAMPLE_SECRET.read_text(encoding="utf-8"))
    secret["metadata"]["annotations"]["eks-platform/run-id"] = "it's"
    quoting = tree / SAMPLE_SECRET.relative_to(REPO)
    quoting.write_text(yaml.safe_dump(secret), encoding="utf-8")
    model = rendered_model(tree, reference)
    assert_reports([why for _, why in model.rendered.unapplied_patches], "not YAML once rendered")


def test_rendered_value_check_reports_a_value_from_the_wrong_annotation(tree: Path, reference: Path) -> None:
    edit(
        tree,
        OPS_APPSET,
        rewrite_first_patch(lambda ops: ops[0].update(value=annotation_expression("eks-platform/cluster-name"))),
    )
    assert_reports(rendered_value_problems(rendered_model(tree, reference)), "spec.role renders as 'sample-cluster'")


@pytest.mark.parametrize(
    ("relative", "mutation", "conventions", "expected"),
    [
        # cluster values are placeholders, patched at sync
        pytest.param(
            NODECLASS,
            setter("spec", "role", value="KarpenterNodeRole-demo"),
            hardcoded_problems,
            "spec.role",
            id="role",
        ),
        pytest.param(
            NODECLASS,
            setter("spec", "subnetSelectorTerms", 0, "tags", DISCOVERY_TAG, value="demo"),
            hardcoded_problems,
            "subnetSelectorTerms",
            id="cluster-name",
        ),
        pytest.param(
            NODECLASS,
            setter("spec", "tags", "run-id", value="r20250101-0000-abcd"),
            hardcoded_problems,
            "spec.tags.run-id",
            id="run-id",
        ),
        pytest.param(
            INGRESS,
            setter("metadata", "annotations", ALB_TAGS, value="project=eks-platform"),
            hardcoded_problems,
            "expires-at",
            id="alb-tags",
        ),
        pytest.param(
            GAME_APPSET,
            setter(
                "spec", "template", "spec", "source", "repoURL", value="https://github.com/example/eks-platform.git"
            ),
            hardcoded_problems,
            "hard-coded URL",
            id="repo-url",
        ),
        pytest.param(
            OPS_APPSET,
            setter("spec", "template", "spec", "source", "targetRevision", value="main"),
            hardcoded_problems,
            "targetRevision",
            id="revision",
        ),
        # workloads: limits and probes
        pytest.param(
            DEPLOYMENT,
            remover(*CONTAINER, "resources", "limits"),
            workload_problems,
            "no limits memory",
            id="no-memory-limit",
        ),
        pytest.param(
            DEPLOYMENT, remover(*CONTAINER, "readinessProbe"), workload_problems, "no readinessProbe", id="no-readiness"
        ),
        # the game's ALB
        pytest.param(
            INGRESS,
            setter("metadata", "annotations", "alb.ingress.kubernetes.io/scheme", value="internal"),
            ingress_problems,
            "scheme",
            id="internal",
        ),
        pytest.param(
            INGRESS,
            remover("metadata", "annotations", "alb.ingress.kubernetes.io/healthcheck-path"),
            ingress_problems,
            "healthcheck-path",
            id="no-health-check",
        ),
        # the node class
        pytest.param(
            NODECLASS,
            setter("spec", "blockDeviceMappings", 0, "ebs", "encrypted", value=False),
            nodeclass_problems,
            "encrypted",
            id="unencrypted",
        ),
        pytest.param(
            NODECLASS,
            setter("spec", "amiSelectorTerms", value=[{"tags": {"Name": "x"}}]),
            nodeclass_problems,
            "alias",
            id="no-alias",
        ),
        # sync and deletion policy
        pytest.param(
            OPS_APPSET, setter("spec", "goTemplateOptions", value=[]), appset_problems, "missingkey", id="missingkey"
        ),
        pytest.param(
            OPS_APPSET,
            setter("spec", "syncPolicy", "preserveResourcesOnDeletion", value=True),
            appset_problems,
            "preserveResourcesOnDeletion",
            id="preserve-on-delete",
        ),
        pytest.param(
            OPS_APPSET,
            setter("spec", "syncPolicy", "applicationsSync", value="create-update"),
            appset_problems,
            "applicationsSync",
            id="cannot-delete-apps",
        ),
        pytest.param(
            GAME_APPSET,
            remover("spec", "template", "metadata", "finalizers"),
            appset_problems,
            "finalizers",
            id="no-finalizer",
        ),
        pytest.param(
            GAME_APPSET,
            setter(*TEMPLATE_SPEC, "syncPolicy", "automated", "prune", value=False),
            appset_problems,
            "prune",
            id="no-prune",
        ),
        pytest.param(
            GAME_APPSET,
            remover(*TEMPLATE_SPEC, "syncPolicy", "retry", "backoff"),
            appset_problems,
            "retry",
            id="no-backoff",
        ),
        pytest.param(
            GAME_APPSET,
            setter("spec", "generators", 0, "clusters", "selector", "matchLabels", value={"env": "prod"}),
            appset_problems,
            "cluster generator",
            id="wrong-selector",
        ),
    ],
)
def test_a_convention_check_reports_its_planted_defect(
    tree: Path,
    reference: Path,
    relative: str,
    mutation: Mutation,
    conventions: Callable[[Model], list[str]],
    expected: str,
) -> None:
    edit(tree, relative, mutation)
    assert_reports(conventions(rendered_model(tree, reference)), expected)


@pytest.mark.parametrize(
    ("relative", "mutation", "pins", "expected"),
    [
        pytest.param(DEPLOYMENT, setter(*CONTAINER, "image", value="nginx"), {}, "game_2048_image", id="image-drift"),
        pytest.param(None, None, {"karpenter_ami_alias": "al2023@latest"}, "dated release", id="alias-latest"),
    ],
)
def test_pin_check_reports_drift_from_versions_yaml(
    tree: Path,
    reference: Path,
    relative: str | None,
    mutation: Mutation | None,
    pins: dict[str, str],
    expected: str,
) -> None:
    if relative and mutation:
        edit(tree, relative, mutation)
    assert_reports(pin_problems(rendered_model(tree, reference), {**versions(REPO), **pins}), expected)


def test_kustomization_check_reports_missing_and_forgotten_files(tree: Path) -> None:
    (tree / "gitops" / "apps" / "game-2048" / "service.yaml").unlink()
    (tree / "gitops" / "ops" / "karpenter" / "forgotten.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")
    problems = kustomization_problems(tree)
    assert_reports(problems, "service.yaml does not exist")
    assert_reports(problems, "forgotten.yaml is not listed")


# ---------------------------------------------------------------- conventions: replica arithmetic


@pytest.fixture(scope="module")
def ops(reference: Path) -> OpsCapacity:
    capacity = ops_capacity(build_model([REPO / "infra"], [], reference))
    if capacity is None:
        pytest.skip("the ops node group has no static instance types and max size to size against")
    return capacity


def test_scale_out_outgrows_the_ops_nodes_and_fits_the_nodepool(repo_model: Model, ops: OpsCapacity) -> None:
    assert capacity_problems(repo_model, ops) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(
            setter("metadata", "annotations", SCALE_OUT_ANNOTATION, value="3"), "fits on the ops nodes", id="too-few"
        ),
        pytest.param(
            setter("metadata", "annotations", SCALE_OUT_ANNOTATION, value="200"), "above NodePool", id="beyond-cost-cap"
        ),
        pytest.param(setter("spec", "replicas", value=300), "not above the baseline", id="baseline-too-high"),
        pytest.param(
            remover("metadata", "annotations", SCALE_OUT_ANNOTATION), "must be a replica count", id="undocumented"
        ),
    ],
)
def test_capacity_check_reports_a_scale_out_that_proves_nothing_or_costs_too_much(
    tree: Path, reference: Path, ops: OpsCapacity, mutation: Mutation, expected: str
) -> None:
    edit(tree, DEPLOYMENT, mutation)
    assert_reports(capacity_problems(rendered_model(tree, reference), ops), expected)


# ---------------------------------------------------------------- the AppProject (EKS029, EKS030), bootstrap chart

BOOTSTRAP_CHART = Path("infra") / "addons" / "charts" / "bootstrap"
APPPROJECT = BOOTSTRAP_CHART / "templates" / "appproject.yaml"


def edit_text(root: Path, relative: Path | str, change: Callable[[str], str]) -> None:
    file = root / relative
    before = file.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, f"the planted defect changed nothing in {relative}"
    file.write_text(after, encoding="utf-8")


def test_the_app_project_admits_exactly_what_the_platform_applications_deliver(
    repo_report: Report, reference: Path
) -> None:
    assert findings(repo_report, "EKS029") == findings(repo_report, "EKS030") == []
    # Not by checking nothing: the gate rendered the chart's AppProject and root Application, and every platform
    # Application (root and generated) names that project.
    model = build_model([REPO / "infra"], [REPO / "gitops"], reference)
    assert model.local_chart_notes == []
    assert {(m.kind, m.name) for m in model.local_charts} == {
        ("AppProject", "eks-platform"),
        ("Application", "bootstrap"),
    }
    apps = platform_applications(model)
    assert {a.name for a in apps} == {"bootstrap", "ops-karpenter-in-cluster", "game-2048-in-cluster"}
    assert {a.get("spec", "project") for a in apps} == {"eks-platform"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda t: t.replace("    - group: apps\n      kind: Deployment\n", ""),
            "apps/Deployment game-2048: kind not in namespaceResourceWhitelist",
            id="kind-missing",
        ),
        pytest.param(
            lambda t: t.replace("    - group: argoproj.io\n      kind: ApplicationSet\n", ""),
            "Application/bootstrap (helm_release.bootstrap): argoproj.io/ApplicationSet ops: kind not in",
            id="root-application-kind-missing",
        ),
        pytest.param(
            lambda t: t.replace("      kind: EC2NodeClass\n", "      kind: EC2NodeClassz\n"),
            "cluster-scoped kind not in clusterResourceWhitelist",
            id="cluster-kind-missing",
        ),
        pytest.param(
            lambda t: t.replace("      namespace: game-2048\n", "      namespace: games\n"),
            "is not permitted by AppProject",
            id="namespace-missing",
        ),
        pytest.param(
            lambda t: t.replace("  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n", ""),
            "needs finalizer",
            id="no-finalizer",
        ),
    ],
)
def test_project_check_reports_what_the_project_would_refuse(
    tree: Path, reference: Path, change: Callable[[str], str], expected: str
) -> None:
    edit_text(tree, APPPROJECT, change)
    assert_reports(findings(gate(tree, reference), "EKS029"), expected)


def test_project_check_reports_a_repository_the_project_does_not_admit(tree: Path, reference: Path) -> None:
    # With the URL known (as in a terraform.tfvars), both sides are literals the gate can compare; with it
    # unknown until apply, the repository and the project must take it from the same variable.
    (tree / "infra" / "addons" / "terraform.tfvars").write_text(
        'gitops_repo_url = "https://git.example.com/sample/eks-platform.git"\n', encoding="utf-8"
    )
    assert findings(gate(tree, reference), "EKS029") == []
    edit_text(tree, APPPROJECT, lambda t: t.replace(".Values.repoURL | quote }}", ".Values.path | quote }}"))
    assert_reports(
        findings(gate(tree, reference), "EKS029"),
        "repoURL https://git.example.com/sample/eks-platform.git is not in AppProject",
    )


def test_project_check_compares_a_repository_known_at_apply_time_as_its_variable(tree: Path, reference: Path) -> None:
    edit_text(tree, APPPROJECT, lambda t: t.replace(".Values.repoURL | quote }}", ".Values.otherRepo | quote }}"))
    edit_text(
        tree,
        "infra/addons/main.tf",
        lambda t: t.replace(
            "    repoURL        = var.gitops_repo_url\n",
            "    repoURL        = var.gitops_repo_url\n    otherRepo      = var.other_repo_url\n",
        ),
    )
    edit_text(tree, "infra/addons/variables.tf", lambda t: t + '\nvariable "other_repo_url" {\n  type = string\n}\n')
    assert_reports(
        findings(gate(tree, reference), "EKS029"),
        "repoURL ${var.gitops_repo_url} is not in AppProject eks-platform sourceRepos (${var.other_repo_url})",
    )


def test_a_chart_template_the_gate_cannot_render_is_a_note_not_a_silent_pass(tree: Path, reference: Path) -> None:
    edit_text(tree, APPPROJECT, lambda t: t.replace(".Values.repoURL | quote }}", '"https://example.com/other.git" }}'))
    report = gate(tree, reference)
    assert_reports(report.notes, "unsupported chart template action")
    assert_reports(report.notes, "appproject.yaml")
    assert findings(report, "EKS029") == []  # the project it could not read is not reported as missing


def test_project_check_reports_an_application_outside_the_project(tree: Path, reference: Path) -> None:
    edit(tree, GAME_APPSET, setter(*TEMPLATE_SPEC, "project", value="default"))
    assert_reports(findings(gate(tree, reference), "EKS030"), "project 'default'")
