"""`harness bench toolchain`: what the toolchain costs. Target: a warm `harness toolchain` (everything built,
nothing changed) finishes in under 5 s. Shown beside it, in the same run: `--check` (re-hashes every binary),
and per component the disk of its cache entry and how long the build that made it took (as its manifest recorded:
cold only when Go's build cache was; docs/toolchain.md has the cold figures)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

from harness.errors import EnvironmentProblem
from harness.toolchain.build import cache_root, entry_for, entry_problem, read_manifest
from harness.toolchain.components import COMPONENTS

WARM_TARGET_S = 5.0


def _timed(args: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, check=False)
    return time.perf_counter() - started, done.returncode


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    entries = [entry_for(component) for component in COMPONENTS]
    unbuilt = [e.component.name for e in entries if entry_problem(e) is not None]
    if unbuilt:
        raise EnvironmentProblem(f"bench toolchain: {', '.join(unbuilt)} not built: run `make toolchain` first")
    warm_s, warm_rc = _timed(["toolchain"])
    check_s, check_rc = _timed(["toolchain", "--check"])
    table = Table(title=f"toolchain cache {cache_root()}", title_justify="left")
    for column in ("component", "version", "binaries", "disk MB", "built in s"):
        table.add_column(column, justify="right" if column not in ("component", "version") else "left")
    total = 0
    for entry in entries:
        size = sum(p.stat().st_size for p in entry.path.iterdir() if p.is_file() and not p.is_symlink())
        total += size
        manifest = read_manifest(entry) or {}
        table.add_row(
            entry.component.name,
            entry.version,
            str(len(entry.component.binaries)),
            f"{size / 1e6:.0f}",
            str(manifest.get("build_seconds", "-")),
        )
    table.add_row("total", "", "", f"{total / 1e6:.0f}", "")
    console.print(table)
    ok = warm_rc == 0 and check_rc == 0 and warm_s < WARM_TARGET_S
    console.print(
        f"warm `harness toolchain` (no-op): {warm_s:.2f} s (target < {WARM_TARGET_S:.0f} s) "
        f"{'[green]met[/]' if ok else '[red]missed[/]'}; `--check` (sha256 of every binary): {check_s:.2f} s, "
        f"{check_s / warm_s:.1f}x the no-op"
    )
    return 0 if ok else 1
