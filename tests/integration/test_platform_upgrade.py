"""The upgrade's Terraform step on the emulator, for real: infra/platform applied at versions.yaml
upgrade_from_kubernetes (`stand_at_upgrade_from`), then applied again at `kubernetes`. Terraform moves the control
plane first (UpdateClusterVersion, polled with DescribeUpdate), then the ops node group (UpdateNodegroupVersion),
which the emulator serves through the declared gap eks_version_updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.plugin import stack_skip_reason
from harness.project import versions
from harness.targets.stack import STAND_AT_UPGRADE_FROM, Stack
from harness.terraform.runner import find_cli

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
