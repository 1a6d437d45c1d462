"""`harness bench local`: the warm local cycle, stage by stage, in one run: up -> add-ons -> Argo CD's first
sync -> ALB active -> down, then Karpenter's experiment in the same run (scale-out, spot interruption,
consolidation) with its own numbers, and the peak memory of all the run's processes.

The stages are the e2e's own (harness.e2e.orchestration.E2E), so the numbers are those of `harness demo`.
Target: the warm cycle (without the Karpenter experiment, whose consolidation waits out the NodePool's
consolidateAfter) under 5 minutes on a 2-core machine. With HARNESS_BENCH_LOCAL_BASE=<commit>, that commit's cycle
runs first (from a throwaway worktree), then this checkout's: before and after in one run. Argo CD's first-sync
latency counts from the end of the add-ons stage (the bootstrap release is its last step) until every expected
Application is Synced.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.bench.suite import git
from harness.e2e.orchestration import E2E, GAME_DEPLOYMENT, GAME_NAMESPACE, expected_applications
from harness.errors import EnvironmentProblem
from harness.kube import ingress
from harness.kube.api import APPLICATION
from harness.kube.spot import ScaleOutFigures
from harness.project import reference_dir
from harness.results import Result
from harness.targets import containers, local
from harness.targets import teardown as td
from harness.targets.full_stack import teardown_run
from harness.targets.stack import Stack

CYCLE_TARGET_S = 300.0
BASE_ENV = "HARNESS_BENCH_LOCAL_BASE"  # a commit: its cycle first, in the same run, then this checkout's
KARPENTER_STEP = "Karpenter: scale-out, spot interruption, consolidation"
SAMPLE_EVERY_S = 0.5


def group_rss_kib(pgids: Iterable[int], proc: Path = Path("/proc")) -> int:
    """Resident memory (KiB) of every live process in the given process groups, read from /proc."""
    wanted = set(pgids)
    total = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[2]) not in wanted:
                continue
            status = (stat.parent / "status").read_text(encoding="ascii")
        except (OSError, IndexError, ValueError):
            continue  # gone while we looked
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


class PeakMemory:
    """Samples the run's process groups (its recorded processes and its emulator) until stopped."""

    def __init__(self, groups: Callable[[], list[int]]) -> None:
        self.groups = groups
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak_kib = max(self.peak_kib, group_rss_kib(self.groups()))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def synced(apps: list[dict[str, Any]], expected: tuple[str, ...]) -> Result:
    """Every expected Application exists and Argo CD reports it Synced (health is the checks' business)."""
    state = {a["metadata"]["name"]: ((a.get("status") or {}).get("sync") or {}).get("status") for a in apps}
    waiting = sorted(name for name in expected if state.get(name) != "Synced")
    if waiting:
        return Result.pending("first sync", f"not Synced yet: {', '.join(waiting)}", state=state)
    return Result.passed("first sync", f"{len(expected)} Synced", state=state)


def alb_active(e2e: E2E) -> Result:
    """The game's Ingress has an address, and the ALB behind it is active (its targets need Karpenter's nodes)."""
    address = e2e.ingress_address()
    hostname = ingress.ingress_hostname(e2e.kube().get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT))
    if not address.ok or not hostname:
        return address

    def facts() -> ingress.LoadBalancerFacts:
        return ingress.fetch_load_balancer(e2e.clients("elbv2"), e2e.clients("ec2"), hostname)

    return e2e.wait(facts, ingress.judge_load_balancer, 600)


def karpenter_table(figures: ScaleOutFigures, consolidation: float | None) -> Table:
    table = Table(title="Karpenter on the local target")
    table.add_column("figure")
    table.add_column("value", justify="right")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    table.add_row("new pod Pending -> Running, p50", seconds(figures.pending_to_running_p50))
    table.add_row("new pod Pending -> Running, p90", seconds(figures.pending_to_running_p90))
    table.add_row("first new node Ready after the scale", seconds(figures.first_node_ready))
    table.add_row("nodes launched / bin-packing minimum", f"{figures.nodes} / {figures.bin_packing_minimum or '-'}")
    table.add_row("consolidation after scaling back", seconds(consolidation))
    return table


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    if reason := local.unavailable():
        console.print(f"bench local: skipped: {reason}", markup=False)
        return 0
    if base := os.environ.pop(BASE_ENV, ""):
        before = run_base(console, base)
        console.print(f"after: this checkout's cycle ({git('rev-parse', '--short', 'HEAD')})")
        return max(before, cycle_once(console))
    return cycle_once(console)


def run_base(console: Console, base: str) -> int:
    """`harness bench local` of commit `base`, from a throwaway worktree with this virtualenv, its output shown as it
    comes: the "before" beside this checkout's "after" in one run."""
    commit = git("rev-parse", "--short", f"{base}^{{commit}}")
    worktree = Path(tempfile.mkdtemp(prefix="bench-local-")) / "before"
    git("worktree", "add", "--detach", str(worktree), commit)
    console.print(f"before: the cycle of {base} ({commit})")
    env = {**os.environ, "PYTHONPATH": str(worktree), "HARNESS_REFERENCE": str(reference_dir())}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "harness", "bench", "local"],
            cwd=worktree,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    finally:
        git("worktree", "remove", "--force", str(worktree))
    return done.returncode


def cycle_once(console: Console) -> int:
    stack = Stack.create("local", console=console)
    stack.emulator(start=True)  # before the stages, as `harness e2e` does: Terraform's environment names it
    e2e = E2E(stack, console)
    e2e.run_started = time.monotonic()
    seconds: dict[str, float] = {}
    verdicts: dict[str, str] = {}

    def groups() -> list[int]:
        """The recorded processes, the emulator, and the ops nodes' containers (each its own process group)."""
        emulator = (stack.run.settings.get("emulator") or {}).get("pid")
        pods = [pid for pid, _ in containers.running(stack.run.path(local.KUBELET)).values()]
        return [r.pid for r in local.records(stack.run)] + ([int(emulator)] if emulator else []) + pods

    def timed(name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return action()
        finally:
            seconds[name] = time.monotonic() - started

    cycle_started = time.monotonic()
    with PeakMemory(groups) as memory:
        try:
            timed("up (platform, control plane, ops nodes)", e2e.platform)
            timed("add-ons and controllers", e2e.addons)
            k = e2e.kube()
            expected = expected_applications()
            first = timed(
                "Argo CD first sync (all Applications Synced)",
                lambda: e2e.wait(
                    lambda: k.list_custom(APPLICATION, td.ARGOCD_NAMESPACE), lambda apps: synced(apps, expected), 600
                ),
            )
            verdicts["first sync"] = first.why
            verdicts["ALB"] = timed("ALB active behind the game's Ingress", lambda: alb_active(e2e)).why
            karpenter = timed(KARPENTER_STEP, e2e.karpenter)
            verdicts["Karpenter"] = karpenter.why
        finally:
            results = timed("down (controller-aware teardown)", lambda: teardown_run(e2e))
            verdicts["teardown"] = "clean" if td.teardown_ok(results) else "NOT clean"
    cycle = time.monotonic() - cycle_started - seconds.get(KARPENTER_STEP, 0.0)
    table = Table(title=f"local cycle, run {stack.run.id} (warm toolchain)")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    for name, value in seconds.items():
        table.add_row(name, f"{value:.1f}", "" if name == KARPENTER_STEP else f"{value / cycle:.0%}")
    target = f"{cycle / CYCLE_TARGET_S:.2f}x of the {CYCLE_TARGET_S:.0f} s target"
    table.add_row("warm cycle (without Karpenter)", f"{cycle:.1f}", target)
    console.print(table)
    if e2e.scale_out_figures is not None:
        console.print(karpenter_table(e2e.scale_out_figures, e2e.scale_in_seconds))
    console.print(f"peak memory of the run's processes: {memory.peak_kib / 1024:.0f} MiB", markup=False)
    for name, why in verdicts.items():
        console.print(f"{name}: {why}", markup=False)
    if verdicts["teardown"] != "clean":
        raise EnvironmentProblem(f"bench local: run {stack.run.id} was not torn down cleanly")
    return 0 if cycle <= CYCLE_TARGET_S else 1
