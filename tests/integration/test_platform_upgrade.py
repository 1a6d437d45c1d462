"""The upgrade's Terraform step on the emulator, for real: infra/platform applied at versions.yaml
upgrade_from_kubernetes (`stand_at_upgrade_from`), then applied again at `kubernetes`. Terraform moves the control
plane first (UpdateClusterVersion, polled with DescribeUpdate), then the ops node group (UpdateNodegroupVersion),
which the emulator serves through the declared gap eks_version_updates.

On `local` the cluster then does what EKS does: the control plane of the cluster's new minor takes the running
one's place on the same etcd data, and the ops Nodes report the node group's new kubelet. Its failing case is the
same run between the two: Terraform has moved the emulator, the local cluster not yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.kube.upgrade import inventory, judge_kubelets, judge_objects_kept, judge_version
from harness.plugin import stack_skip_reason
from harness.project import versions
from harness.results import Status
from harness.targets import local
from harness.targets.controlplane import ControlPlane
from harness.targets.stack import STAND_AT_UPGRADE_FROM, Stack
from harness.terraform.runner import find_cli
from harness.toolchain.build import missing
from harness.toolchain.components import CONTROL_PLANE, UPGRADE_FROM

pytestmark = pytest.mark.integration


def test_terraform_moves_the_cluster_then_its_node_group_to_the_next_minor(runs_dir: Path) -> None:
    if reason := stack_skip_reason("emulator"):
        pytest.skip(reason)
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    pins = versions()
    stack = Stack.create("emulator", "r-upgrade-1")
    stack.run.settings[STAND_AT_UPGRADE_FROM] = True
    outputs = stack.up()
    try:
        eks = stack.aws_target().client("eks")
        name, group = outputs["cluster_name"], outputs["ops_node_group_name"]

        def minors() -> tuple[str, str]:
            cluster = eks.describe_cluster(name=name)["cluster"]["version"]
            return cluster, eks.describe_nodegroup(clusterName=name, nodegroupName=group)["nodegroup"]["version"]

        start = pins["upgrade_from_kubernetes"]
        assert minors() == (start, start)
        stack.run.settings[STAND_AT_UPGRADE_FROM] = False
        stack.terraform.apply(stack.variables())
        assert minors() == (pins["kubernetes"], pins["kubernetes"])
        assert stack.outputs()["kubernetes_version"] == pins["kubernetes"]
    finally:
        stack.down()


def served(plane: ControlPlane) -> str:
    return str(json.loads(plane.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"])


def listed(plane: ControlPlane, kinds: str) -> list[dict[str, Any]]:
    return list(json.loads(plane.kubectl("get", kinds, "-A", "-o", "json"))["items"])


def test_on_local_the_cluster_follows_terraform_to_the_next_minor(runs_dir: Path) -> None:
    if reason := stack_skip_reason("local") or missing([f"{name}{UPGRADE_FROM}" for name in CONTROL_PLANE]):
        pytest.skip(reason)
    pins = versions()
    old, new = f"v{pins['upgrade_from_kubernetes_release']}", f"v{pins['kubernetes_release']}"
    stack = Stack.create("local", "r-upgrade-2")
    stack.run.settings[STAND_AT_UPGRADE_FROM] = True
    outputs = stack.up()
    try:
        plane = local.cluster(stack.run)
        assert plane is not None
        assert judge_version(served(plane), old.lstrip("v")).ok
        assert judge_kubelets(listed(plane, "nodes"), old).ok
        plane.kubectl("create", "namespace", "game-2048")
        before = inventory(listed(plane, "nodes,namespaces,serviceaccounts"))

        stack.run.settings[STAND_AT_UPGRADE_FROM] = False
        stack.terraform.apply(stack.variables())
        # The failing case: the emulator moved, the local cluster not yet.
        behind = judge_kubelets(listed(plane, "nodes"), new)
        assert behind.status is Status.FAIL and behind.why.endswith(f"runs kubelet {old}, not {new} (and 1 more)")
        assert judge_version(served(plane), new.lstrip("v")).status is Status.FAIL

        changed = local.follow_cluster_version(stack.run, outputs, stack.aws_target().client)
        assert changed[0] == f"control plane {old} -> {new} on the same etcd data", changed
        assert judge_version(served(plane), new.lstrip("v")).ok
        kubelets = judge_kubelets(listed(plane, "nodes"), new)
        assert kubelets.ok, kubelets.why
        kept = judge_objects_kept(before, inventory(listed(plane, "nodes,namespaces,serviceaccounts")))
        assert kept.ok, kept.why
        assert local.follow_cluster_version(stack.run, outputs, stack.aws_target().client) == []  # nothing left
        assert not local.crashed(stack.run)
    finally:
        stack.down()
