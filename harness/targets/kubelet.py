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
own address, /etc/hosts naming each Service at its ClusterIP, and kube-proxy's part: each ClusterIP and port
forwarded to one of the Service's ready endpoints, from the run's proxy namespace (there is no DNS server, and the
proxy is userspace: infra/targets.yaml `service_routing`).

`python -m harness.targets.kubelet --folder FOLDER` runs it as the run's supervised process.
Over 600 lines on purpose: one class whose methods are the steps a kubelet takes for a pod, sharing its loop's state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from harness.kube import podspec
from harness.processes import HOST, Supervised, Supervisor
from harness.targets import pod_network
from harness.targets.containers import PID_SUFFIX, ContainerRun, last_words, probe_succeeds
from harness.targets.nodes import NODE_LEASES, node_heartbeat, node_lease

PROCESS = "kubelet"  # its name among the run's processes
READY_TIMEOUT_S = 60.0
SYNC_S = 1.0
HEARTBEAT_S = 10.0
VOLUME_SYNC_S = 10.0
CRASH_LOOP_EXITS = 3  # a container restarted within seconds is waited for; one that exits this often is not
BACKOFF_RESET_S = 600.0  # running this long, a container's back-off starts again
STOP_GRACE_CAP_S = 30.0
STOP_S = 5.0  # what the kubelet's own stop gives its containers after SIGTERM
# What an image declares as its environment before the pod's (every image the ops nodes run sets this PATH).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CALLERS = "callers.json"  # in the kubelet's folder: ServiceAccount user -> the workload its pods belong to
CONFIG = "kubelet.json"  # in the kubelet's folder: its Config
# In the kubelet's folder: workload -> {"line": its containers' last exit, "at": when (UTC, ISO 8601), "crash_loop":
# one of its containers exited CRASH_LOOP_EXITS times in a row and waits for its restart}.
CRASHES = "crashes.json"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Config:
    nodes: list[str]
    folder: Path
    run_id: str
    kubeconfig: str
    api_port: int
    forward: list[int]
    services: str  # the API server's Service range (--service-cluster-ip-range), local to every pod
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
        self.proxy = pod_network.create_service_proxy(self.bridge, config.services)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.forwarders = pod_network.Forwarders(self.target)
        self.heartbeat_at = 0.0
        self.addresses: dict[str, str] = {}
        self.routes: dict[podspec.Route, podspec.Route | None] = {}
        self.crashes: dict[str, tuple[str, str]] = {}  # workload -> (its last exit, when)
        self.recorded_crashes: dict[str, dict[str, Any]] = {}
        self.recorded_callers: dict[str, str] = {}
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
        services = self.core.list_service_for_all_namespaces(_preload_content=False).json()["items"]
        slices = self.discovery.list_endpoint_slice_for_all_namespaces(_preload_content=False).json()["items"]
        ready = podspec.ready_endpoints(slices)
        self.addresses = podspec.service_addresses(services, ready)
        self.routes = podspec.service_routes(services, ready)
        for uid in [uid for uid in self.pods if uid not in listed]:
            self.remove(self.pods.pop(uid))
        callers = {}
        asyncio.run_coroutine_threadsafe(self.forwarders.open(self.proxy, self.routes), self.loop).result()
        listened = [(HOST, port) for port in self.config.forwarded()]
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
            callers[f"system:serviceaccount:{pod['metadata']['namespace']}:{account}"] = podspec.workload(pod)
            self.sync_pod(run, clock, listened)
        if callers != self.recorded_callers:
            (self.config.folder / CALLERS).write_text(json.dumps(callers, indent=2, sort_keys=True), encoding="utf-8")
            self.recorded_callers = callers
        self.record_crashes()

    def record_crashes(self) -> None:
        """Each workload whose container exited (an exit the restart policy restarts): its last exit, and whether one
        of its containers is in a crash loop (CRASH_LOOP_EXITS exits in a row, waiting for its restart)."""
        looping = {
            podspec.workload(run.pod)
            for run in self.pods.values()
            for container in run.containers.values()
            if container.waiting
            and container.waiting[0] == "CrashLoopBackOff"
            and container.restarts >= CRASH_LOOP_EXITS
        }
        record = {
            name: {"line": line, "at": at, "crash_loop": name in looping} for name, (line, at) in self.crashes.items()
        }
        if record != self.recorded_crashes:
            (self.config.folder / CRASHES).write_text(json.dumps(record, indent=2), encoding="utf-8")
            self.recorded_crashes = record

    def pod_folder(self, pod: Mapping[str, Any]) -> Path:
        metadata = pod["metadata"]
        return self.config.folder / f"{metadata['namespace']}_{metadata['name']}"

    # -- one pod ------------------------------------------------------------------------------------------------
    def target(self, listened: pod_network.Address) -> pod_network.Address | None:
        """Where a pod's connection to `listened` goes: this machine's same loopback port, or a Service's endpoint."""
        return listened if listened[0] == HOST else self.routes.get(listened)

    def sync_pod(self, run: PodRun, clock: float, listened: list[pod_network.Address]) -> None:
        if run.pod["metadata"].get("deletionTimestamp"):
            self.terminate(run, clock)
            return
        if not run.namespace:
            run.folder.mkdir(parents=True, exist_ok=True)
            run.namespace = pod_network.create_sandbox(self.bridge, run.index, self.config.services)
            run.ip = self.bridge.address(run.index)
            run.started = now()
        asyncio.run_coroutine_threadsafe(self.forwarders.open(run.namespace, listened), self.loop).result()
        spec = podspec.with_pod_identity(run.pod, self.config.credentials_url)
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
            if not podspec.restarts_after(policy, code):
                container.waiting = None
                return
            log = run.folder / f"{container.name}.log"
            self.crashes[podspec.workload(run.pod)] = (
                f"{podspec.workload(run.pod)} (pod {run.name}, container {container.name}) exited with code {code}: "
                f"{container.terminated['message'] or 'no output'} (log: {log})",
                datetime.now(timezone.utc).isoformat(),
            )
            if clock - container.started_clock > BACKOFF_RESET_S:
                container.restarts = 0
            container.restarts += 1
            container.next_start = clock + podspec.backoff(container.restarts)
            container.waiting = ("CrashLoopBackOff", f"back-off restarting failed container {container.name}")
            return
        if container.terminated and not podspec.restarts_after(policy, int(container.terminated["exitCode"])):
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
        image = self.config.images.get(podspec.repository(made.image))
        if image is None:
            container.waiting = (
                "ErrImagePull",
                f"the local target builds no binary for {podspec.repository(made.image)}",
            )
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
            "KUBERNETES_SERVICE_HOST": HOST,
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
        fresh = {
            volume
            for volume, (issued, lifetime) in run.tokens.items()
            if not podspec.token_due(issued, lifetime, clock)
        }
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
        hosts = podspec.hosts_file(run.ip, name, self.addresses)
        if hosts != run.hosts:
            (run.folder / "hosts").write_text(hosts, encoding="utf-8")
            run.hosts = hosts
        for file, text in (
            ("resolv.conf", podspec.resolv_conf(run.pod["metadata"]["namespace"])),
            ("hostname", name + "\n"),
        ):
            path = run.folder / file
            if not path.exists():
                path.write_text(text, encoding="utf-8")

    def image_of(self, spec: Mapping[str, Any], name: str) -> str:
        every = [*(spec["spec"].get("initContainers") or []), *spec["spec"]["containers"]]
        return str(next(c for c in every if c["name"] == name).get("image", ""))

    # -- what the API server hears ------------------------------------------------------------------------------
    def report(self, run: PodRun) -> None:
        spec = run.pod["spec"]
        every = [*(spec.get("initContainers") or []), *spec["containers"]]
        statuses = {c["name"]: run.containers[c["name"]].status() for c in every if c["name"] in run.containers}
        where = podspec.PodPlace(self.bridge.gateway, run.ip, run.started, bool(run.namespace))
        status = podspec.pod_status(spec, statuses, run.config_error, where, now())
        comparable = {**status, "conditions": [(c["type"], c["status"]) for c in status["conditions"]]}
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
            lease = node_lease(node, micro)
            try:
                self.coordination.patch_namespaced_lease(node, NODE_LEASES, {"spec": lease["spec"]})
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.coordination.create_namespaced_lease(NODE_LEASES, lease)
            self.core.patch_node_status(node, {"status": node_heartbeat(node, self.bridge.gateway, stamp)})

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
