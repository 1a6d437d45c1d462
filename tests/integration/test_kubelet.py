"""The ops nodes' kubelet (harness.targets.kubelet) against a real control plane: it keeps its Node Ready, runs a
pod's container from the pod's own spec in a sandbox of its own (Argo CD's redis pod as its chart made it, with the
redis image the local target declares), so two replicas bind the same port side by side, each at its pod IP; the
pod's ServiceAccount token authenticates as that account and dies with the pod; a killed container shows in the
pod's status within seconds and is restarted after the back-off; a Secret the pod needs and does not find is the
kubelet's CreateContainerConfigError; a deleted pod leaves no process and no network namespace.

Skips with one line where the toolchain is not built or this machine cannot make pod networks (not root).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey
import yaml

from harness.kube import podspec
from harness.processes import Supervisor
from harness.project import local_target
from harness.targets import containers, kubelet, pod_images, pod_network
from harness.targets.controlplane import SERVICE_CIDR, ControlPlane, control_plane
from harness.toolchain.build import missing

UNAVAILABLE = missing(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"])
UNAVAILABLE = UNAVAILABLE or pod_network.unavailable()
pytestmark = [pytest.mark.integration, pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))]
NODE = "ops-kubelet-0"
PASSWORD = "s3cret"
REDIS = "ecr-public.aws.com/docker/library/redis"
RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "kube" / "recorded" / "addons" / "pods_argocd.yaml"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, kubelet.Config]]:
    """A control plane, one Node with no KWOK annotation, and the kubelet for it (the redis image only)."""
    folder = tmp_path_factory.mktemp("kubelet")
    with control_plane(folder / "cluster") as plane:
        manifest = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"role": "ops"}}}
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        plane.kubectl("create", "namespace", "argocd")
        # The pods run as the namespace's default ServiceAccount, which the controller-manager adds to it.
        plane.kubectl("-n", "argocd", "wait", "--for=create", "serviceaccount/default", "--timeout=60s")
        api_port = int(plane.server.rsplit(":", 1)[1])
        config = kubelet.Config(
            nodes=[NODE],
            folder=folder / "kubelet",
            run_id=f"kubelet-test-{os.getpid()}",
            kubeconfig=str(plane.pki.path("admin.kubeconfig")),
            api_port=api_port,
            forward=[api_port],
            services=SERVICE_CIDR,
            images=pod_images.resolve({REDIS: local_target().pod_images[REDIS]}),
            env={},
            credentials_url="http://127.0.0.1:9/v1/credentials",
            ready_file=folder / "kubelet" / "kubelet.ready",
        )
        config.folder.mkdir()
        supervisor = Supervisor(folder / "logs")
        try:
            kubelet.start(supervisor, config)
            yield plane, config
        finally:
            supervisor.stop_all()
            containers.stop_leftovers(config.folder)
            pod_network.delete_network(config.run_id)


def redis_pod(name: str) -> dict[str, Any]:
    """Argo CD's redis pod as its chart made it in a recorded run, bound to the test's node, with a readiness probe
    on its port."""
    recorded = next(
        p
        for p in yaml.safe_load(RECORDED.read_text(encoding="utf-8"))["items"]
        if p["metadata"]["name"] == "argocd-redis-d68876dc5-tp2fc"
    )
    metadata = {k: recorded["metadata"][k] for k in ("namespace", "labels")}
    spec = {k: v for k, v in recorded["spec"].items() if k not in ("nodeName", "serviceAccount", "volumes")}
    spec["volumes"] = [v for v in recorded["spec"]["volumes"] if "projected" in v]  # the ServiceAccount's token
    (container,) = spec["containers"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] == spec["volumes"][0]["name"]]
    container["readinessProbe"] = {"tcpSocket": {"port": "redis"}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata, "name": name},
        "spec": {**spec, "nodeName": NODE},
    }


def wait(
    plane: ControlPlane, name: str, holds: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pod = json.loads(plane.kubectl("-n", "argocd", "get", "pod", name, "-o", "json"))
        if holds(pod):
            return dict(pod)
        assert time.monotonic() < deadline, f"pod {name} never got there: {json.dumps(pod.get('status'))}"
        time.sleep(0.5)


def token_review(plane: ControlPlane, token: str) -> dict[str, Any]:
    """The API server's TokenReview of `token`."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    return dict(json.loads(plane.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review))))


def container_pid(config: kubelet.Config, container: str) -> int:
    """The pid of a running container ("<namespace>_<pod>/<container>"), from the kubelet's own record."""
    pid, _executable = containers.running(config.folder)[container]
    return pid


def pod_namespaces(config: kubelet.Config) -> list[str]:
    """The network namespaces of the pods the kubelet runs (not its Service proxy's)."""
    bridge = pod_network.bridge_name(config.run_id)
    return sorted(p.name for p in pod_network.NETNS_DIR.glob(f"{bridge}-*") if p.name.rsplit("-", 1)[1].isdigit())


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def answers(pod_ip: str) -> bool:
    with valkey.Valkey(host=pod_ip, port=6379, password=PASSWORD, socket_timeout=2) as redis:
        return redis.ping() is True


def test_the_node_is_kept_ready_by_its_lease_and_condition(node: tuple[ControlPlane, kubelet.Config]) -> None:
    plane, _ = node
    plane.kubectl("wait", "node", NODE, "--for=condition=Ready", "--timeout=30s")
    lease = json.loads(plane.kubectl("-n", "kube-node-lease", "get", "lease", NODE, "-o", "json"))
    assert lease["spec"]["holderIdentity"] == NODE


def test_a_pod_whose_secret_is_missing_waits_with_the_kubelets_config_error(
    node: tuple[ControlPlane, kubelet.Config],
) -> None:
    plane, _ = node
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(redis_pod("redis-without-secret")))
    pod = wait(plane, "redis-without-secret", lambda p: bool(p["status"].get("containerStatuses")))
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    assert "Secret argocd-redis not found" in status["state"]["waiting"]["message"]
    plane.kubectl("-n", "argocd", "delete", "pod", "redis-without-secret", "--wait=true", "--timeout=60s")


def test_two_replicas_bind_the_same_port_each_at_its_pod_ip_and_run_as_their_account(
    node: tuple[ControlPlane, kubelet.Config],
) -> None:
    plane, config = node
    folder = config.folder
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-redis", "namespace": "argocd"}}
    plane.kubectl("apply", "-f", "-", stdin=json.dumps({**secret, "stringData": {"auth": PASSWORD}}))
    for name in ("redis-a", "redis-b"):
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(redis_pod(name)))
    pods = [wait(plane, name, ready) for name in ("redis-a", "redis-b")]
    ips = [pod["status"]["podIP"] for pod in pods]
    assert len(set(ips)) == 2 and all(answers(ip) for ip in ips)  # both serve 6379, each in its own namespace
    # The token in its ServiceAccount volume is the pod's account's, bound to the pod.
    (token_file,) = folder.glob("argocd_redis-a/volumes/kube-api-access-*/token")
    reviewed = token_review(plane, token_file.read_text())
    assert reviewed["status"]["user"]["username"] == "system:serviceaccount:argocd:default"
    assert reviewed["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["redis-a"]


# Run inside a pod's network namespace: redis AUTH + PING at an address and port; prints True, or the error's kind.
PING = """
import sys, valkey
try:
    print(valkey.Valkey(host=sys.argv[1], port=int(sys.argv[2]), password=sys.argv[3], socket_timeout=3).ping())
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_service_reaches_a_ready_endpoint_at_its_target_port_and_one_without_any_refuses(
    node: tuple[ControlPlane, kubelet.Config],
) -> None:
    """kube-proxy's part: inside a pod, a Service's ClusterIP and port lead to one of its ready endpoints at the target
    port (80 -> redis's 6379); a Service no ready pod backs refuses; /etc/hosts names each at its ClusterIP."""
    plane, config = node
    labels = redis_pod("any")["metadata"]["labels"]
    for name, selector, port in (("redis-front", labels, 80), ("redis-nobody", {"app": "nobody"}, 81)):
        ports = [{"name": "tcp-redis", "port": port, "targetPort": 6379}]
        metadata = {"name": name, "namespace": "argocd"}
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"selector": selector, "ports": ports},
        }
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(service))
    front, nobody = (
        json.loads(plane.kubectl("-n", "argocd", "get", "service", name, "-o", "json"))["spec"]["clusterIP"]
        for name in ("redis-front", "redis-nobody")
    )
    namespace = pod_namespaces(config)[0]

    def ping(address: str, port: int) -> str:
        command = ["ip", "netns", "exec", namespace, sys.executable, "-c", PING, address, str(port), PASSWORD]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    deadline = time.monotonic() + 30
    while (answer := ping(front, 80)) != "True":
        assert time.monotonic() < deadline, f"redis-front ({front}:80) never answered: {answer}"
        time.sleep(1)
    assert ping(nobody, 81).startswith("ConnectionError")
    hosts = (config.folder / "argocd_redis-a" / "hosts").read_text(encoding="utf-8")
    assert f"{front}\tredis-front redis-front.argocd redis-front.argocd.svc " in hosts
    assert f"{nobody}\tredis-nobody " in hosts


def test_a_killed_container_shows_in_its_pod_at_once_and_is_restarted_after_the_back_off(
    node: tuple[ControlPlane, kubelet.Config],
) -> None:
    plane, config = node
    folder = config.folder
    pid = container_pid(config, "argocd_redis-a/redis")
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def shows_it(pod: dict[str, Any]) -> bool:
        (status,) = pod["status"]["containerStatuses"]
        waiting = str(status["state"].get("waiting", {}).get("reason"))
        return int(status["restartCount"]) == 1 and waiting == "CrashLoopBackOff"

    pod = wait(plane, "redis-a", shows_it, timeout=10)
    assert time.monotonic() - killed < 5
    (status,) = pod["status"]["containerStatuses"]
    assert status["lastState"]["terminated"]["exitCode"] == 137 and not ready(pod)
    crashes = json.loads((folder / kubelet.CRASHES).read_text())
    assert "exited with code 137" in crashes["argocd-redis"]["line"]
    assert crashes["argocd-redis"]["crash_loop"] is False  # one exit: restarted within seconds, not a loop
    pod = wait(plane, "redis-a", ready, timeout=30)  # restarted after the 10 s back-off
    assert time.monotonic() - killed >= podspec.BACKOFF_FIRST_S
    assert answers(pod["status"]["podIP"])


def test_a_deleted_pod_leaves_no_process_and_no_namespace_and_its_token_dies_with_it(
    node: tuple[ControlPlane, kubelet.Config],
) -> None:
    plane, config = node
    folder = config.folder
    pid = container_pid(config, "argocd_redis-b/redis")
    (token_file,) = folder.glob("argocd_redis-b/volumes/kube-api-access-*/token")
    plane.kubectl("-n", "argocd", "delete", "pod", "redis-b", "--wait=true", "--timeout=60s")
    assert not Path(f"/proc/{pid}").exists()
    namespaces = sorted(p.name for p in pod_network.NETNS_DIR.glob(f"{pod_network.bridge_name(config.run_id)}-*"))
    assert len(pod_namespaces(config)) == 1, namespaces  # redis-a's only, beside the Service proxy's
    assert f"{pod_network.bridge_name(config.run_id)}-proxy" in namespaces
    assert not token_review(plane, token_file.read_text())["status"].get("authenticated")
