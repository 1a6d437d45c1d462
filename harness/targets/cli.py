"""`harness up | verify | down`: one run of the platform on a target, from the command line.

`down` is the full teardown of a run (harness.targets.full_stack): controllers' resources first, add-ons,
platform, tag sweep, then the emulator; `make e2e-down` lands here too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.aws.clients import caller_account, check_account, expected_account
from harness.results import Result, Status, all_ok
from harness.targets import TARGET_ENV, TARGETS, default_target
from harness.targets import teardown as td
from harness.targets.full_stack import FullStack, teardown_run
from harness.targets.stack import Stack


def results_table(results: Sequence[Result], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("why")
    style = {Status.PASS: "green", Status.FAIL: "red", Status.NOT_APPLICABLE: "yellow", Status.PENDING: "cyan"}
    for r in results:
        table.add_row(escape(r.name), f"[{style[r.status]}]{r.status.value}[/]", escape(r.why))
    return table


def register(subparsers: Any) -> None:
    def common(parser: argparse.ArgumentParser, *, run_id_required: bool) -> None:
        parser.add_argument("--run-id", required=run_id_required, help="the run to act on")
        parser.add_argument("--live", action="store_true", help="stream Terraform's output to the console")

    up = subparsers.add_parser("up", help="apply infra/platform for a run (emulator by default)")
    up.add_argument("--target", choices=TARGETS, default=default_target(), help=f"default ${TARGET_ENV} or emulator")
    up.add_argument("--stack", type=Path, help="Terraform root to apply (default infra/platform)")
    up.add_argument("--api-cidr", action="append", dest="api_cidrs", help="CIDR allowed to the Kubernetes API (aws)")
    common(up, run_id_required=False)
    up.set_defaults(func=cmd_up)

    verify = subparsers.add_parser("verify", help="run every AWS assertion against a run's platform")
    verify.add_argument("--target", choices=TARGETS, help="refuse if the run is on another target")
    common(verify, run_id_required=True)
    verify.set_defaults(func=cmd_verify)

    down = subparsers.add_parser("down", help="destroy a run's platform and stop its emulator")
    down.add_argument("--target", choices=TARGETS, help="refuse if the run is on another target")
    common(down, run_id_required=True)
    down.set_defaults(func=cmd_down)


@contextlib.contextmanager
def progress_shown(stack: Stack, console: Console, live: bool) -> Iterator[None]:
    """Long Terraform steps as spinners with elapsed time (unless --live streams Terraform's own output)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        stack.progress = None if live else bar
        try:
            yield
        finally:
            stack.progress = None


def cmd_up(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    stack = Stack.create(
        args.target, args.run_id, root=args.stack, live=args.live, console=console, api_public_cidrs=args.api_cidrs
    )
    console.print(f"run {stack.run.id} on {stack.target}: {stack.run.dir}", markup=False)
    with progress_shown(stack, console, args.live):
        outputs = stack.up()
    console.print(f"up: cluster {outputs.get('cluster_name', '?')} in {stack.region}", markup=False)
    console.print(f"next: harness verify --run-id {stack.run.id} ; harness down --run-id {stack.run.id}", markup=False)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    stack = Stack.load(args.run_id, args.target, live=args.live, console=console)
    results = stack.verify()
    console.print(results_table(results, f"run {stack.run.id} on {stack.target}"))
    return 0 if all_ok(results) else 1


def cmd_down(args: argparse.Namespace) -> int:
    """The full, re-runnable teardown of a run (harness.targets.full_stack)."""
    console = Console(highlight=False, soft_wrap=True)
    stack = Stack.load(args.run_id, args.target, live=args.live, console=console)
    full = FullStack(stack, console)
    if stack.target == "aws":  # the sweep deletes by tag: make sure these are the account's tags we mean
        check_account(expected_account("aws", os.environ), caller_account(full.clients("sts"), "aws"), "aws")
    with progress_shown(stack, console, stack.live):
        results = teardown_run(full)  # prints each step as it finishes
    ok = td.teardown_ok(results)
    console.print(
        f"down: run {stack.run.id} " + ("torn down, nothing left" if ok else "NOT clean (see above)"), markup=False
    )
    return 0 if ok else 1
