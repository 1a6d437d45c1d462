"""`harness toolchain`: build the local Kubernetes tier's binaries from pinned Go modules, or `--check` them."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.errors import EnvironmentProblem, HarnessError
from harness.project import versions
from harness.terraform.providers import REGISTRY_HOST, find_machine_mirror, mirror_holding, registry_reachable
from harness.terraform.runner import find_cli
from harness.toolchain.build import (
    Entry,
    cache_root,
    ensure_built,
    entry_for,
    entry_problem,
    find_go,
    read_manifest,
    required_go,
    with_pinned_go,
)
from harness.toolchain.components import select


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "toolchain",
        help="build the local Kubernetes tier's binaries from pinned Go modules (cached), or --check them",
        description=__doc__,
    )
    parser.add_argument("--check", action="store_true", help="build nothing: show each binary, its version and state")
    parser.add_argument("--only", nargs="+", metavar="COMPONENT", help="these components only (default: all)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default: $HARNESS_TOOLCHAIN_CACHE or ~/.cache/eks-platform/toolchain)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    cache = args.cache or cache_root()
    entries = [entry_for(component, cache=cache) for component in select(args.only)]
    code = check(entries, console) if args.check else build(entries, cache, console)
    for line in terraform_status():
        console.print(line, markup=False)
    return code


def terraform_status() -> list[str]:
    """Where the Terraform CLI and the providers come from. None of them can be built from the Go module proxy
    (docs/toolchain.md), so a missing one is said, with what to install, instead of built."""
    pins = versions()
    try:
        cli = f"Terraform CLI: {find_cli().path}"
    except HarnessError as exc:
        cli = f"Terraform CLI: {exc} (it cannot be built from the Go module proxy: docs/toolchain.md)"
    aws = find_machine_mirror(pins["aws_provider"])
    addons = {name: pins[f"{name}_provider"] for name in ("helm", "kubernetes", "http")}
    addons_mirror = mirror_holding(addons)
    reachable = registry_reachable() if aws is None or addons_mirror is None else True
    names = ", ".join(f"hashicorp/{name} {version}" for name, version in addons.items())
    return [
        cli,
        f"hashicorp/aws {pins['aws_provider']}: "
        + (
            f"filesystem mirror {aws}"
            if aws
            else f"registry {REGISTRY_HOST}"
            if reachable
            else f"NOT AVAILABLE: no mirror holds it and {REGISTRY_HOST} is unreachable; the emulator tier skips"
        ),
        f"{names}: "
        + (
            f"filesystem mirror {addons_mirror}"
            if addons_mirror
            else f"registry {REGISTRY_HOST}"
            if reachable
            else f"NOT AVAILABLE: no mirror holds them, {REGISTRY_HOST} is unreachable, and the Go module proxy "
            "serves no version of them to build (docs/toolchain.md); `terraform validate` of infra/addons skips"
        ),
    ]


def check(entries: list[Entry], console: Console) -> int:
    """Every binary: the version it reported when built, where it is, and whether it is current (sha256)."""
    table = Table(title="toolchain", title_justify="left")
    for column in ("binary", "component", "pinned", "reports", "state", "path"):
        table.add_column(column)
    bad = 0
    for entry in entries:
        problem = entry_problem(entry, deep=True)
        manifest = read_manifest(entry) or {}
        recorded = manifest.get("binaries") if isinstance(manifest.get("binaries"), dict) else {}
        assert isinstance(recorded, dict)
        for binary in entry.component.binaries:
            facts = recorded.get(binary.name, {})
            state = "[green]current[/]" if problem is None else f"[red]{problem}[/]"
            table.add_row(
                binary.name,
                entry.component.name,
                entry.version,
                str(facts.get("reported_version", "-")),
                state,
                str(entry.binary(binary.name)) if problem is None else "-",
            )
        bad += problem is not None
    console.print(table)
    if bad:
        console.print(f"{bad} component(s) not current: run `make toolchain`")
    return 1 if bad else 0


def build(entries: list[Entry], cache: Path, console: Console) -> int:
    """Build what is not current, announcing what and the one-time cost first, with progress per component."""
    todo = [e for e in entries if entry_problem(e) is not None]
    if not todo:
        console.print(f"toolchain: all {len(entries)} components current in {cache}")
        return 0
    need = max(required_go((e.wrapper / "go.mod").read_text(encoding="utf-8")) for e in todo)
    os.environ.update(with_pinned_go(os.environ, versions()))  # every go command of this build, stamps included
    go = find_go(need)
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
    return 0
