"""The emulator bench reads how long Terraform took to destroy the EKS cluster from its log."""

from __future__ import annotations

from pathlib import Path

from harness.bench.emulator import EKS_CLUSTER, destruction_seconds, logged_destruction_seconds

LOG = f"""\
module.cluster.aws_eks_node_group.ops: Destruction complete after 0s
{EKS_CLUSTER}: Still destroying... [id=eks-r1, 50s elapsed]
{EKS_CLUSTER}: Destruction complete after 1m5s
module.network.aws_vpc.this: Destruction complete after 2s
"""


def test_destruction_seconds_reads_minutes_and_seconds() -> None:
    assert destruction_seconds(LOG, EKS_CLUSTER) == 65.0
    assert destruction_seconds(LOG, "module.network.aws_vpc.this") == 2.0


def test_destruction_seconds_is_none_when_the_resource_was_not_destroyed() -> None:
    assert destruction_seconds(LOG, "module.karpenter.aws_sqs_queue.interruption") is None
    assert destruction_seconds(f"{EKS_CLUSTER}: Destroying... [id=eks-r1]\n", EKS_CLUSTER) is None


def test_the_newest_destroy_log_that_names_the_cluster_counts(tmp_path: Path) -> None:
    (tmp_path / "platform-06-destroy.log").write_text(LOG, encoding="utf-8")
    (tmp_path / "platform-09-destroy.log").write_text(
        "No changes. No objects need to be destroyed.\n", encoding="utf-8"
    )
    (tmp_path / "platform-02-apply.log").write_text(f"{EKS_CLUSTER}: Destruction complete after 9s\n", encoding="utf-8")
    assert logged_destruction_seconds(tmp_path, "*destroy.log") == 65.0
    assert logged_destruction_seconds(tmp_path / "missing", "*destroy.log") is None
