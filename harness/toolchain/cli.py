"""`harness toolchain`: build the local Kubernetes tier's binaries from pinned Go modules, or `--check` them."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.project import versions
from harness.terraform.providers import (
    REGISTRY_HOST,
    find_machine_mirror,
    mirror_holding,
    provider_pins,
    registry_reachable,
)
from harness.terraform.runner import find_cli
from harness.toolchain.build import (
    Entry,
    cache_root,
    entry_for,
    entry_problem,
    folder_bytes,
    prune,
    read_manifest,
    stale_entries,
)
from harness.toolchain.components import select
from harness.toolchain.progress import build_shown


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "toolchain",
        help="build the local Kubernetes tier's binaries from pinned Go modules (cached), or --check them",
        description=__doc__,
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="build nothing: show each binary, its version and state")
    parser.add_argument("--only", nargs="+", metavar="COMPONENT", help="these components only (default: all)")
    action.add_argument(
        "--prune",
        action="store_true",
        help="remove cached builds of other pins than this checkout's (another checkout rebuilds what it needs)",
    )
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
    if args.prune:
        removed = prune(entries)
        megabytes = sum(size for _, size in removed) / 1e6
        console.print(f"toolchain: removed {len(removed)} stale build(s), {megabytes:.0f} MB", markup=False)
        for path, _ in removed:
            console.print(f"  {path}", markup=False)
        return 0
    if args.check:
        code = check(entries, console)
    else:
        build_shown(entries, cache, console)
        code = 0
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
    addons = {name: version for name, version in provider_pins(pins).items() if name != "aws"}
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
    if stale := stale_entries(entries):
        megabytes = sum(folder_bytes(path) for path in stale) / 1e6
        console.print(
            f"{len(stale)} stale build(s) of other pins, {megabytes:.0f} MB: `harness toolchain --prune` removes them",
            markup=False,
        )
    return 1 if bad else 0
