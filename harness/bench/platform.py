"""`harness bench platform`: where the emulator apply and destroy of infra/platform spend their wall time, part by
part, before and after the warm-cycle cuts (issue #18), side by side in one run.

Before: infra/ and versions.yaml as of BASELINE (exported from git), destroyed with Terraform's defaults, as the
harness did then. After: this checkout's infra/, destroyed with the harness's flags (runner.DESTROY_FLAGS). Each side
gets its own fresh emulator and runs init, apply and destroy with Terraform's machine-readable events (`-json`) and
the provider's HTTP log (TF_LOG_PROVIDER=DEBUG); harness.terraform.timeline splits each command into its parts and
finds the critical path of its resource walk. Target: the after side's apply and destroy, without the EKS cluster's
random pause (the provider sleeps 0-60 s before DeleteCluster), take less time than the before side's.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.bench.emulator import EKS_CLUSTER, Step, terraform_cycle
from harness.errors import EnvironmentProblem
from harness.project import repo_root
from harness.targets.stack import Stack
from harness.terraform import timeline as tl
from harness.terraform.runner import DESTROY_FLAGS

# The revision the warm-cycle cuts started from: its infra/ is the "before" side.
BASELINE = "2eb94e551fcb9a69a7cd1685a8cd7b08d0b9095a"
BASELINE_PATHS = ("infra", "versions.yaml")
COMMANDS = ("apply", "destroy")
LINK_SHOWN_S = 1.0


@dataclass(frozen=True)
class Side:
    name: str
    root: Path
    destroy_flags: tuple[str, ...]


@dataclass(frozen=True)
class Measured:
    """One side: init's wall time, and per command its timeline and the seconds the emulator was answering."""

    init: float
    timelines: dict[str, tl.Timeline]
    emulator_busy: dict[str, float]

    @property
    def total(self) -> float:
        return self.init + sum(t.total for t in self.timelines.values())

    def eks_pause(self) -> float:
        """Seconds the destroy spent on the EKS cluster, whose delete starts with the provider's random pause."""
        change = self.timelines["destroy"].change(EKS_CLUSTER)
        return change.seconds if change else 0.0


def export_baseline(repo: Path, revision: str, into: Path) -> Path:
    """infra/ and versions.yaml at `revision`, written under `into`; returns the platform root there."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", revision, *BASELINE_PATHS], capture_output=True
        )
    except OSError as exc:
        raise EnvironmentProblem(
            f"bench platform: git is needed to read the baseline {revision[:12]} ({exc})"
        ) from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise EnvironmentProblem(
            f"bench platform: cannot read the baseline {revision[:12]} from git ({why[0] if why else 'no output'}): "
            "run it in a clone with the repository's history"
        )
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into / "infra" / "platform"


def measure(side: Side, variables: dict[str, object], work: Path) -> Measured:
    work.mkdir(parents=True, exist_ok=True)
    steps = terraform_cycle(
        side.root,
        variables,
        work,
        extra_args={"apply": ["-json"], "destroy": ["-json", *side.destroy_flags]},
        provider_log=True,
    )
    return Measured(
        init=steps["init"].seconds,
        timelines={command: read_timeline(steps[command]) for command in COMMANDS},
        emulator_busy={command: emulator_busy(steps[command]) for command in COMMANDS},
    )


def read_timeline(step: Step) -> tl.Timeline:
    with step.log.open(encoding="utf-8", errors="replace") as lines:
        events = tl.read_events(lines, str(step.log))
    return tl.timeline(events, step.launched, step.seconds, str(step.log))


def emulator_busy(step: Step) -> float:
    """Seconds with at least one request in flight at the emulator, from the step's provider log."""
    assert step.provider_log is not None, "measure() asks terraform_cycle for the provider's log"
    with step.provider_log.open(encoding="utf-8", errors="replace") as lines:
        return tl.busy_seconds(tl.request_intervals(lines, step.launched))


def short(address: str) -> str:
    return address.replace("module.", "")


def parts_table(measured: dict[str, Measured]) -> Table:
    before, after = measured["before"], measured["after"]
    table = Table(title="infra/platform on the emulator: seconds (share of the side's init + apply + destroy)")
    table.add_column("part")
    for name in measured:
        table.add_column(name, justify="right")
    table.add_column("after - before", justify="right")

    def row(label: str, b: float, a: float) -> None:
        table.add_row(label, f"{b:.1f} ({b / before.total:.0%})", f"{a:.1f} ({a / after.total:.0%})", f"{a - b:+.1f}")

    row("init", before.init, after.init)
    for command in COMMANDS:
        b_parts, a_parts = before.timelines[command].parts(), after.timelines[command].parts()
        for part in tl.PARTS:
            row(f"{command}: {part}", b_parts[part], a_parts[part])
        row(f"{command}: total", before.timelines[command].total, after.timelines[command].total)
        row(
            f"{command}: emulator answering (a request in flight)",
            before.emulator_busy[command],
            after.emulator_busy[command],
        )
    row("destroy: of it, the EKS cluster (random 0-60 s pause)", before.eks_pause(), after.eks_pause())
    row("init + apply + destroy", before.total, after.total)
    row("the same without the EKS cluster's pause", before.total - before.eks_pause(), after.total - after.eks_pause())
    return table


def path_lines(name: str, measured: Measured) -> list[str]:
    """Per command, the critical path's links of at least LINK_SHOWN_S (the short ones, mostly waits for one of
    Terraform's parallel slots, summed)."""
    lines = []
    for command in COMMANDS:
        found = measured.timelines[command]
        chain = tl.critical_path(found.changes)
        shown = [c for c in chain if c.seconds >= LINK_SHOWN_S]
        short_links = len(chain) - len(shown)
        links = " -> ".join(f"{short(c.address)} {c.seconds:.1f}s" for c in shown) or "no changes"
        if short_links:
            rest = sum(c.seconds for c in chain) - sum(c.seconds for c in shown)
            links += f" (+ {short_links} link(s) under {LINK_SHOWN_S:.0f} s: {rest:.1f} s)"
        walk = found.parts()["resource walk"]
        lines.append(f"{name} {command}: critical path of the {walk:.1f} s walk: {links}")
    return lines


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    stack = Stack.create("emulator", console=console)  # a run id, directory and the variables a run would apply
    work = stack.run.path("bench-platform")
    sides = (
        Side("before", export_baseline(repo_root(), BASELINE, work / "baseline"), ()),
        Side("after", stack.root, DESTROY_FLAGS),
    )
    measured = {side.name: measure(side, stack.variables(), work / side.name) for side in sides}
    console.print(parts_table(measured))
    for name, found in measured.items():
        for line in path_lines(name, found):
            console.print(line, markup=False)
    console.print(f"logs: {work}", markup=False)
    before, after = measured["before"], measured["after"]
    return 0 if after.total - after.eks_pause() < before.total - before.eks_pause() else 1
