"""What a controller's pinned Go module ships beside its binary (its chart, IAM policy, CRDs) replaces the reference
data's older copies, for the gate and for the local target's installs (harness.toolchain Component.ships)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.errors import EnvironmentProblem, InputError
from harness.gate.api import build_model
from harness.gate.charts import chart_folder
from harness.gate.loaders import load_reference
from harness.gate.model import Model
from harness.project import UpstreamFiles, local_target, repo_root, versions
from harness.targets.releases import upstream_file

LB = "aws-load-balancer-controller"


def shipped_lb(folder: Path, version: str = "9.9.9") -> Path:
    """A module tree as the toolchain copies it: helm/<chart>/ and docs/install/iam_policy.json."""
    chart = folder / "helm" / LB
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"name": LB, "version": version, "appVersion": f"v{version}"}))
    (chart / "values.yaml").write_text("onlyInTheModule: true\n")
    (folder / "docs" / "install").mkdir(parents=True)
    policy = {"Statement": [{"Effect": "Allow", "Action": ["ec2:OnlyInTheModule"], "Resource": "*"}]}
    (folder / "docs" / "install" / "iam_policy.json").write_text(json.dumps(policy))
    return folder


def test_a_modules_chart_and_policy_replace_the_reference_copies(reference: Path, tmp_path: Path) -> None:
    before = load_reference(reference)
    after = load_reference(reference, {LB: shipped_lb(tmp_path)})
    assert before.chart_values[LB][0] != "9.9.9"
    assert after.chart_values[LB] == ("9.9.9", {"onlyInTheModule": True})
    assert after.chart_app_versions[LB] == "v9.9.9"
    assert after.iam_actions[LB] == {"ec2:OnlyInTheModule"}
    assert "ec2:OnlyInTheModule" not in before.iam_actions[LB]
    assert after.chart_values["karpenter"] == before.chart_values["karpenter"]  # what no module ships stays


def test_a_modules_crds_replace_the_reference_schemas_of_the_same_kind(reference: Path, tmp_path: Path) -> None:
    before = load_reference(reference)
    key = next(k for k in before.crd_schemas if k[0] == "argoproj.io" and k[2] == "AppProject")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "appprojects.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {"kind": "AppProject"},
            "versions": [
                {"name": key[1], "served": True, "schema": {"openAPIV3Schema": {"description": "from the module"}}}
            ],
        },
    }
    (tmp_path / "manifests" / "crds").mkdir(parents=True)
    (tmp_path / "manifests" / "crds" / "appproject-crd.yaml").write_text(yaml.safe_dump(crd))
    after = load_reference(reference, {"argo-cd": tmp_path})
    assert after.crd_schemas[key] == {"description": "from the module"}
    assert before.crd_schemas[key] != after.crd_schemas[key]


def test_the_chart_folder_is_the_modules_for_its_version_else_the_references(reference: Path, tmp_path: Path) -> None:
    shipped = {LB: shipped_lb(tmp_path)}
    assert chart_folder(reference, LB, "9.9.9", shipped) == tmp_path / "helm" / LB
    reference_version = load_reference(reference).chart_values[LB][0]
    assert chart_folder(reference, LB, reference_version, shipped) == reference / "charts" / f"{LB}-{reference_version}"
    assert chart_folder(reference, LB, "0.0.1", shipped) is None


@pytest.fixture(scope="module")
def addons_model(reference: Path) -> Model:
    return build_model([repo_root() / "infra" / "addons"], [], reference)


def argo_crds(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "manifests" / "crds").mkdir(parents=True)
    for name in ("application", "applicationset", "appproject"):
        (tmp_path / "manifests" / "crds" / f"{name}-crd.yaml").write_text("kind: CustomResourceDefinition\n")
    return {"argo-cd": tmp_path}


def test_an_upstream_download_of_infra_addons_is_the_pinned_modules_file(addons_model: Model, tmp_path: Path) -> None:
    (declared,) = [u for u in local_target().upstream_files if u.resource == "kubernetes_manifest.argocd_crd"]
    shipped = argo_crds(tmp_path)
    version = versions()["argo_cd"]
    address = "kubernetes_manifest.argocd_crd['applicationset']"
    assert upstream_file(addons_model, declared, address, version, shipped) == (
        tmp_path / "manifests" / "crds" / "applicationset-crd.yaml"
    )
    # the URL's tag must be the component's pinned version: another version is refused, naming the source
    with pytest.raises(InputError, match=r"data\.http\.argocd_crd\['applicationset'\] has no URL under"):
        upstream_file(addons_model, declared, address, "0.0.1", shipped)
    with pytest.raises(EnvironmentProblem, match=r"argo-cd .* is not built; run `make toolchain`"):
        upstream_file(addons_model, declared, address, version, {})
    (tmp_path / "manifests" / "crds" / "applicationset-crd.yaml").unlink()
    with pytest.raises(InputError, match=r"is not among what the pinned argo-cd module ships"):
        upstream_file(addons_model, declared, address, version, shipped)
    wrong = UpstreamFiles(
        declared.resource, "data.http.no_such_source", declared.url_prefix, declared.component, declared.folder_variable
    )
    with pytest.raises(InputError, match=r"data\.http\.no_such_source\['applicationset'\] has no URL"):
        upstream_file(addons_model, wrong, address, version, shipped)


def test_every_declared_upstream_file_is_a_resource_of_infra_addons(addons_model: Model) -> None:
    addresses = {r.address for r in addons_model.terraform.resources}
    for declared in local_target().upstream_files:
        assert any(a.startswith(declared.resource + "[") for a in addresses), declared.resource
        assert any(a.startswith(declared.source + "[") for a in addresses), declared.source


def test_a_harness_without_its_toolchain_folder_checks_with_the_reference_data_alone(
    platform_tree: Callable[..., Path], reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = platform_tree()
    monkeypatch.setenv("HARNESS_REPO", str(tree))  # a checkout without toolchain/: no module ships anything
    repo_root.cache_clear()
    try:
        model = build_model([tree / "infra"], [tree / "gitops"], reference)
    finally:
        monkeypatch.delenv("HARNESS_REPO")
        repo_root.cache_clear()
    assert model.shipped == {}
    assert model.reference.chart_values[LB] == load_reference(reference).chart_values[LB]
