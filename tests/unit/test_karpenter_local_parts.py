"""Pure parts of Karpenter on the local target: the node registrar's Node for a NodeClaim,"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.targets.node_registrar import (
    UNREGISTERED_TAINT,
    create_node,
    node_manifest,
    register_once,
    unregistered,
)

PROVIDER_ID = "aws:///eu-west-1b/i-0123456789abcdef0"
C7I_LARGE = {
    "InstanceType": "c7i.large",
    "VCpuInfo": {"DefaultVCpus": 2},
    "MemoryInfo": {"SizeInMiB": 4096},
    "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
    "NetworkInfo": {"MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10},
}


def claim(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "apps-x7k2p",
            "labels": {
                "karpenter.sh/nodepool": "apps",
                "karpenter.sh/capacity-type": "spot",
                "node.kubernetes.io/instance-type": "c7i.large",
                "topology.kubernetes.io/zone": "eu-west-1b",
                "eks-platform/pool": "apps",
            },
        },
        "spec": {
            "taints": [{"key": "eks-platform/pool", "value": "apps", "effect": "NoSchedule"}],
            "startupTaints": [{"key": "example.com/agent-not-ready", "effect": "NoSchedule"}],
        },
        "status": {"providerID": PROVIDER_ID, **status},
    }


def test_the_node_is_what_the_kubelet_registers_for_the_claims_instance() -> None:
    node = node_manifest(claim(allocatable={"cpu": "1930m", "memory": "3114Mi", "pods": "29"}), C7I_LARGE)
    assert node["metadata"]["name"] == "i-0123456789abcdef0"
    assert node["spec"]["providerID"] == PROVIDER_ID
    labels = node["metadata"]["labels"]
    assert labels["karpenter.sh/capacity-type"] == "spot" and labels["eks-platform/pool"] == "apps"
    assert labels["kubernetes.io/hostname"] == "i-0123456789abcdef0" and labels["kubernetes.io/arch"] == "amd64"
    assert node["spec"]["taints"] == [
        {"key": "eks-platform/pool", "value": "apps", "effect": "NoSchedule"},
        {"key": "example.com/agent-not-ready", "effect": "NoSchedule"},
        UNREGISTERED_TAINT,
    ]
    assert node["status"]["capacity"] == {"cpu": "2", "memory": "4096Mi", "pods": "29", "ephemeral-storage": "20Gi"}
    assert node["status"]["allocatable"]["cpu"] == "1930m"  # the kubelet Karpenter configured reserves the rest
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}


def test_only_launched_claims_without_a_node_and_not_being_deleted_are_registered() -> None:
    launched, waiting, deleting = claim(), claim(), claim()
    del waiting["status"]["providerID"]
    deleting["metadata"]["deletionTimestamp"] = "2026-11-29T02:00:00Z"
    assert unregistered([launched, waiting, deleting], []) == [launched]
    joined = {"spec": {"providerID": PROVIDER_ID}}
    assert unregistered([launched], [joined]) == []


def test_one_pass_creates_each_missing_node_once() -> None:
    created: list[dict[str, Any]] = []
    asked: list[str] = []

    def describe(name: str) -> dict[str, Any]:
        asked.append(name)
        return C7I_LARGE

    names = register_once(lambda: [claim()], lambda: [], describe, created.append)
    assert names == ["i-0123456789abcdef0"] and asked == ["c7i.large"] and len(created) == 1
    assert register_once(lambda: [claim()], lambda: created, describe, created.append) == []


class Conflict(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class RecordingCore:
    """CoreV1Api's two calls the registrar makes; `exists` answers the create with that status."""

    def __init__(self, exists: int | None = None) -> None:
        self.exists = exists
        self.calls: list[tuple[str, Any]] = []

    def create_node(self, body: dict[str, Any]) -> None:
        self.calls.append(("create", copy.deepcopy(body)))
        if self.exists:
            raise Conflict(self.exists)

    def patch_node_status(self, name: str, body: dict[str, Any]) -> None:
        self.calls.append(("patch_status", (name, body)))


def test_the_node_is_created_with_its_capacity_in_the_same_write() -> None:
    """KWOK initializes a Node it first sees without allocatable to 1k CPU: a later status patch lost that race on a
    real run (one spot node held all 16 replicas), so the capacity goes in the create, as a kubelet sends it."""
    manifest = node_manifest(claim(), C7I_LARGE)
    core = RecordingCore()
    create_node(core, manifest, conflict=Conflict)
    assert core.calls == [("create", manifest)]
    assert core.calls[0][1]["status"]["allocatable"]["cpu"] == "2"
    existing = RecordingCore(exists=409)
    create_node(existing, manifest, conflict=Conflict)
    assert existing.calls[1] == ("patch_status", ("i-0123456789abcdef0", {"status": manifest["status"]}))
    with pytest.raises(Conflict):
        create_node(RecordingCore(exists=403), manifest, conflict=Conflict)
