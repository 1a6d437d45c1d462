"""The ops node group on the local tier: the node group Terraform created in the emulator becomes real Node objects
(the ops nodes' kubelet keeps them Ready), judged by the same judge the AWS run uses; then the add-on charts'
workloads, rendered with the values infra/addons gives them, are placed by the real scheduler, and must land on
those nodes only.

Skips with one line when the toolchain is not built (`make toolchain`) or Terraform/its provider is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from harness.kube import core
from harness.processes import Supervisor
from harness.project import versions
from harness.results import Status
from harness.targets import kubelet, pod_network
from harness.targets.controlplane import SERVICE_CIDR, ControlPlane, control_plane
from harness.targets.nodes import ops_nodes
from harness.toolchain.build import missing

BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"]
UNBUILT = missing(BINARIES) or pod_network.unavailable()  # decided before any fixture applies the platform
pytestmark = [pytest.mark.integration, pytest.mark.skipif(UNBUILT is not None, reason=str(UNBUILT))]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("local")) as running:
        yield running


def items(cluster: ControlPlane, *args: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.kubectl("get", *args, "-o", "json"))["items"])


@pytest.fixture(scope="module")
def ops_cluster(
    cluster: ControlPlane,
    harness_platform_outputs: dict[str, Any],
    harness_aws_clients: Callable[[str], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlPlane]:
    """The control plane with the emulator's ops node group registered as Nodes, kept Ready by the ops nodes'
    kubelet (harness.targets.kubelet)."""
    outputs = harness_platform_outputs
    eks, ec2 = harness_aws_clients("eks"), harness_aws_clients("ec2")
    nodes = ops_nodes(eks, ec2, outputs["cluster_name"], outputs["ops_node_group_name"], versions())
    assert nodes, "the emulator's node group has a desired size of 0"
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))
    folder = tmp_path_factory.mktemp("kubelet")
    api_port = int(cluster.server.rsplit(":", 1)[1])
    config = kubelet.Config(
        nodes=[str(node["metadata"]["name"]) for node in nodes],
        folder=folder,
        run_id=f"local-nodes-{os.getpid()}",
        kubeconfig=str(cluster.pki.path("admin.kubeconfig")),
        api_port=api_port,
        forward=[api_port],
        services=SERVICE_CIDR,
        images={},
        env={},
        credentials_url="",
        ready_file=folder / "kubelet.ready",
    )
    supervisor = Supervisor(folder / "logs")
    try:
        kubelet.start(supervisor, config)
        cluster.kubectl("wait", "nodes", "--all", "--for=condition=Ready", "--timeout=60s")
        yield cluster
    finally:
        supervisor.stop_all()
        pod_network.delete_network(config.run_id)
    return cluster


def test_the_ops_node_group_registers_as_ready_ops_nodes(
    ops_cluster: ControlPlane, harness_platform_outputs: dict[str, Any]
) -> None:
    outputs = harness_platform_outputs
    live = items(ops_cluster, "nodes")
    result = core.judge_ops_nodes(live, nodegroup=outputs["ops_node_group_name"])
    assert result.status is Status.PASS, result.why
    for node in live:
        assert core.labels_of(node).items() >= outputs["ops_node_labels"].items()


def test_a_node_without_the_ops_taint_fails_the_same_judge(ops_cluster: ControlPlane) -> None:
    untainted = next(n for n in items(ops_cluster, "nodes") if core.is_ops_node(n))
    untainted["spec"]["taints"] = []
    result = core.judge_ops_nodes([untainted])
    assert result.status is Status.FAIL
