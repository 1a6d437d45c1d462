"""Nodes for the local target: what kubelet would register for the instances of an EKS managed node group.

`node_manifests` is pure: from the node group as EKS describes it (labels, taints, instance types, subnets)
and the instance type as EC2 describes it, the Node objects a real node group's kubelets would create, with
the labels and taints the platform declared. harness.targets.kubelet then keeps them Ready and runs their pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.toolchain.components import control_plane_build

# EKS API taint effects -> Kubernetes taint effects.
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
ARCHITECTURES = {"x86_64": "amd64", "arm64": "arm64"}
NODE_LEASES = "kube-node-lease"  # the namespace of the kubelets' Leases
LEASE_S = 40  # a kubelet's Lease duration


def max_pods(instance_type: Mapping[str, Any]) -> int:
    """The VPC CNI's pod limit for an instance type: ENIs x (IPv4 addresses per ENI - 1) + 2 (eni-max-pods)."""
    network = instance_type["NetworkInfo"]
    return int(network["MaximumNetworkInterfaces"]) * (int(network["Ipv4AddressesPerInterface"]) - 1) + 2


def node_manifests(
    nodegroup: Mapping[str, Any],
    instance_type: Mapping[str, Any],
    subnet_zones: Sequence[str],
    kubelet_version: str,
) -> list[dict[str, Any]]:
    """One Node per desired instance of `nodegroup`, spread over `subnet_zones` as the node group's ASG would;
    `kubelet_version` ("v1.36.5"): what the node group's AMI runs (its `version`'s release)."""
    name = str(nodegroup["nodegroupName"])
    count = int(nodegroup["scalingConfig"]["desiredSize"])
    vcpus = int(instance_type["VCpuInfo"]["DefaultVCpus"])
    memory = f"{int(instance_type['MemoryInfo']['SizeInMiB'])}Mi"
    architecture = ARCHITECTURES.get(str(instance_type["ProcessorInfo"]["SupportedArchitectures"][0]), "amd64")
    capacity = {"cpu": str(vcpus), "memory": memory, "pods": str(max_pods(instance_type)), "ephemeral-storage": "20Gi"}
    taints = [
        {"key": t["key"], "value": t.get("value", ""), "effect": TAINT_EFFECTS[t["effect"]]}
        for t in nodegroup.get("taints") or []
    ]
    nodes = []
    for index in range(count):
        zone = subnet_zones[index % len(subnet_zones)]
        node_name = f"{name}-{index}"
        labels = {
            **(nodegroup.get("labels") or {}),
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": architecture,
            "node.kubernetes.io/instance-type": str(instance_type["InstanceType"]),
            "topology.kubernetes.io/zone": zone,
            "topology.kubernetes.io/region": zone[:-1],
            "eks.amazonaws.com/nodegroup": name,
            "eks.amazonaws.com/capacityType": str(nodegroup.get("capacityType", "ON_DEMAND")),
        }
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node_name, "labels": labels},
                "spec": {"taints": taints} if taints else {},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "nodeInfo": {"kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version},
                },
            }
        )
    return nodes


def kubelet_version(nodegroup: Mapping[str, Any], pins: Mapping[str, str]) -> str:
    """The kubelet of the node group's Kubernetes minor (its `version`): the toolchain's release of that minor,
    the one the local control plane of that minor runs."""
    release, _ = control_plane_build(str(nodegroup["version"]), pins)
    return f"v{release}"


def ops_nodegroup(eks: Any, cluster: str, nodegroup: str) -> dict[str, Any]:
    return dict(eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)["nodegroup"])


def ops_nodes(eks: Any, ec2: Any, cluster: str, nodegroup: str, pins: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Node objects for `nodegroup` of `cluster`, read from EKS and EC2 (the emulator's, on `local`)."""
    group = ops_nodegroup(eks, cluster, nodegroup)
    (info,) = ec2.describe_instance_types(InstanceTypes=group["instanceTypes"][:1])["InstanceTypes"]
    subnets = ec2.describe_subnets(SubnetIds=group["subnets"])["Subnets"]
    zones = sorted({s["AvailabilityZone"] for s in subnets})
    return node_manifests(group, info, zones, kubelet_version(group, pins))


def node_lease(node: str, renewed: str) -> dict[str, Any]:
    """The Lease a kubelet renews for its node (`renewed`: a MicroTime): the node lifecycle controller's
    heartbeat."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": NODE_LEASES},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_S, "renewTime": renewed},
    }


def node_heartbeat(node: str, address: str, stamp: str) -> dict[str, Any]:
    """The status a healthy kubelet posts for its node: Ready, no pressure, its addresses."""
    conditions = [
        {"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}", "lastHeartbeatTime": stamp}
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
    return {
        "conditions": [*conditions, {**ready, "lastHeartbeatTime": stamp}],
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": node}],
        "phase": "Running",
    }
