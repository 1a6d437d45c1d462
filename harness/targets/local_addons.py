"""infra/addons on the local target's cluster: by `terraform apply infra/addons` where its helm and kubernetes
providers can be installed (`terraform_variables`: the run's kubeconfig, the pinned chart folders, the pinned
module's upstream files); elsewhere release by release, in the order infra/addons declares them (its depends_on
order), with the helm CLI from that root's own definitions (harness.targets.releases), each waited for as its
helm_release waits. infra/targets.yaml declares the second way (`local_target.addons_without_terraform`).
Either way each release's pods run on the ops nodes' kubelet, and a crashed or refused controller ends the wait in
those words (harness.targets.local.watched).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.errors import InputError
from harness.gate.api import build_model
from harness.gate.model import Model
from harness.project import local_target, reference_dir, repo_root
from harness.run import Run
from harness.targets.controlplane import ControlPlane
from harness.targets.local import GITOPS_URL, watched
from harness.targets.releases import chart_folder, install, release, secret, upstream_file
from harness.toolchain.build import entry_for, locate, shipped_data
from harness.toolchain.components import BY_NAME

ADDONS_ROOT = ("infra", "addons")


def addon_addresses(root: Path) -> list[str]:
    """infra/addons' in-cluster resources in declaration order, which is their depends_on order
    (tests/unit/test_local_target.py holds every depends_on to it)."""
    model = build_model([root], [], reference_dir())
    kinds = ("helm_release", "kubernetes_secret_v1", "kubernetes_manifest")
    resources = sorted((r for r in model.terraform.resources if r.type in kinds), key=lambda r: (str(r.file), r.line))
    return [r.address for r in resources]


def chart_dir(chart: str, version: str, root: Path) -> Path:
    """A release's chart: a folder of infra/addons itself, else the pinned chart folder (its controller module's,
    else the reference data's)."""
    local = Path(chart)
    if local.is_absolute() or (root / local).is_dir():
        return root / local
    return chart_folder(reference_dir(), chart, version, shipped_data())


def apply_upstream_file(plane: ControlPlane, model: Model, address: str) -> None:
    """A resource Terraform would fill from an upstream tag over HTTP, applied from the pinned module's copy."""
    declared = next((u for u in local_target().upstream_files if address.startswith(u.resource + "[")), None)
    if declared is None:
        raise InputError(
            f"infra/addons: {address} is not declared in infra/targets.yaml local_target.upstream_files: "
            "the local target cannot tell what it holds"
        )
    version = entry_for(BY_NAME[declared.component]).version
    path = upstream_file(model, declared, address, version, shipped_data())
    plane.kubectl("apply", "--server-side", "-f", str(path))
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    if manifest.get("kind") == "CustomResourceDefinition":  # what comes next creates objects of its kind
        plane.crd_established(manifest["metadata"]["name"])


def install_addons(
    run: Run, plane: ControlPlane, outputs: Mapping[str, Any], variables: Mapping[str, Any]
) -> list[str]:
    """infra/addons' releases and secret, in order, each release waited for as Terraform's helm_release does (its
    pods run on the ops nodes' kubelet); returns what went in. A controller whose identity is refused while its
    release waits (a call by its RBAC, its credentials for want of an association, an AWS call by its IAM policy),
    or whose pod crashed, is named at once."""
    root = repo_root().joinpath(*ADDONS_ROOT)
    # The run's input values, as `terraform apply -var` would give them (run id and expiry tag what the
    # controllers create; without them the defaults, empty, would stand).
    model = build_model([root], [], reference_dir(), variables=variables)
    work = run.path("addons")
    work.mkdir(parents=True, exist_ok=True)
    installed = []
    for address in addon_addresses(root):
        if address.startswith("kubernetes_secret_v1."):
            plane.kubectl("apply", "-f", "-", stdin=json.dumps(secret(model, address, outputs, variables)))
        elif address.startswith("kubernetes_manifest."):
            apply_upstream_file(plane, model, address)
        else:
            chosen = release(model, address, outputs, variables)
            install(
                locate("helm"),
                plane.kubeconfig,
                chart_dir(chosen.chart, chosen.version, root),
                chosen,
                work,
                watch=lambda: watched(run, plane),
            )
        installed.append(address)
    return installed


def git_trust(run: Run, plane: ControlPlane) -> dict[str, str]:
    """The run's Git endpoint is a private Git server with the run's CA: host -> that CA, for infra/addons'
    gitops_repo_certificates (Argo CD's argocd-tls-certs-cm, as a user of a private Git server fills it)."""
    host = str(urlsplit(str(run.settings[GITOPS_URL])).hostname)
    return {host: plane.pki.path("ca.crt").read_text(encoding="utf-8")}


def terraform_variables(plane: ControlPlane) -> dict[str, Any]:
    """What `terraform apply infra/addons` takes on this machine besides the run's inputs: the run's API server
    (kubeconfig_path), each chart from its pinned folder (chart_folders; no chart repository is reached) and each
    upstream file's folder in the pinned module (local_target.upstream_files' folder_variable)."""
    root = repo_root().joinpath(*ADDONS_ROOT)
    model = build_model([root], [], reference_dir())
    charts = {}
    for resource in model.terraform.of_type("helm_release"):
        chart = resource.attrs.get("chart")
        if not isinstance(chart, str):
            continue  # not a chart the harness can tell: Terraform names what is wrong with it
        folder = chart_dir(chart, str(resource.attrs.get("version")), root)
        if not folder.is_relative_to(root):  # infra/addons' own charts (bootstrap) are its folders already
            charts[chart] = str(folder)
    variables: dict[str, Any] = {"kubeconfig_path": str(plane.kubeconfig), "chart_folders": charts}
    for declared in local_target().upstream_files:
        version = entry_for(BY_NAME[declared.component]).version
        addresses = [r.address for r in model.terraform.resources if r.address.startswith(declared.resource + "[")]
        folders = {upstream_file(model, declared, a, version, shipped_data()).parent for a in addresses}
        if len(folders) != 1:
            raise InputError(
                f"infra/targets.yaml local_target.upstream_files: {declared.resource}'s files are not in one folder "
                f"of the pinned {declared.component} module ({sorted(map(str, folders))})"
            )
        variables[declared.folder_variable] = str(folders.pop())
    return variables
