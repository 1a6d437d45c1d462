"""On `local`, the control plane's minor upgrade is what EKS does to it: the previous minor's API server,
controller-manager and scheduler (versions.yaml upgrade_from_kubernetes_release) give way to the pinned minor's on
the same etcd data. Every object is still there, the same object, and the new controller-manager reconciles what the
old one created. Its failing case, from a real run: the new API server pointed at other etcd data."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.kube.upgrade import inventory, judge_objects_kept, judge_version
from harness.processes import Supervisor
from harness.project import versions
from harness.results import Status
from harness.targets.controlplane import ControlPlane, start_control_plane, start_etcd, upgrade_control_plane
from harness.toolchain.build import missing
from harness.toolchain.components import CONTROL_PLANE, UPGRADE_FROM

NEEDED = ["etcd", "kubectl", "kwok", *CONTROL_PLANE, *(f"{name}{UPGRADE_FROM}" for name in CONTROL_PLANE)]
pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing(NEEDED) is not None, reason=str(missing(NEEDED)))]
KINDS = ("namespaces", "configmaps", "serviceaccounts", "deployments", "replicasets", "services")
CUSTOM_KINDS = ("customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com")
WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def served_version(plane: ControlPlane) -> str:
    return str(json.loads(plane.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"])


def objects(plane: ControlPlane) -> dict[str, str]:
    """The workload's kinds the API server serves (a CRD lost with its data serves no kind), every object of them."""
    served = set(plane.kubectl("api-resources", "-o", "name").split())
    kinds = [*KINDS, *(kind for kind in CUSTOM_KINDS if kind in served)]
    return inventory(json.loads(plane.kubectl("get", ",".join(kinds), "-A", "-o", "json"))["items"])


def workload(plane: ControlPlane) -> None:
    """A namespace, a Deployment (the controller-manager makes its ReplicaSet), a CRD and one of its objects."""
    plane.kubectl("create", "namespace", "game-2048")
    plane.kubectl("-n", "game-2048", "create", "deployment", "game", "--image=example/game:1.0.0", "--replicas=2")
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(WIDGETS))
    plane.crd_established("widgets.example.com")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "game-2048"}}
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(widget))
    wait_for_replicas(plane, "2")


def wait_for_replicas(plane: ControlPlane, replicas: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = plane.kubectl("-n", "game-2048", "get", "replicasets", "-o", "jsonpath={.items[*].spec.replicas}")
        if found.split() == [replicas]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the controller-manager did not make the game's ReplicaSet {replicas} replicas: {found!r}")


def test_the_control_plane_moves_to_the_next_minor_and_keeps_every_object(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    try:
        plane = start_control_plane(tmp_path, supervisor, suffix=UPGRADE_FROM)
        assert judge_version(served_version(plane), versions()["upgrade_from_kubernetes_release"]).ok
        workload(plane)
        before = objects(plane)
        upgrade_control_plane(plane)
        served = judge_version(served_version(plane), versions()["kubernetes_release"])
        assert served.ok, served.why
        kept = judge_objects_kept(before, objects(plane))
        assert kept.status is Status.PASS, kept.why
        # The new minor's controller-manager reconciles what the old one created.
        plane.kubectl("-n", "game-2048", "scale", "deployment", "game", "--replicas=3")
        wait_for_replicas(plane, "3")
    finally:
        supervisor.stop_all()


def test_a_new_api_server_on_other_etcd_data_is_named_losing_the_objects(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    try:
        plane = start_control_plane(tmp_path, supervisor, suffix=UPGRADE_FROM)
        workload(plane)
        before = objects(plane)
        elsewhere = replace(plane, etcd=start_etcd(supervisor, tmp_path / "other-etcd"))
        upgrade_control_plane(elsewhere)
        kept = judge_objects_kept(before, objects(elsewhere))
        assert kept.status is Status.FAIL
        lost = kept.evidence["lost"]
        assert {"Namespace/game-2048", "Deployment/game-2048/game", "Widget/game-2048/w"} <= set(lost), kept.why
        assert kept.why.endswith(f"of {len(before)} objects"), kept.why
    finally:
        supervisor.stop_all()
