"""On `local`, the control plane's minor upgrade is what EKS does to it: the previous minor's API server,
controller-manager and scheduler (versions.yaml upgrade_from_kubernetes_release) give way to the pinned minor's on
the same etcd data. Every object is still there, the same object, and the new controller-manager reconciles what the
old one created. The API server never stops answering: the new one serves beside the old on the same port before the
old stops, as EKS replaces its API servers one at a time (a client's longest wait for an answer stays under
MAX_SILENCE_S; stopping the old one first left clients without an API server for about 14 s, and Karpenter's leader
lost its lease and exited). Its failing case, from a real run: the new API server pointed at other etcd data."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from harness.kube.upgrade import inventory, judge_objects_kept, judge_version
from harness.processes import Supervisor
from harness.project import versions
from harness.results import Status
from harness.targets.controlplane import ControlPlane, start_control_plane, start_etcd, upgrade_control_plane
from harness.toolchain.build import missing
from harness.toolchain.components import CONTROL_PLANE, UPGRADE_FROM

NEEDED = ["etcd", "kubectl", "kwok", *CONTROL_PLANE, *(f"{name}{UPGRADE_FROM}" for name in CONTROL_PLANE)]
pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing(NEEDED) is not None, reason=str(missing(NEEDED)))]
MAX_SILENCE_S = 3.0  # client-go's leader election renews every 2 s and gives up after 10 s without an answer
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


def longest_silence(plane: ControlPlane, done: threading.Event) -> list[float]:
    """Ask the API server for its version every 0.2 s, each on a connection of its own, until `done`; the longest
    time without an answer goes into the list returned (at once, filled when `done` is set and the thread ends)."""
    found: list[float] = []
    auth = {"cert": plane.pki.admin_cert(), "verify": str(plane.pki.path("ca.crt"))}

    def ask() -> None:
        answered, longest = time.monotonic(), 0.0
        while not done.is_set():
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{plane.server}/version", timeout=1.0, **auth).status_code == 200:
                    answered = time.monotonic()
            longest = max(longest, time.monotonic() - answered)
            time.sleep(0.2)
        found.append(longest)

    threading.Thread(target=ask, daemon=True).start()
    return found


def test_the_control_plane_moves_to_the_next_minor_and_keeps_every_object(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    try:
        plane = start_control_plane(tmp_path, supervisor, suffix=UPGRADE_FROM)
        assert judge_version(served_version(plane), versions()["upgrade_from_kubernetes_release"]).ok
        workload(plane)
        before = objects(plane)
        done = threading.Event()
        silence = longest_silence(plane, done)
        upgrade_control_plane(plane)
        done.set()
        deadline = time.monotonic() + 5
        while not silence and time.monotonic() < deadline:
            time.sleep(0.1)
        assert silence and silence[0] < MAX_SILENCE_S, f"the API server did not answer for {silence} s"
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
