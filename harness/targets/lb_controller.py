"""The AWS Load Balancer Controller as a host process on the local target, configured from what its chart put
into the cluster (the Deployment's arguments), pointed at the emulator, serving its webhooks on loopback.

The chart's webhook configurations name an in-cluster Service; here they are pointed at the process's URL with
the run's CA, so the API server really calls them (Service and Ingress creates go through them).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.processes import HOST, Supervised, Supervisor, free_port
from harness.targets.controlplane import ControlPlane, PodIdentities, answers
from harness.toolchain.build import locate

WEBHOOK_CONFIGURATIONS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
PROCESS = "aws-load-balancer-controller"  # its name among the run's processes
READY_TIMEOUT_S = 60.0
# Out-of-cluster settings the chart cannot know: no leader election, no add-on services the emulator lacks.
OUT_OF_CLUSTER = (
    "--enable-leader-election=false",
    "--enable-shield=false",
    "--enable-waf=false",
    "--enable-wafv2=false",
)


def point_webhooks_at(configuration: dict[str, Any], url: str, ca_bundle: bytes) -> dict[str, Any]:
    """The webhook configuration with each webhook's Service reference replaced by `url` + its path."""
    for hook in configuration.get("webhooks") or []:
        path = (hook.get("clientConfig", {}).get("service") or {}).get("path", "")
        hook["clientConfig"] = {"url": f"{url}{path}", "caBundle": base64.b64encode(ca_bundle).decode()}
    return configuration


def controller_command(
    chart_args: list[str], cluster: ControlPlane, kubeconfig: Path, webhook_port: int, probe_port: int
) -> list[str]:
    pki = cluster.pki
    return [
        str(locate("aws-load-balancer-controller")),
        *chart_args,
        f"--kubeconfig={kubeconfig}",
        *OUT_OF_CLUSTER,
        f"--webhook-bind-port={webhook_port}",
        f"--webhook-cert-dir={pki.folder}",
        "--webhook-cert-file=apiserver.crt",  # the run's loopback serving certificate (SAN 127.0.0.1)
        "--webhook-key-file=apiserver.key",
        f"--metrics-bind-addr={HOST}:{free_port()}",
        f"--health-probe-bind-addr={HOST}:{probe_port}",
    ]


def start(
    supervisor: Supervisor,
    cluster: ControlPlane,
    *,
    namespace: str,
    release: str,
    aws_env: Mapping[str, str],
    identities: PodIdentities,
) -> Supervised:
    """Start the controller from the installed chart's Deployment (named after the release), as its
    ServiceAccount, then route the chart's webhooks to it."""
    installed = json.loads(cluster.kubectl("-n", namespace, "get", "deployment", release, "-o", "json"))
    chart_args = list(installed["spec"]["template"]["spec"]["containers"][0].get("args") or [])
    webhook_port, probe_port = free_port(), free_port()

    process = supervisor.start(
        PROCESS,
        controller_command(chart_args, cluster, identities.kubeconfig(PROCESS, installed), webhook_port, probe_port),
        ready=lambda: answers(f"http://{HOST}:{probe_port}/readyz"),
        timeout_s=READY_TIMEOUT_S,
        env=identities.aws_environment(PROCESS, installed, aws_env),
    )
    ca = cluster.pki.path("ca.crt").read_bytes()
    for kind in WEBHOOK_CONFIGURATIONS:
        for name in cluster.kubectl("get", kind, "-o", "name", "-l", f"app.kubernetes.io/instance={release}").split():
            configuration = json.loads(cluster.kubectl("get", name, "-o", "json"))
            pointed = point_webhooks_at(configuration, f"https://{HOST}:{webhook_port}", ca)
            cluster.kubectl("replace", "-f", "-", stdin=json.dumps(pointed))
    return process


def aws_environment(endpoint: str, region: str, base: Mapping[str, str]) -> dict[str, str]:
    """The controller's AWS settings for the emulator: every service at its endpoint, throwaway credentials."""
    return {
        **base,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": base.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": base.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }
