"""What a kubelet does when Karpenter's instance boots, for the local target: join the cluster as a Node.

For each NodeClaim that Karpenter launched (it has a providerID) and that has no Node yet, create the Node the
instance's kubelet would register: that providerID, the NodeClaim's labels and taints (its startup taints, and
karpenter.sh/unregistered:NoExecute, which Karpenter removes when it registers the node), capacity from the
instance type as EC2 describes it, and the KWOK annotation so KWOK makes it Ready and runs its pods.
It decides nothing Karpenter decides: not the instance type, the zone, the labels, the taints, or when a node
goes away (Karpenter deletes the Node of a deleted NodeClaim itself).

`python -m harness.targets.node_registrar --kubeconfig K --endpoint URL --region R --ready-file F` runs the loop as
its own supervised process, so it outlives the shell that started it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem, HarnessError
from harness.kube.api import NODE_CLAIM
from harness.processes import Supervised, Supervisor
from harness.targets.controlplane import KWOK_ANNOTATION
from harness.targets.nodes import ARCHITECTURES, max_pods

UNREGISTERED_TAINT = {"key": "karpenter.sh/unregistered", "effect": "NoExecute"}
EPHEMERAL_STORAGE = "20Gi"  # the EC2NodeClass's root volume (gitops/ops/karpenter: volumeSize 20Gi)
INTERVAL_S = 1.0
READY_TIMEOUT_S = 30.0
PROCESS = "node-registrar"  # its name among the run's processes


def node_name(provider_id: str) -> str:
    """The Node name for `aws:///<zone>/<instance-id>`: the instance id (EKS's resource-name hostnames)."""
    return provider_id.rsplit("/", 1)[-1]


def node_manifest(claim: Mapping[str, Any], instance_type: Mapping[str, Any]) -> dict[str, Any]:
    """The Node a kubelet registers for the instance Karpenter launched for `claim` (a karpenter.sh/v1 NodeClaim).

    Allocatable is the NodeClaim's: Karpenter writes the kubelet's reservations into the instance's user data, so
    the kubelet it configured reports what Karpenter computed; without one, the capacity itself.
    """
    provider_id = str(claim["status"]["providerID"])
    name = node_name(provider_id)
    spec = claim.get("spec") or {}
    capacity = {
        "cpu": str(int(instance_type["VCpuInfo"]["DefaultVCpus"])),
        "memory": f"{int(instance_type['MemoryInfo']['SizeInMiB'])}Mi",
        "pods": str(max_pods(instance_type)),
        "ephemeral-storage": EPHEMERAL_STORAGE,
    }
    allocatable = {**capacity, **{k: str(v) for k, v in (claim["status"].get("allocatable") or {}).items()}}
    architecture = ARCHITECTURES.get(str(instance_type["ProcessorInfo"]["SupportedArchitectures"][0]), "amd64")
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": architecture,
        **((claim.get("metadata") or {}).get("labels") or {}),
        "kubernetes.io/hostname": name,
    }
    taints = [*(spec.get("taints") or []), *(spec.get("startupTaints") or []), UNREGISTERED_TAINT]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": dict(KWOK_ANNOTATION)},
        "spec": {"providerID": provider_id, "taints": taints},
        "status": {"capacity": capacity, "allocatable": allocatable},
    }


def unregistered(claims: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """NodeClaims whose instance is launched, not being deleted, and that no Node names by providerID yet."""
    joined = {(n.get("spec") or {}).get("providerID") for n in nodes}
    return [
        c
        for c in claims
        if (c.get("status") or {}).get("providerID")
        and not (c.get("metadata") or {}).get("deletionTimestamp")
        and c["status"]["providerID"] not in joined
    ]


def register_once(
    list_claims: Callable[[], Sequence[Mapping[str, Any]]],
    list_nodes: Callable[[], Sequence[Mapping[str, Any]]],
    describe_type: Callable[[str], Mapping[str, Any]],
    create_node: Callable[[dict[str, Any]], None],
) -> list[str]:
    """One pass: create the Node of every unregistered NodeClaim; the names of the Nodes created."""
    created = []
    for claim in unregistered(list_claims(), list_nodes()):
        instance_type = str((claim.get("metadata") or {}).get("labels", {}).get("node.kubernetes.io/instance-type"))
        manifest = node_manifest(claim, describe_type(instance_type))
        create_node(manifest)
        created.append(manifest["metadata"]["name"])
    return created


def create_node(core: Any, manifest: dict[str, Any], conflict: type[Exception]) -> None:
    """Create the Node with its capacity in the same write, as a kubelet registers (the API server keeps a new
    Node's status). KWOK (--manage-all-nodes) gives a Node it first sees without allocatable 1k CPU, 1Ti and 1M pods,
    and a status patch sent after the create loses that race: Karpenter's node would then hold any number of pods
    and a scale-out never needs a second one. A Node that exists (a previous pass) gets its status patched."""
    try:
        core.create_node(manifest)
    except conflict as exc:
        if getattr(exc, "status", None) != 409:
            raise
        core.patch_node_status(manifest["metadata"]["name"], {"status": manifest["status"]})


def run(kubeconfig: Path, endpoint: str, region: str, ready_file: Path, interval: float = INTERVAL_S) -> None:
    import boto3
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import new_client_from_config
    from urllib3.exceptions import HTTPError

    from harness.kube.api import NotServed
    from harness.kube.client import KubernetesApiClient

    api = new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    kube = KubernetesApiClient(api)
    core: Any = k8s.CoreV1Api(api)  # takes manifests as dicts
    ec2: Any = boto3.client("ec2", endpoint_url=endpoint, region_name=region)
    types: dict[str, Mapping[str, Any]] = {}

    def describe_type(name: str) -> Mapping[str, Any]:
        if name not in types:
            (types[name],) = ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
        return types[name]

    def create(manifest: dict[str, Any]) -> None:
        create_node(core, manifest, conflict=ApiException)

    def claims() -> list[dict[str, Any]]:
        try:
            return list(kube.list_custom(NODE_CLAIM))
        except NotServed:  # Karpenter's CRDs are not installed yet: no instance of its has booted
            return []

    while True:
        try:
            for name in register_once(claims, kube.list_nodes, describe_type, create):
                print(f"registered node {name}", flush=True)
        except (HarnessError, ApiException, HTTPError) as exc:
            # As a kubelet does: an API server that does not answer (replaced in an upgrade) is asked again.
            print(f"retrying: {exc}", flush=True)
        else:
            ready_file.touch()
        time.sleep(interval)


def start(
    supervisor: Supervisor, kubeconfig: Path, *, endpoint: str, region: str, env: Mapping[str, str]
) -> Supervised:
    """The registrar as a supervised process; ready after its first pass over the NodeClaims."""
    ready_file = supervisor.log_dir / "node-registrar.ready"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "harness.targets.node_registrar",
        f"--kubeconfig={kubeconfig}",
        f"--endpoint={endpoint}",
        f"--region={region}",
        f"--ready-file={ready_file}",
    ]
    return supervisor.start(PROCESS, command, ready=ready_file.exists, timeout_s=READY_TIMEOUT_S, env=env)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.targets.node_registrar", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--endpoint", required=True, help="the EC2 endpoint (the emulator)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--ready-file", type=Path, required=True, help="touched after every pass")
    args = parser.parse_args(argv)
    try:
        run(args.kubeconfig, args.endpoint, args.region, args.ready_file)
    except EnvironmentProblem as exc:
        raise SystemExit(f"node-registrar: {exc}") from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
