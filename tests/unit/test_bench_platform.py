"""harness bench platform: the baseline's export from git and the before/after arithmetic (timings themselves
belong to the bench)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from harness.bench import platform as bench
from harness.bench.emulator import EKS_CLUSTER
from harness.errors import EnvironmentProblem
from harness.project import repo_root
from harness.terraform.timeline import Change, Timeline


def test_the_baseline_is_the_platform_root_of_a_revision(tmp_path: Path) -> None:
    root = bench.export_baseline(repo_root(), "HEAD", tmp_path)
    assert (root / "main.tf").read_text() == (repo_root() / "infra" / "platform" / "main.tf").read_text()
    assert (tmp_path / "versions.yaml").is_file()  # the root reads ../../versions.yaml


def test_a_revision_git_does_not_have_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=r"cannot read the baseline 000000000000 .*history$") as caught:
        bench.export_baseline(repo_root(), "0" * 40, tmp_path)
    assert "\n" not in str(caught.value)


def measured(walk: float, eks: float) -> bench.Measured:
    changes = [Change("module.network.aws_vpc.this", "delete", 5.1, 6.0), Change(EKS_CLUSTER, "delete", 6.0, 6 + eks)]
    destroy = Timeline(total=10.0 + walk, plan_started=3.0, walk_started=5.0, walk_ended=5.0 + walk, changes=changes)
    apply = Timeline(total=40.0, plan_started=3.0, walk_started=6.0, walk_ended=39.0)
    return bench.Measured(
        init=2.0, timelines={"apply": apply, "destroy": destroy}, emulator_busy={"apply": 4.0, "destroy": 1.0}
    )


def test_totals_and_the_eks_pause() -> None:
    side = measured(walk=30.0, eks=20.0)
    assert side.total == 2.0 + 40.0 + 40.0
    assert side.eks_pause() == 20.0
    assert (
        bench.Measured(2.0, {"apply": side.timelines["apply"], "destroy": Timeline(5.0, 1.0, 2.0, 3.0)}, {}).eks_pause()
        == 0.0
    )


def test_the_table_and_paths_show_both_sides() -> None:
    console = Console(width=200, record=True)
    sides = {"before": measured(walk=30.0, eks=20.0), "after": measured(walk=12.0, eks=2.0)}
    console.print(bench.parts_table(sides))
    text = console.export_text()
    assert "destroy: resource walk" in text and "+-18.0" not in text and "-18.0" in text
    lines = bench.path_lines("after", sides["after"])
    walk = "after destroy: critical path of the 12.0 s walk"
    assert lines[1] == f"{walk}: cluster.aws_eks_cluster.this 2.0s (+ 1 link(s) under 1 s: 0.9 s)"
    assert lines[0].endswith("no changes")
