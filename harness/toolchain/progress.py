"""Building the toolchain in front of a person: what and the one-time cost first, then progress per component.

`harness toolchain` and `harness demo` (which builds what the local target lacks before it runs) both show it.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.errors import EnvironmentProblem
from harness.toolchain.build import Entry, ensure_built, entry_problem, go_for


def build_shown(entries: list[Entry], cache: Path, console: Console) -> None:
    """Build what is not current, announcing what and the one-time cost first, with progress per component."""
    todo = [e for e in entries if entry_problem(e) is not None]
    if not todo:
        console.print(f"toolchain: all {len(entries)} components current in {cache}")
        return
    go = go_for(todo)
    minutes = sum(e.component.cold_minutes for e in todo)
    console.print(
        f"toolchain: building {', '.join(f'{e.component.name} {e.version}' for e in todo)} with {go.label} into "
        f"{cache}; one-time cost about {minutes} min on 2 cores when Go's build cache is cold"
    )
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        for entry in todo:
            component = entry.component
            task = progress.add_task(f"{component.name} {entry.version}: {component.purpose}", total=1)
            try:
                manifest = ensure_built(go, entry)
            except EnvironmentProblem:
                progress.update(task, description=f"[red]{component.name}: failed[/]")
                raise
            if manifest is None:
                progress.update(task, completed=1, description=f"{component.name}: built by another process")
                continue
            size = sum(p.stat().st_size for p in entry.path.iterdir() if p.is_file() and not p.is_symlink())
            done = (
                f"{component.name} {entry.version}: {len(entry.component.binaries)} binaries, "
                f"{size / 1e6:.0f} MB, built in {manifest['build_seconds']} s"
            )
            progress.update(task, completed=1, description=done)
            if not console.is_terminal:  # a log (CI) gets a line as each component finishes, not only at the end
                console.print(done)
    console.print(f"toolchain: done in {time.monotonic() - started:.0f} s")
