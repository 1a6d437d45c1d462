"""The real Karpenter AWS provider as a host process on the local target, configured from what its chart put
into the cluster (the Deployment's environment: CLUSTER_NAME, INTERRUPTION_QUEUE, feature gates, batching...)
and pointed at the local API server and the emulator, as its own Makefile's `run` target runs it out of cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem
from harness.processes import HOST, Supervised, Supervisor, free_port
from harness.targets.controlplane import ControlPlane, PodIdentities, answers
from harness.toolchain.build import locate

PROCESS = "karpenter"  # its name among the run's processes
READY_TIMEOUT_S = 90.0
# Out-of-cluster settings the chart cannot know: one replica without a lease; no ARC zonal shift in the emulator
# (a failed lookup panics). ISOLATED_VPC stays off although moto has no Pricing API: with it, Karpenter 1.14 skips
# deleting its instance profiles (EC2NodeClass finalizer, IAM garbage collection) and leaks them; without it,
# GetProducts fails with backoff and Karpenter keeps its built-in on-demand prices.
OUT_OF_CLUSTER = {"DISABLE_LEADER_ELECTION": "true", "ENABLE_ZONAL_SHIFT": "false"}


def chart_environment(deployment: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """The controller container's environment as the chart wrote it: literal values, and the namespace the
    downward API would give (SYSTEM_NAMESPACE); resource-derived values (CPU_REQUESTS, MEMORY_LIMIT) stay out."""
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c.get("name") == "controller"
    ] or deployment["spec"]["template"]["spec"]["containers"][:1]
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "metadata.namespace":
            env[entry["name"]] = namespace
    return env


def controller_environment(
    chart_env: Mapping[str, str],
    cluster: ControlPlane,
    aws_env: Mapping[str, str],
    *,
    kubeconfig: Path,
    metrics_port: int,
    health_port: int,
) -> dict[str, str]:
    """The process's environment: AWS settings for the emulator, the chart's settings, then what only the host
    knows (API server, its ServiceAccount's kubeconfig, loopback ports that clash with nothing else the run
    serves)."""
    if not chart_env.get("CLUSTER_NAME"):
        raise EnvironmentProblem("the karpenter chart's Deployment has no CLUSTER_NAME: is settings.clusterName set?")
    return {
        **aws_env,
        **chart_env,
        **OUT_OF_CLUSTER,
        "CLUSTER_ENDPOINT": cluster.server,
        "KUBECONFIG": str(kubeconfig),
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PROBE_PORT": str(health_port),
    }


def start(
    supervisor: Supervisor,
    cluster: ControlPlane,
    *,
    namespace: str,
    release: str,
    aws_env: Mapping[str, str],
    identities: PodIdentities,
) -> Supervised:
    """Start Karpenter from the installed chart's Deployment (named after the release), as its ServiceAccount;
    ready when /readyz says so.

    `aws_env`: the emulator's endpoint, region and credentials (lb_controller.aws_environment).
    """
    installed = json.loads(cluster.kubectl("-n", namespace, "get", "deployment", release, "-o", "json"))
    metrics_port, health_port = free_port(), free_port()
    env = controller_environment(
        chart_environment(installed, namespace),
        cluster,
        identities.aws_environment(PROCESS, installed, aws_env),
        kubeconfig=identities.kubeconfig(PROCESS, installed),
        metrics_port=metrics_port,
        health_port=health_port,
    )
    return supervisor.start(
        PROCESS,
        [str(locate("karpenter"))],
        ready=lambda: answers(f"http://{HOST}:{health_port}/readyz"),
        timeout_s=READY_TIMEOUT_S,
        env=env,
    )
