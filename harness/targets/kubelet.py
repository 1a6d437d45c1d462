"""The kubelet of the ops nodes on the local target: every pod the scheduler binds to one of them runs as processes
of this machine, made from the pod's own spec, as EKS's kubelet runs it from its image.

Per pod: a network namespace on the run's bridge (harness.targets.pod_network) whose address is the pod IP, a mount
namespace whose root holds the image's files (the toolchain's build of its binary, `local_target.pod_images`) and
the pod's volumes at their paths (harness.kube.podspec: Secrets, ConfigMaps, its ServiceAccount's bound token,
emptyDirs), its hostname, its environment and its command line (harness.targets.pod_enter). Then what a kubelet
does for every pod, one code path for all: init containers in order, readiness probes, restarts with back-off
(CrashLoopBackOff in the pod's status), tokens renewed before they expire, a deleted pod's processes stopped
within its grace period, and the ops Nodes' heartbeat (their Lease and Ready condition). KWOK keeps the pods of
the nodes Karpenter launches.

What EKS adds to a pod beyond its spec is added here, once for every pod: the Pod Identity webhook's environment and
token (pointing at the run's agent), the emulator as the AWS endpoint, the `kubernetes` Service as the API server's
own address, and /etc/hosts naming each Service's ready endpoint (there is no kube-proxy or DNS server:
infra/targets.yaml `service_routing`).

`python -m harness.targets.kubelet --folder FOLDER` runs it as the run's supervised process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from harness.kube import podspec
from harness.processes import Supervised, Supervisor, runs, stop_group
from harness.targets import pod_network
from harness.targets.controlplane import AUDIENCE

PROCESS = "kubelet"  # its name among the run's processes
READY_TIMEOUT_S = 60.0
SYNC_S = 1.0
HEARTBEAT_S = 10.0
LEASE_S = 40
VOLUME_SYNC_S = 10.0
RENEW_AT = 0.8  # of a projected token's life
BACKOFF_FIRST_S, BACKOFF_CAP_S, BACKOFF_RESET_S = 10.0, 300.0, 600.0
STOP_GRACE_CAP_S = 30.0
STOP_S = 5.0  # what the kubelet's own stop gives its containers after SIGTERM
PID_SUFFIX = ".pid"  # in a pod's folder, per container: "<pid> <its executable>"
# What an image declares as its environment before the pod's (every image the ops nodes run sets this PATH).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POD_IDENTITY_MOUNT = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
POD_IDENTITY_VOLUME = "eks-pod-identity-token"
CALLERS = "callers.json"  # in the kubelet's folder: ServiceAccount user -> the workload its pods belong to
CONFIG = "kubelet.json"  # in the kubelet's folder: its Config
# In the kubelet's folder: workload -> {"line": its containers' last exit, "down": one still waits for its restart}.
CRASHES = "crashes.json"
CLUSTER_DOMAIN = "cluster.local"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def repository(image: str) -> str:
    """An image reference without its digest and tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def workload(pod: Mapping[str, Any]) -> str:
    """The name a pod's controller is known by in the run's messages."""
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return str(labels.get("app.kubernetes.io/name") or labels.get("app") or metadata["name"])


def with_pod_identity(pod: Mapping[str, Any], credentials_url: str) -> dict[str, Any]:
    """The pod as EKS's Pod Identity webhook leaves it: the agent's credentials URL and a token of audience
    pods.eks.amazonaws.com in every container (on EKS the URL is the node's 169.254.170.23; here the run's agent)."""
    mutated = copy.deepcopy(dict(pod))
    spec = mutated["spec"]
    spec.setdefault("volumes", []).append(
        {
            "name": POD_IDENTITY_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": AUDIENCE,
                            "expirationSeconds": 86400,
                            "path": POD_IDENTITY_VOLUME,
                        }
                    }
                ]
            },
        }
    )
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        container.setdefault("env", []).extend(
            [
                {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": credentials_url},
                {
                    "name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    "value": f"{POD_IDENTITY_MOUNT}/{POD_IDENTITY_VOLUME}",
                },
            ]
        )
        container.setdefault("volumeMounts", []).append(
            {"name": POD_IDENTITY_VOLUME, "mountPath": POD_IDENTITY_MOUNT, "readOnly": True}
        )
    return mutated


def service_names(service: Mapping[str, Any]) -> list[str]:
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def service_addresses(services: Sequence[Mapping[str, Any]], slices: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each Service's DNS names -> the address of one of its ready endpoints (the first, in a stable order)."""
    ready: dict[tuple[str, str], list[str]] = {}
    for endpoint_slice in slices:
        metadata = endpoint_slice["metadata"]
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") and service:
                ready.setdefault((metadata["namespace"], service), []).extend(endpoint.get("addresses") or [])
    found = {}
    for service in services:
        key = (service["metadata"]["namespace"], service["metadata"]["name"])
        if addresses := sorted(ready.get(key, [])):
            found.update({name: addresses[0] for name in service_names(service)})
    return found


def hosts_file(pod_ip: str, hostname: str, addresses: Mapping[str, str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{hostname}"]
    by_address: dict[str, list[str]] = {}
    for name, address in sorted(addresses.items()):
        by_address.setdefault(address, []).append(name)
    lines += [f"{address}\t{' '.join(names)}" for address, names in sorted(by_address.items())]
    return "\n".join(lines) + "\n"


def resolv_conf(namespace: str) -> str:
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"search {search}\nnameserver 127.0.0.1\noptions ndots:5\n"


def token_due(issued: float, lifetime: float, now: float) -> bool:
    """Whether a projected token is renewed: once 80 % of its life has passed, as the kubelet does."""
    return now - issued >= lifetime * RENEW_AT


def backoff(restarts: int) -> float:
    """The kubelet's crash-loop back-off before the `restarts`th restart: 10 s, doubled each time, at most 5 min."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(restarts - 1, 0), BACKOFF_CAP_S))


def restarts_after(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


@dataclass
class ContainerRun:
    """One container's process and what its status says about it."""

    name: str
    image: str
    init: bool
    process: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    started_clock: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    ready: bool = False
    probe_due: float = 0.0
    failures: int = 0
    terminated: dict[str, Any] | None = None  # the last exit: {exitCode, reason, message, startedAt, finishedAt}
    waiting: tuple[str, str] | None = None  # (reason, message) while it does not run

    def signal(self, sig: int) -> None:
        """`sig` to the container's process group: its process and whatever it started (git for the repo-server),
        as a runtime stops a container's cgroup."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def state(self) -> dict[str, Any]:
        if self.process is not None and self.process.poll() is None:
            return {"running": {"startedAt": self.started_at}}
        if self.waiting:
            return {"waiting": {"reason": self.waiting[0], "message": self.waiting[1]}}
        if self.terminated:
            return {"terminated": self.terminated}
        return {"waiting": {"reason": "ContainerCreating"}}

    def status(self) -> dict[str, Any]:
        running = self.process is not None and self.process.poll() is None
        found: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready and running,
            "started": running,
            "restartCount": self.restarts,
            "state": self.state(),
        }
        if self.process is not None:
            found["containerID"] = f"process://{self.process.pid}"
        if self.terminated and (running or self.waiting):
            found["lastState"] = {"terminated": self.terminated}
        return found


@dataclass
class Config:
    nodes: list[str]
    folder: Path
    run_id: str
    kubeconfig: str
    api_port: int
    forward: list[int]
    images: dict[str, dict[str, Any]]  # repository -> {"files": {path in the image: host file}, "entrypoint": [...]}
    env: dict[str, str]  # what every container gets besides its spec (the emulator as its AWS endpoint)
    credentials_url: str
    ready_file: Path

    @classmethod
    def read(cls, folder: Path) -> Config:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        return cls(**{**raw, "folder": Path(raw["folder"]), "ready_file": Path(raw["ready_file"])})

    def forwarded(self) -> list[int]:
        """The ports to forward, read anew (a service the run starts later, its Git endpoint, is added to them)."""
        return list(Config.read(self.folder).forward)

    def write(self) -> None:
        raw = {**self.__dict__, "folder": str(self.folder), "ready_file": str(self.ready_file)}
        (self.folder / CONFIG).write_text(json.dumps(raw, indent=2), encoding="utf-8")


def forward_port(folder: Path, port: int) -> None:
    """Have the pods of the kubelet in `folder` reach this machine's loopback `port` at their own."""
    config = Config.read(folder)
    if port not in config.forward:
        config.forward.append(port)
        config.write()


@dataclass
class PodRun:
    """One pod of an ops node and its sandbox."""

    uid: str
    pod: dict[str, Any]
    index: int
    folder: Path
    namespace: str = ""  # its network namespace
    ip: str = ""
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    volumes_synced: float = 0.0
    tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # volume -> (issued, lifetime)
    config_error: str = ""
    reported: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    stopping_since: float = 0.0
    hosts: str = ""

    @property
    def name(self) -> str:
        return podspec.name_of(self.pod)


class Kubelet:
    def __init__(self, config: Config) -> None:
        from kubernetes import client as k8s
        from kubernetes.config import new_client_from_config

        self.config = config
        api = new_client_from_config(config_file=config.kubeconfig)  # type: ignore[no-untyped-call]
        self.core: Any = k8s.CoreV1Api(api)
        self.discovery: Any = k8s.DiscoveryV1Api(api)
        self.coordination: Any = k8s.CoordinationV1Api(api)
        self.pods: dict[str, PodRun] = {}
        self.next_index = 1
        self.bridge = pod_network.create_bridge(config.run_id)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.forwarders = pod_network.Forwarders("127.0.0.1")
        self.heartbeat_at = 0.0
        self.addresses: dict[str, str] = {}
        self.crashes: dict[str, str] = {}
        self.recorded_crashes: dict[str, dict[str, Any]] = {}
        self.stopping = False

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stopping:
            try:
                self.sync()
            except Exception as exc:  # a kubelet keeps going when the API server does not answer
                print(f"retrying: {type(exc).__name__}: {exc}", flush=True)
            else:
                self.config.ready_file.touch()
            time.sleep(SYNC_S)

    def sync(self) -> None:
        clock = time.monotonic()
        if clock >= self.heartbeat_at:
            self.heartbeat()
            self.heartbeat_at = clock + HEARTBEAT_S
        listed = {
            pod["metadata"]["uid"]: pod
            for pod in self.core.list_pod_for_all_namespaces(_preload_content=False).json()["items"]
            if (pod.get("spec") or {}).get("nodeName") in self.config.nodes
        }
        self.addresses = service_addresses(
            self.core.list_service_for_all_namespaces(_preload_content=False).json()["items"],
            self.discovery.list_endpoint_slice_for_all_namespaces(_preload_content=False).json()["items"],
        )
        for uid in [uid for uid in self.pods if uid not in listed]:
            self.remove(self.pods.pop(uid))
        callers = {}
        for uid, pod in listed.items():
            run = self.pods.get(uid)
            if run is None:
                if pod.get("metadata", {}).get("deletionTimestamp"):
                    self.delete_pod(pod)
                    continue
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                run = self.pods[uid] = PodRun(uid, pod, self.next_index, self.pod_folder(pod))
                self.next_index += 1
            run.pod = pod
            account = pod["spec"].get("serviceAccountName") or "default"
            callers[f"system:serviceaccount:{pod['metadata']['namespace']}:{account}"] = workload(pod)
            self.sync_pod(run, clock)
        (self.config.folder / CALLERS).write_text(json.dumps(callers, indent=2, sort_keys=True), encoding="utf-8")
        self.record_crashes()

    def record_crashes(self) -> None:
        """Each workload whose container exited (an exit the restart policy restarts): its last exit, and whether
        one of its containers is still waiting to be restarted."""
        waiting = {
            workload(run.pod)
            for run in self.pods.values()
            for container in run.containers.values()
            if container.waiting and container.waiting[0] == "CrashLoopBackOff"
        }
        record = {name: {"line": line, "down": name in waiting} for name, line in self.crashes.items()}
        if record != self.recorded_crashes:
            (self.config.folder / CRASHES).write_text(json.dumps(record, indent=2), encoding="utf-8")
            self.recorded_crashes = record

    def pod_folder(self, pod: Mapping[str, Any]) -> Path:
        metadata = pod["metadata"]
        return self.config.folder / f"{metadata['namespace']}_{metadata['name']}"

    # -- one pod ------------------------------------------------------------------------------------------------
    def sync_pod(self, run: PodRun, clock: float) -> None:
        if run.pod["metadata"].get("deletionTimestamp"):
            self.terminate(run, clock)
            return
        if not run.namespace:
            run.folder.mkdir(parents=True, exist_ok=True)
            run.namespace = pod_network.create_sandbox(self.bridge, run.index)
            run.ip = self.bridge.address(run.index)
            run.started = now()
        ports = self.config.forwarded()
        asyncio.run_coroutine_threadsafe(self.forwarders.open(run.namespace, ports), self.loop).result()
        spec = with_pod_identity(run.pod, self.config.credentials_url)
        self.write_network_files(run)
        try:
            if clock >= run.volumes_synced + VOLUME_SYNC_S:
                self.sync_volumes(run, spec)
                run.volumes_synced = clock
            run.config_error = ""
        except podspec.ContainerConfigError as exc:
            run.config_error = str(exc)
        if not run.config_error:
            self.sync_containers(run, spec, clock)
        self.report(run)

    def sync_containers(self, run: PodRun, spec: Mapping[str, Any], clock: float) -> None:
        policy = str(spec["spec"].get("restartPolicy") or "Always")
        inits = [c["name"] for c in spec["spec"].get("initContainers") or []]
        for name in inits:
            container = run.containers.setdefault(name, ContainerRun(name, self.image_of(spec, name), init=True))
            if container.terminated and container.terminated.get("exitCode") == 0:
                continue
            self.keep_running(run, spec, container, "OnFailure" if policy == "Always" else policy, clock)
            return  # the next init container waits for this one to succeed
        for item in spec["spec"]["containers"]:
            name = item["name"]
            container = run.containers.setdefault(name, ContainerRun(name, self.image_of(spec, name), init=False))
            self.keep_running(run, spec, container, policy, clock)
            self.probe(run, item, container, clock)

    def keep_running(
        self, run: PodRun, spec: Mapping[str, Any], container: ContainerRun, policy: str, clock: float
    ) -> None:
        process = container.process
        if process is not None and process.poll() is None:
            return
        if process is not None:  # it exited since the last look
            container.signal(signal.SIGKILL)  # what it started goes with it
            code = process.returncode if process.returncode >= 0 else 128 - process.returncode
            container.terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": last_words(run.folder / f"{container.name}.log"),
                "startedAt": container.started_at,
                "finishedAt": now(),
            }
            container.process = None
            container.ready = False
            if not restarts_after(policy, code):
                container.waiting = None
                return
            log = run.folder / f"{container.name}.log"
            self.crashes[workload(run.pod)] = (
                f"{workload(run.pod)} (pod {run.name}, container {container.name}) exited with code {code}: "
                f"{container.terminated['message'] or 'no output'} (log: {log})"
            )
            if clock - container.started_clock > BACKOFF_RESET_S:
                container.restarts = 0
            container.restarts += 1
            container.next_start = clock + backoff(container.restarts)
            container.waiting = ("CrashLoopBackOff", f"back-off restarting failed container {container.name}")
            return
        if container.terminated and not restarts_after(policy, int(container.terminated["exitCode"])):
            return
        if clock < container.next_start:
            return
        self.start(run, spec, container)

    def start(self, run: PodRun, spec: Mapping[str, Any], container: ContainerRun) -> None:
        sources = self.sources(run, spec)
        try:
            made = podspec.container(spec, container.name, sources)
        except podspec.ContainerConfigError as exc:
            container.waiting = ("CreateContainerConfigError", str(exc))
            return
        image = self.config.images.get(repository(made.image))
        if image is None:
            container.waiting = ("ErrImagePull", f"the local target builds no binary for {repository(made.image)}")
            return
        argv = [*(made.command if made.command is not None else image["entrypoint"]), *made.args]
        if not argv:
            container.waiting = ("CreateContainerError", "no command: the image declares no entrypoint")
            return
        mounts = [{"source": host, "target": path, "read_only": True} for path, host in image["files"].items()]
        for mount in made.mounts:
            source = run.folder / "volumes" / mount.volume
            if mount.sub_path:
                source = source / mount.sub_path
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append({"source": str(source), "target": mount.path, "read_only": mount.read_only})
        termination = run.folder / f"{container.name}.termination-log"
        termination.touch()
        mounts += [
            {"source": str(run.folder / name), "target": f"/etc/{name}", "read_only": False}
            for name in ("hosts", "resolv.conf", "hostname")
        ]
        mounts.append({"source": str(termination), "target": "/dev/termination-log", "read_only": False})
        env = {
            "PATH": IMAGE_PATH,
            "HOME": "/",  # a runtime's default for an image that names no home
            **image.get("env", {}),
            "HOSTNAME": run.pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.config.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.config.api_port),
            **self.config.env,
            **made.env,
        }
        layer = run.folder / container.name
        enter = {
            "root": str(layer / "root"),
            "layer": str(layer / "layer"),
            "hostname": run.pod["metadata"]["name"][:63],
            "mounts": mounts,
            "argv": argv,
            "env": env,
            "working_dir": made.working_dir,
        }
        spec_file = run.folder / f"{container.name}.start.json"
        spec_file.write_text(json.dumps(enter, indent=2), encoding="utf-8")
        log = (run.folder / f"{container.name}.log").open("ab")
        command = [
            "nsenter",  # into the pod's network namespace, then mount, UTS and IPC namespaces of its own
            f"--net={pod_network.NETNS_DIR / run.namespace}",
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            sys.executable,
            "-m",
            "harness.targets.pod_enter",
            str(spec_file),
        ]
        container.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        pid_file = run.folder / f"{container.name}{PID_SUFFIX}"
        pid_file.write_text(f"{container.process.pid} {argv[0]}", encoding="utf-8")
        container.started_at, container.started_clock = now(), time.monotonic()
        container.waiting = None
        container.failures = 0
        container.probe_due = container.started_clock

    def probe(self, run: PodRun, item: Mapping[str, Any], container: ContainerRun, clock: float) -> None:
        """The readiness probe, on its schedule; without one a running container is ready."""
        if container.process is None or container.process.poll() is not None:
            return
        probe = item.get("readinessProbe")
        if not probe:
            container.ready = True
            return
        if clock < container.probe_due + float(probe.get("initialDelaySeconds") or 0) * (container.failures == 0):
            return
        container.probe_due = clock + float(probe.get("periodSeconds") or 10)
        if probe_succeeds(probe, item, run.ip):
            container.failures, container.ready = 0, True
        else:
            container.failures += 1
            if container.failures >= int(probe.get("failureThreshold") or 3):
                container.ready = False

    def terminate(self, run: PodRun, clock: float) -> None:
        """A deleted pod: SIGTERM, SIGKILL after its grace period, then the kubelet's final delete."""
        if not run.stopping_since:
            run.stopping_since = clock
            for container in run.containers.values():
                container.signal(signal.SIGTERM)
        grace = min(float(run.pod["spec"].get("terminationGracePeriodSeconds") or 30), STOP_GRACE_CAP_S)
        alive = [c for c in run.containers.values() if c.process is not None and c.process.poll() is None]
        if alive and clock - run.stopping_since < grace:
            return
        self.remove(self.pods.pop(run.uid))
        self.delete_pod(run.pod)

    def delete_pod(self, pod: Mapping[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        metadata = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": metadata["uid"]}}
        try:
            self.core.delete_namespaced_pod(metadata["name"], metadata["namespace"], body=body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def remove(self, run: PodRun) -> None:
        """Stop a pod's processes and take its sandbox down."""
        for container in run.containers.values():
            container.kill()
        if run.namespace:
            self.forwarders.close(run.namespace)
            pod_network.delete_sandbox(run.namespace)

    # -- what a pod sees ----------------------------------------------------------------------------------------
    def sources(self, run: PodRun, spec: Mapping[str, Any]) -> podspec.PodSources:
        namespace = spec["metadata"]["namespace"]
        config_maps, secrets = podspec.referenced(spec)
        return podspec.PodSources(
            config_maps={name: found for name in config_maps if (found := self.read("config_map", name, namespace))},
            secrets={name: found for name in secrets if (found := self.read("secret", name, namespace))},
            node_allocatable=self.allocatable(str(spec["spec"]["nodeName"])),
            token=lambda audience, seconds: self.token(spec, audience, seconds),
        )

    def read(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            answer = getattr(self.core, f"read_namespaced_{kind}")(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(answer.json())

    def allocatable(self, node: str) -> dict[str, str]:
        found = self.core.read_node(node, _preload_content=False).json()
        return dict((found.get("status") or {}).get("allocatable") or {})

    def token(self, pod: Mapping[str, Any], audience: str, seconds: int) -> str:
        """A token of the pod's ServiceAccount bound to the pod (it dies with the pod), as its projected volume
        gets it."""
        metadata = pod["metadata"]
        body = {
            "spec": {
                "audiences": [audience] if audience else None,
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": metadata["name"], "uid": metadata["uid"]},
            }
        }
        account = pod["spec"].get("serviceAccountName") or "default"
        answer = self.core.create_namespaced_service_account_token(
            account, metadata["namespace"], body, _preload_content=False
        )
        return str(answer.json()["status"]["token"])

    def sync_volumes(self, run: PodRun, spec: Mapping[str, Any]) -> None:
        """Write each volume's files where they changed (a ConfigMap's update reaches the pod as on a kubelet);
        a token is asked for anew once 80 % of its life is spent."""
        sources = self.sources(run, spec)
        clock = time.monotonic()
        fresh = {volume for volume, (issued, lifetime) in run.tokens.items() if not token_due(issued, lifetime, clock)}
        for volume in spec["spec"].get("volumes") or []:
            name = volume["name"]
            folder = run.folder / "volumes" / name
            if name in fresh:
                continue  # a projected volume whose token is not due: the rest of it does not change
            files = podspec.volume_files(spec, volume, sources)
            folder.mkdir(parents=True, exist_ok=True)
            if files is None:
                continue
            for relative, content in files.items():
                path = folder / relative
                if not path.exists() or path.read_bytes() != content:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    staged = path.with_name(f".{path.name}.new")
                    staged.write_bytes(content)
                    os.replace(staged, path)
            for token_volume, _audience, seconds in podspec.token_sources(spec):
                if token_volume == name:
                    run.tokens[name] = (clock, float(seconds))

    def write_network_files(self, run: PodRun) -> None:
        name = run.pod["metadata"]["name"]
        hosts = hosts_file(run.ip, name, self.addresses)
        if hosts != run.hosts:
            (run.folder / "hosts").write_text(hosts, encoding="utf-8")
            run.hosts = hosts
        for file, text in (("resolv.conf", resolv_conf(run.pod["metadata"]["namespace"])), ("hostname", name + "\n")):
            path = run.folder / file
            if not path.exists():
                path.write_text(text, encoding="utf-8")

    def image_of(self, spec: Mapping[str, Any], name: str) -> str:
        every = [*(spec["spec"].get("initContainers") or []), *spec["spec"]["containers"]]
        return str(next(c for c in every if c["name"] == name).get("image", ""))

    # -- what the API server hears ------------------------------------------------------------------------------
    def report(self, run: PodRun) -> None:
        spec = run.pod["spec"]
        inits = [
            run.containers[c["name"]].status() for c in spec.get("initContainers") or [] if c["name"] in run.containers
        ]
        mains = [run.containers[c["name"]].status() for c in spec["containers"] if c["name"] in run.containers]
        if run.config_error:
            mains = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "CreateContainerConfigError", "message": run.config_error}},
                }
                for c in spec["containers"]
            ]
        initialized = all((s["state"].get("terminated") or {}).get("exitCode") == 0 for s in inits) and len(
            inits
        ) == len(spec.get("initContainers") or [])
        ready = bool(mains) and len(mains) == len(spec["containers"]) and all(s["ready"] for s in mains)
        policy = spec.get("restartPolicy") or "Always"
        finished = [s["state"].get("terminated") for s in mains]
        phase = "Running" if any(s["started"] for s in mains) else "Pending"
        if mains and all(finished) and policy != "Always":
            phase = "Succeeded" if all(t["exitCode"] == 0 for t in finished if t) else "Failed"
        if phase == "Failed" and policy == "OnFailure":
            phase = "Running"
        stamp = now()

        def condition(kind: str, value: bool) -> dict[str, str]:
            return {"type": kind, "status": str(value), "lastTransitionTime": stamp}

        conditions = [
            condition("PodReadyToStartContainers", bool(run.namespace)),
            condition("Initialized", initialized),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.bridge.gateway,
            "hostIPs": [{"ip": self.bridge.gateway}],
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started,
            "conditions": conditions,
            "containerStatuses": mains,
            **({"initContainerStatuses": inits} if spec.get("initContainers") else {}),
        }
        comparable = {**status, "conditions": [(c["type"], c["status"]) for c in conditions]}
        if comparable == run.reported:
            return
        metadata = run.pod["metadata"]
        self.core.patch_namespaced_pod_status(metadata["name"], metadata["namespace"], {"status": status})
        run.reported = comparable

    def heartbeat(self) -> None:
        """What a kubelet tells the API server about its node: the Lease renewed, the Ready condition."""
        from kubernetes.client.exceptions import ApiException

        stamp, micro = now(), micro_now()
        for node in self.config.nodes:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_S, "renewTime": micro},
            }
            try:
                self.coordination.patch_namespaced_lease(node, "kube-node-lease", {"spec": lease["spec"]})
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.coordination.create_namespaced_lease("kube-node-lease", lease)
            conditions = [
                {"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}", "lastHeartbeatTime": stamp}
                for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ]
            conditions.append(
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": stamp,
                }
            )
            status = {
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": self.bridge.gateway},
                    {"type": "Hostname", "address": node},
                ],
                "phase": "Running",
            }
            self.core.patch_node_status(node, {"status": status})

    def stop(self) -> None:
        self.stopping = True
        for run in list(self.pods.values()):
            for container in run.containers.values():
                container.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for run in list(self.pods.values()):
            for container in run.containers.values():
                if container.process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        container.process.wait(max(deadline - time.monotonic(), 0.1))
        for run in list(self.pods.values()):
            self.remove(run)
        pod_network.delete_network(self.config.run_id)


def stop_leftovers(folder: Path) -> list[str]:
    """The container processes a kubelet that was killed left running (their pid files under `folder`), each with
    its process group; what it stopped."""
    stopped = []
    for pid_file in sorted(folder.glob(f"*/*{PID_SUFFIX}")):
        number, _, executable = pid_file.read_text(encoding="utf-8").partition(" ")
        if number.isdigit() and runs(int(number), executable):
            stop_group(int(number), functools.partial(runs, int(number), executable))
            stopped.append(f"{pid_file.parent.name}/{pid_file.name.removesuffix(PID_SUFFIX)}")
    return stopped


def probe_succeeds(probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str) -> bool:
    """One readiness probe: an HTTP GET answered 200-399 or a TCP connection accepted; an exec or gRPC probe is not
    run here (infra/targets.yaml `pod_probes`), and counts as passed."""
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}

    def port_of(handler: Mapping[str, Any]) -> int:
        port = handler.get("port")
        return int(ports.get(port, 0)) if isinstance(port, str) and not port.isdigit() else int(port or 0)

    if handler := probe.get("httpGet"):
        scheme = str(handler.get("scheme") or "HTTP").lower()
        host = handler.get("host") or pod_ip
        url = f"{scheme}://{host}:{port_of(handler)}{handler.get('path') or '/'}"
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            return 200 <= requests.get(url, timeout=timeout, verify=False).status_code < 400
        except requests.RequestException:
            return False
    if handler := probe.get("tcpSocket"):
        import socket

        try:
            with socket.create_connection((handler.get("host") or pod_ip, port_of(handler)), timeout=1):
                return True
        except OSError:
            return False
    return True


def last_words(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][-300:] if lines else ""


def start(supervisor: Supervisor, config: Config) -> Supervised:
    """The kubelet as a supervised process of `supervisor`; ready once its first pass is done (the nodes' heartbeat
    sent, the pods bound so far started)."""
    config.ready_file.unlink(missing_ok=True)
    config.write()
    return supervisor.start(
        PROCESS,
        [sys.executable, "-m", "harness.targets.kubelet", f"--folder={config.folder}"],
        ready=config.ready_file.exists,
        timeout_s=READY_TIMEOUT_S,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.targets.kubelet", description=__doc__)
    parser.add_argument("--folder", type=Path, required=True, help=f"holds its {CONFIG}; its pods go under it")
    args = parser.parse_args(argv)
    kubelet = Kubelet(Config.read(args.folder))

    def stop(_signal: int, _frame: object) -> None:
        kubelet.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    kubelet.run()


if __name__ == "__main__":
    main()
