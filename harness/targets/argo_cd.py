"""Argo CD as host processes on the local target: redis (Debian's package), repo-server, application-controller
and applicationset-controller, the way upstream runs them out of cluster for development (its Procfile).

The chart installed by infra/addons puts the configuration into the cluster (argocd-cm, argocd-cmd-params-cm,
RBAC, CRDs); the processes read it from there through the API server, in the namespace the chart went into.
`ARGOCD_FAKE_IN_CLUSTER` makes the in-cluster destination (https://kubernetes.default.svc) the local API server.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentProblem
from harness.processes import HOST, Supervisor, free_port
from harness.targets.controlplane import ControlPlane, answers
from harness.toolchain.build import locate

READY_TIMEOUT_S = 90.0


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
) -> ArgoCd:
    """redis, then the repo-server (trusting the Git endpoint's CA), then both controllers."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise EnvironmentProblem("redis-server: not found; Argo CD needs it (Debian: apt-get install redis-server)")
    redis_port = free_port()
    redis = f"{HOST}:{redis_port}"
    supervisor.start(
        "redis",
        [redis_server, "--bind", HOST, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        ready=lambda: _redis_answers(redis_port),
        timeout_s=READY_TIMEOUT_S,
    )
    tls = work / "tls"  # repo-server trusts a Git server's certificate from a file named after its host
    tls.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(git_ca, tls / HOST)
    ssh = work / "ssh"
    ssh.mkdir(exist_ok=True)
    (ssh / "ssh_known_hosts").touch()
    tools = os.pathsep.join(str(locate(name).parent) for name in ("helm", "kustomize"))
    env = {
        **base_env,
        "KUBECONFIG": str(cluster.pki.path("admin.kubeconfig")),
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_TLS_DATA_PATH": str(tls),
        "ARGOCD_SSH_DATA_PATH": str(ssh),
        "PATH": os.pathsep.join((tools, base_env.get("PATH", ""))),
    }
    argocd = locate("argocd")
    repo_port, repo_metrics = free_port(), free_port()
    supervisor.start(
        "argocd-repo-server",
        [
            str(argocd.parent / "argocd-repo-server"),
            f"--address={HOST}",
            f"--port={repo_port}",
            "--disable-tls",
            f"--redis={redis}",
            f"--metrics-address={HOST}",
            f"--metrics-port={repo_metrics}",
        ],
        ready=lambda: answers(f"http://{HOST}:{repo_metrics}/healthz?full=true"),
        timeout_s=READY_TIMEOUT_S,
        env=env,
        cwd=work,
    )
    repo_server = f"{HOST}:{repo_port}"
    controller_metrics = free_port()
    supervisor.start(
        "argocd-application-controller",
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
        env=env,
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
        env=env,
        cwd=work,
    )
    return ArgoCd(namespace, repo_server)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False
