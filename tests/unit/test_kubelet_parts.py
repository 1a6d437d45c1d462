"""The pure parts of the ops nodes' kubelet (harness.targets.kubelet): what EKS adds to a pod, how Services are named
to a pod, the crash-loop back-off, a container's status as the API reads it, and its readiness probe against a real
HTTP server and a closed port."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from kube_fixtures import items, named

from harness.kube import podspec
from harness.processes import HOST, free_port
from harness.project import local_target
from harness.run import create_run
from harness.targets import containers, kubelet, local, pod_images


def test_an_image_is_looked_up_by_its_repository_whatever_its_tag_or_digest() -> None:
    karpenter = "public.ecr.aws/karpenter/controller:1.14.1@sha256:445baefaaa689029cc12ac1f659b916b0b82fb14308ce536f"
    assert podspec.repository(karpenter) == "public.ecr.aws/karpenter/controller"
    assert podspec.repository("registry.local:5000/argocd") == "registry.local:5000/argocd"
    assert podspec.repository("quay.io/argoproj/argocd:v3.6.2") == "quay.io/argoproj/argocd"


def test_every_image_of_the_recorded_argo_cd_release_is_one_the_local_target_runs() -> None:
    declared = local_target().pod_images
    images = {
        podspec.repository(c["image"])
        for p in items("recorded/addons/pods_argocd.yaml")
        for c in p["spec"]["containers"]
    }
    assert images <= set(declared), images - set(declared)


def test_the_pod_identity_webhooks_mutation_reaches_every_container_and_leaves_the_pod_as_it_was() -> None:
    pod = named(items("recorded/addons/pods_argocd.yaml"), "argocd-repo-server-cc6cdd9cc-mp5ls")
    mutated = podspec.with_pod_identity(pod, "http://127.0.0.1:9000/v1/credentials")
    for container in [*mutated["spec"]["initContainers"], *mutated["spec"]["containers"]]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:9000/v1/credentials"
        assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == (
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
        )
    (token,) = [v for v in mutated["spec"]["volumes"] if v["name"] == podspec.POD_IDENTITY_VOLUME]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "pods.eks.amazonaws.com"
    assert all(v["name"] != podspec.POD_IDENTITY_VOLUME for v in pod["spec"]["volumes"])  # a copy was mutated


def service(name: str, cluster_ip: str, *ports: tuple[str, int]) -> dict[str, Any]:
    spec = {"clusterIP": cluster_ip, "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    return {"metadata": {"name": name, "namespace": "argocd"}, "spec": spec}


def endpoint_slice(service_name: str, ports: dict[str, int], *endpoints: tuple[str, bool]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "argocd", "labels": {"kubernetes.io/service-name": service_name}},
        "ports": [{"name": name, "port": port, "protocol": "TCP"} for name, port in ports.items()],
        "endpoints": [{"addresses": [address], "conditions": {"ready": ready}} for address, ready in endpoints],
    }


SERVICES = [
    service("argocd-repo-server", "172.20.0.30", ("server", 8081), ("metrics", 8084)),
    service("argocd-redis", "172.20.0.40", ("tcp-redis", 6379)),
    service("argocd-redis-ha", "None", ("tcp-redis", 6379)),
]
SLICES = [
    endpoint_slice("argocd-repo-server", {"server": 8081}, ("10.250.1.9", False), ("10.250.1.11", True)),
    endpoint_slice("argocd-redis", {"tcp-redis": 6379}, ("10.250.1.10", False)),
    endpoint_slice("argocd-redis-ha", {"tcp-redis": 6379}, ("10.250.1.12", True)),
]


def test_services_are_named_at_their_cluster_ip_and_a_headless_one_at_a_ready_endpoint() -> None:
    found = podspec.service_addresses(SERVICES, podspec.ready_endpoints(SLICES))
    assert found["argocd-repo-server.argocd.svc.cluster.local"] == "172.20.0.30"
    assert found["argocd-redis"] == "172.20.0.40"  # named without a ready endpoint, as cluster DNS does
    assert found["argocd-redis-ha.argocd"] == "10.250.1.12"
    hosts = podspec.hosts_file("10.250.1.7", "argocd-application-controller-0", found)
    assert "10.250.1.7\targocd-application-controller-0\n" in hosts
    assert "172.20.0.30\targocd-repo-server argocd-repo-server.argocd argocd-repo-server.argocd.svc " in hosts


def test_a_service_port_leads_to_a_ready_endpoint_at_its_named_target_port_or_nowhere() -> None:
    """What kube-proxy programs: the ready endpoint's port of the same name; none ready, or the port not among the
    endpoints' (metrics here), leads nowhere; a headless Service has no ClusterIP to route."""
    assert podspec.service_routes(SERVICES, podspec.ready_endpoints(SLICES)) == {
        ("172.20.0.30", 8081): ("10.250.1.11", 8081),
        ("172.20.0.30", 8084): None,
        ("172.20.0.40", 6379): None,
    }


def test_the_crash_loop_back_off_doubles_from_ten_seconds_to_five_minutes() -> None:
    assert [podspec.backoff(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [10, 20, 40, 80, 160, 300, 300]


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [("Always", 0, True), ("Always", 1, True), ("OnFailure", 1, True), ("OnFailure", 0, False), ("Never", 2, False)],
)
def test_the_restart_policy_decides_whether_an_exit_restarts(policy: str, code: int, restarts: bool) -> None:
    assert podspec.restarts_after(policy, code) is restarts


def test_a_crashed_container_reads_as_crash_loop_back_off_with_its_last_exit() -> None:
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    container = containers.ContainerRun("controller", "karpenter", init=False, restarts=2)
    container.terminated = {"exitCode": 3, "reason": "Error", "message": "panic: no zonal shift", "startedAt": "t0"}
    container.waiting = ("CrashLoopBackOff", "back-off restarting failed container controller")
    status = container.status()
    assert status["ready"] is False and status["restartCount"] == 2 and status["started"] is False
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": container.waiting[1]}}
    assert status["lastState"]["terminated"]["message"] == "panic: no zonal shift"
    running = containers.ContainerRun("controller", "karpenter", init=False, ready=True)
    running.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert running.status()["state"]["running"] is not None and running.status()["ready"] is True
    finally:
        running.process.kill()
        running.process.wait()


@pytest.fixture
def http_port() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer((HOST, free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_readiness_probe_passes_on_200_and_fails_on_503_or_a_closed_port(http_port: int) -> None:
    container = {"ports": [{"name": "http", "containerPort": http_port}]}
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "timeoutSeconds": 2}
    assert containers.probe_succeeds(probe, container, HOST)
    assert not containers.probe_succeeds({"httpGet": {"path": "/other", "port": http_port}}, container, HOST)
    assert containers.probe_succeeds({"tcpSocket": {"port": http_port}}, container, HOST)
    closed = free_port()
    assert not containers.probe_succeeds({"tcpSocket": {"port": closed}}, container, HOST)
    assert not containers.probe_succeeds({"httpGet": {"path": "/readyz", "port": closed}}, container, HOST)


def test_every_toolchain_binary_an_image_takes_is_checked_before_a_local_run_starts() -> None:
    assert set(pod_images.binaries(local_target().pod_images)) <= set(local.BINARIES)


def status(name: str, *, ready: bool = False, started: bool = False, **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "started": started, "restartCount": 0, "state": state}


WHERE = podspec.PodPlace("10.250.1.1", "10.250.1.6", "t0", sandbox=True)


def phase_and_ready(spec: dict[str, Any], statuses: dict[str, dict[str, Any]], error: str = "") -> tuple[str, str]:
    found = podspec.pod_status(spec, statuses, error, WHERE, "t1")
    (ready,) = [c["status"] for c in found["conditions"] if c["type"] == "Ready"]
    return found["phase"], ready


def test_a_pods_phase_and_readiness_follow_its_containers_and_its_restart_policy() -> None:
    job = {"restartPolicy": "Never", "containers": [{"name": "secret-init"}]}
    assert phase_and_ready(job, {"secret-init": status("secret-init", started=True)}) == ("Running", "False")
    done = status("secret-init", terminated={"exitCode": 0})
    assert phase_and_ready(job, {"secret-init": done}) == ("Succeeded", "False")
    failed = status("secret-init", terminated={"exitCode": 1})
    assert phase_and_ready(job, {"secret-init": failed}) == ("Failed", "False")
    deployment = {"containers": [{"name": "controller"}], "initContainers": [{"name": "copyutil"}]}
    copied = status("copyutil", terminated={"exitCode": 0})
    serving = status("controller", ready=True, started=True, running={"startedAt": "t0"})
    assert phase_and_ready(deployment, {"copyutil": copied, "controller": serving}) == ("Running", "True")
    assert phase_and_ready(deployment, {"copyutil": copied}) == ("Pending", "False")
    found = podspec.pod_status(deployment, {}, "pod argocd/x: Secret argocd-redis not found", WHERE, "t1")
    (waiting,) = found["containerStatuses"]
    assert waiting["state"]["waiting"]["reason"] == "CreateContainerConfigError" and found["phase"] == "Pending"


def test_an_exit_counts_unless_it_came_while_the_only_api_server_was_replaced(tmp_path: Path) -> None:
    """Karpenter's leader exits when it cannot renew its lease while the local API server is swapped in an upgrade:
    an artifact of one API server (EKS replaces them one at a time), left out; the same exit after the window
    counts, and `current` keeps only a controller in a crash loop."""
    run = create_run("local", "r-crash", base=tmp_path)
    run.settings[local.CLUSTER] = {"starting": [["2026-12-07T10:00:00+00:00", "2026-12-07T10:00:15+00:00"]]}
    (tmp_path / "r-crash" / local.KUBELET).mkdir(parents=True)

    def exited(at: str, down: bool) -> None:
        line = {"line": f"karpenter (pod kube-system/karpenter-1, container controller) exited with code 1 at {at}"}
        record = {"karpenter": {**line, "at": at, "crash_loop": down}}
        (tmp_path / "r-crash" / local.KUBELET / kubelet.CRASHES).write_text(json.dumps(record), encoding="utf-8")

    exited("2026-12-07T10:00:12+00:00", down=True)  # in the swap
    assert local.crashed(run) == {}
    exited("2026-12-07T10:00:40+00:00", down=False)  # within the grace after it
    assert local.crashed(run) == {}
    exited("2026-12-07T10:01:00+00:00", down=False)  # later: the controller's own failure, restarted since
    assert "exited with code 1" in local.crashed(run)["karpenter"]
    assert local.crashed(run, current=True) == {}
    exited("2026-12-07T10:01:00+00:00", down=True)
    assert list(local.crashed(run, current=True)) == ["karpenter"]
