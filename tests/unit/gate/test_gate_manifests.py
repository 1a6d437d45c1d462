"""Manifests: YAML with lines, suppressions, kustomize and ApplicationSet rendering, schema validation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.gate.effective import build, render
from harness.gate.loaders import load_manifests, load_plan, load_reference, suppressions
from harness.gate.model import Location, TerraformModel
from harness.gate.schema import SchemaValidator


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def test_every_document_knows_its_file_and_the_line_of_each_field(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": """
        # comment
        apiVersion: v1
        kind: Namespace
        metadata:
          name: one
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: two
        spec:
          ports:
            - port: 80
        """
        },
    )

    first, second = load_manifests([tmp_path])

    assert (first.name, first.line) == ("one", 2)
    assert second.where("spec", "ports", 0, "port").line == 13
    assert second.where("spec", "ports", 0, "no-such-field").line == 13


def test_chart_sources_and_values_files_are_not_manifests(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "chart/Chart.yaml": "name: c\n",
            "chart/templates/app.yaml": "kind: {{ .Values.kind }}\n",
            "values.yaml": "replicas: 2\n",
            "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n",
        },
    )

    assert [m.name for m in load_manifests([tmp_path])] == ["n"]


@pytest.mark.parametrize(
    ("text", "where"),
    [("a: [1, 2\n", "bad.yaml:2"), ("a: b\n c: d\n", "bad.yaml:2"), ("\t- x\n", "bad.yaml:1")],
    ids=["unclosed flow", "bad indentation", "tab"],
)
def test_malformed_yaml_is_one_input_error_with_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")

    with pytest.raises(InputError) as error:
        load_manifests([tmp_path])

    assert where in str(error.value)
    assert "\n" not in str(error.value)


def test_a_key_twice_in_one_mapping_is_refused_with_its_second_line(tmp_path: Path) -> None:
    # kubectl and Argo CD refuse such a file; taking the last value silently would judge a manifest nobody applies.
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {}\n  name: b\n", encoding="utf-8"
    )

    with pytest.raises(InputError, match=r"cm\.yaml:6: .*'name' appears twice"):
        load_manifests([tmp_path])


def test_the_same_key_in_different_mappings_and_merge_keys_are_fine(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
          labels: &labels {name: x}
          annotations:
            <<: *labels
            other: y
        data: {name: z}
        """
        },
    )

    assert [m.name for m in load_manifests([tmp_path])] == ["a"]


def test_undecodable_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")

    with pytest.raises(InputError, match=r"binary\.yaml"):
        load_manifests([tmp_path])


def test_suppressions_cover_their_line_and_the_next_line_of_content(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "x.tf": """
        # harness:ignore EKS021 the emulator has no IMDS
        # (second comment line)

        resource "a" "b" {}
        x = 1 // harness:ignore EKS022, EKS023 two rules at once
        # harness:ignore EKS010
        """
        },
    )

    found = suppressions([tmp_path / "x.tf"])

    assert [(s.rule_id, s.reason, sorted(s.applies_to)) for s in found] == [
        ("EKS021", "the emulator has no IMDS", [1, 4]),
        ("EKS022", "two rules at once", [5]),
        ("EKS023", "two rules at once", [5]),
        ("EKS010", "", [6, 7]),
    ]


def test_kustomize_resources_json6902_and_strategic_merge_patches(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": """
            resources: [deploy.yaml]
            namespace: apps
            patches:
              - target: {kind: Deployment, name: web}
                patch: |-
                  - op: replace
                    path: /spec/replicas
                    value: 3
              - path: resources.yaml
            """,
            "base/deploy.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              replicas: 1
              template:
                spec:
                  containers:
                    - name: web
                      image: nginx
            """,
            "base/resources.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              template:
                spec:
                  containers:
                    - name: web
                      resources: {requests: {cpu: 100m}}
            """,
        },
    )
    consumed: set[Path] = set()

    (web,) = build((tmp_path / "base").resolve(), {}, consumed)

    assert web.namespace == "apps"
    assert web.get("spec", "replicas") == 3
    assert web.get("spec", "template", "spec", "containers", 0) == {
        "name": "web",
        "image": "nginx",
        "resources": {"requests": {"cpu": "100m"}},
    }
    assert web.where("spec", "replicas").file.name == "kustomization.yaml"
    assert (tmp_path / "base" / "deploy.yaml").resolve() in consumed


APPSET = """
    apiVersion: argoproj.io/v1alpha1
    kind: ApplicationSet
    metadata:
      name: demo
    spec:
      goTemplate: true
      generators:
        - clusters:
            selector:
              matchLabels:
                managed: "true"
      template:
        metadata:
          name: 'demo-{{ .name }}'
        spec:
          source:
            repoURL: '{{ index .metadata.annotations "repo" }}'
            path: apps/demo
            kustomize:
              patches:
                - target: {kind: ConfigMap, name: settings}
                  patch: |-
                    - op: replace
                      path: /data/cluster
                      value: '{{ index .metadata.annotations "cluster" }}'
    """
SECRET = """
    apiVersion: v1
    kind: Secret
    metadata:
      name: c1
      labels:
        argocd.argoproj.io/secret-type: cluster
        managed: "true"
      annotations:
        repo: https://example.com/r.git
        cluster: prod
    stringData:
      name: prod-cluster
      server: https://k8s.example.com
    """
CONFIG = """
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
    data:
      cluster: placeholder
    """


def test_applicationsets_render_per_cluster_secret_and_patch_their_sources(tmp_path: Path) -> None:
    write(tmp_path, {"gitops/appset.yaml": APPSET, "gitops/secret.yaml": SECRET, "apps/demo/config.yaml": CONFIG})
    gitops = [tmp_path / "gitops"]

    rendered = render(TerraformModel(), load_manifests(gitops), gitops)

    (app,) = rendered.applications
    assert app.name == "demo-prod-cluster"
    assert app.get("spec", "source", "repoURL") == "https://example.com/r.git"
    (config,) = [m for m in rendered.objects if m.kind == "ConfigMap"]
    assert config.get("data", "cluster") == "prod"
    assert config.where("data", "cluster").file.name == "appset.yaml"
    assert rendered.delivered_by[id(config)] is app


def test_an_applicationset_without_a_matching_cluster_leaves_placeholders_unresolved(tmp_path: Path) -> None:
    write(tmp_path, {"gitops/appset.yaml": APPSET, "apps/demo/config.yaml": CONFIG})
    gitops = [tmp_path / "gitops"]

    rendered = render(TerraformModel(), load_manifests(gitops), gitops)

    (config,) = [m for m in rendered.objects if m.kind == "ConfigMap"]
    assert "{{" in config.get("data", "cluster")
    assert rendered.missing_paths == []


def test_a_plan_must_have_planned_values(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text('{"format_version": "1.2"}', encoding="utf-8")
    (tmp_path / "good.json").write_text(
        '{"planned_values": {"root_module": {"child_modules": [{"resources": '
        '[{"address": "module.m.aws_x.y", "values": {"name": "n"}}]}]}}}',
        encoding="utf-8",
    )

    with pytest.raises(InputError, match="planned_values"):
        load_plan(tmp_path / "plan.json")
    assert load_plan(tmp_path / "good.json") == {"module.m.aws_x.y": {"name": "n"}}


def test_core_kinds_validate_strictly_and_custom_resources_against_pinned_crds(reference: Path) -> None:
    validator = SchemaValidator("1.35", load_reference(reference).crd_schemas)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    node_pool = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "p"},
        "spec": {
            "template": {
                "spec": {
                    "requirements": [],
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "c"},
                }
            }
        },
    }

    assert validator.problems(namespace) == []
    assert validator.problems(node_pool) == []
    assert [p.path for p in validator.problems({**namespace, "spec": {"finalizerz": []}})] == [("spec",)]
    assert "unknown field" in validator.problems({**node_pool, "spec": {**node_pool["spec"], "limit": {}}})[0].message
    assert "unknown kind" in validator.problems({"apiVersion": "example.com/v1", "kind": "Widget"})[0].message
    assert validator.problems({"kind": "Namespace"})[0].message.startswith("not a Kubernetes object")


def test_kustomize_images_set_tags_and_point_at_the_kustomization(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": """
            resources: [deploy.yaml]
            images:
              - name: example/web
                newTag: "2.0"
            """,
            "app/deploy.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              template:
                spec:
                  containers:
                    - name: web
                      image: example/web:1.0
                    - name: sidecar
                      image: example/other:1.0
            """,
        },
    )

    (web,) = build((tmp_path / "app").resolve(), {}, set())

    assert [c["image"] for c in web.get("spec", "template", "spec", "containers")] == [
        "example/web:2.0",
        "example/other:1.0",
    ]
    assert web.where("spec", "template", "spec", "containers", 0, "image").file.name == "kustomization.yaml"


KUSTOMIZE_CASES = Path(__file__).parent / "fixtures" / "kustomize"


@pytest.mark.parametrize(
    ("case", "replicas", "why"),
    [
        ("applies", 3, None),
        ("replace-missing", 1, "replace /spec/replica: the path does not exist (RFC 6902 requires it; kustomize adds"),
        ("remove-missing", 1, "remove /metadata/annotations/example.com~1absent: the path does not exist"),
        ("add-missing-parent", 1, "add /spec/strategy/rollingUpdate: its parent does not exist"),
        ("test-fails", 1, "test /spec/replicas: the test fails"),
    ],
)
def test_json6902_patches_follow_rfc_6902(case: str, replicas: int, why: str | None) -> None:
    """Each refused patch is reported; the object is what kustomize builds (tests/integration/test_gate_oracles.py
    compares with the real kustomize): unchanged, except that kustomize applies a replace of a missing key as add."""
    problems: list[tuple[Location, str]] = []

    deployment = next(
        m for m in build((KUSTOMIZE_CASES / case).resolve(), {}, set(), problems=problems) if m.kind == "Deployment"
    )

    assert deployment.get("spec", "replicas") == replicas
    assert [why in message for _, message in problems] == ([True] if why else [])
    if case == "replace-missing":
        assert deployment.get("spec", "replica") == 3
    if why:
        assert problems[0][0].file.name == "kustomization.yaml"
