"""`harness bench suite`: `make test` before and after, back to back in one run. Target: the whole `make test`
(the integration tier and tests/e2e, two pytest sessions) within 10 minutes on 2 cores, the toolchain warm.

"before" is `make test` of another commit, checked out into a throwaway git worktree; "after" is this checkout's.
Each runs its own Makefile with this checkout's virtualenv, so the two differ only in their tests and in how
`make test` invokes pytest. A failing session does not stop the other: its summary line shows the failures.

Settings (environment, since sections take no flags): HARNESS_BENCH_SUITE_BASE, the commit of "before"
(default `main`: set it to the commit before the change you measure).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.errors import EnvironmentProblem
from harness.project import reference_dir, repo_root

BASE_ENV = "HARNESS_BENCH_SUITE_BASE"
TARGET_S = 600.0
# pytest's last line: "==== 1181 passed, 40 skipped in 948.12s (0:15:48) ====" (-q drops the equals signs).
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped|deselected)\b.* in [\d.]+s\b.*?)\s*=*$", re.M)
FAILED = re.compile(r"\b\d+ (?:failed|errors?)\b")


@dataclass(frozen=True)
class Timed:
    """One `make test`: its wall time and each pytest session's summary line."""

    label: str
    seconds: float
    summaries: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return bool(self.summaries) and not any(FAILED.search(line) for line in self.summaries)


def summaries(output: str) -> tuple[str, ...]:
    """The summary line of every pytest session in `output`, in order."""
    return tuple(SUMMARY.findall(output))


def make_test(label: str, checkout: Path, log: Path) -> Timed:
    """`make test` in `checkout` with this checkout's virtualenv (its set-up stamp is taken as done)."""
    venv_bin = Path(sys.executable).parent
    stamp = venv_bin.parent / ".installed"
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),  # the checkout's harness, not the one installed in the virtualenv
        "HARNESS_REFERENCE": str(reference_dir()),  # a worktree elsewhere has no ../shared/reference beside it
    }
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        subprocess.run(
            [
                "make",
                "--no-print-directory",
                "--ignore-errors",
                "-o",
                str(stamp),
                f"BIN={venv_bin}",
                f"STAMP={stamp}",
                "test",
            ],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - started
    return Timed(label, seconds, summaries(log.read_text(encoding="utf-8", errors="replace")))


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo_root()), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvironmentProblem(f"bench suite: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    base = os.environ.get(BASE_ENV, "main")
    base_commit = git("rev-parse", "--short", f"{base}^{{commit}}")
    here = git("rev-parse", "--short", "HEAD") + (" + edits" if git("status", "--porcelain") else "")
    logs = Path(tempfile.mkdtemp(prefix="bench-suite-"))  # kept: the sessions' output, to read afterwards
    worktree = logs / "before"
    git("worktree", "add", "--detach", str(worktree), base_commit)
    try:
        console.print(f"before: `make test` of {base} ({base_commit}), output in {logs}/before.log")
        before = make_test(f"before: {base} ({base_commit})", worktree, logs / "before.log")
        console.print(f"after: `make test` of this checkout ({here}), output in {logs}/after.log")
        after = make_test(f"after: {here}", repo_root(), logs / "after.log")
    finally:
        git("worktree", "remove", "--force", str(worktree))
    table = Table(title="`make test`, back to back", title_justify="left")
    for column in ("run", "wall s", "pytest sessions"):
        table.add_column(column, justify="right" if column == "wall s" else "left")
    for timed in (before, after):
        table.add_row(timed.label, f"{timed.seconds:.0f}", "\n".join(timed.summaries) or "no pytest summary")
    console.print(table)
    met = after.ok and after.seconds <= TARGET_S
    console.print(
        f"after / before: {after.seconds / before.seconds:.2f}x; after {after.seconds / 60:.1f} min against a "
        f"target of {TARGET_S / 60:.0f} min: {'[green]met[/]' if met else '[red]missed[/]'}"
    )
    return 0 if met and before.ok else 1
