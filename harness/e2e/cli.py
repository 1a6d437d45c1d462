"""`harness e2e`: the staged end-to-end run on a real account (or the emulator), from the command line.

Before anything is created: the account named by E2E_AWS_ACCOUNT_ID must be the credentials' account
(STS), the region must be explicit, and the user confirms what will be created and its rough hourly cost
(or passes --yes; without a terminal the run refuses). A watchdog stops the run past --max-minutes and
tears down. Teardown runs after any failure; on Ctrl-C too (a second Ctrl-C leaves it to
`make e2e-down RUN_ID=...`). The stages: harness.e2e.orchestration.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.aws.clients import AwsTarget, caller_account, check_account, expected_account, resolve_region
from harness.e2e import report as rpt
from harness.e2e.evidence import collect_evidence
from harness.e2e.gitops_source import GITOPS_REPO_ENV, gitops_source
from harness.e2e.orchestration import E2E, GITOPS_COMMIT
from harness.e2e.safety import confirm, creation_summary
from harness.e2e.stages import (
    DEFAULT_MAX_MINUTES,
    STAGES,
    UPGRADE_STAGES,
    Watchdog,
    execute_stages,
    passed_stages,
    select_stages,
    write_stage_log,
)
from harness.e2e.upgrade import UpgradeDrill
from harness.errors import EnvironmentProblem, InputError
from harness.project import KUBERNETES_CAPABILITY, TARGETS, capabilities, repo_root
from harness.targets import pod_network
from harness.targets.cli import progress_shown
from harness.targets.local import toolchain_entries, unavailable
from harness.targets.stack import Stack
from harness.terraform.runner import find_cli
from harness.toolchain.build import Entry, cache_root, entry_problem, go_for
from harness.toolchain.progress import build_shown


def preflight(stack: Any, stages: Sequence[str]) -> None:
    """Mistakes that would otherwise surface after money is spent: no Terraform, missing platform inputs
    (e.g. the API CIDRs), no add-ons root."""
    if {"platform", "addons", "teardown"} & set(stages):
        find_cli()
    if "platform" in stages:
        stack.variables()
    if "addons" in stages and not (repo_root() / "infra" / "addons" / "main.tf").is_file():
        raise InputError("infra/addons/main.tf not found: the add-ons stage needs the add-ons root")


def build_report(e2e: E2E, records: Sequence[rpt.StageRecord], region: str, notes: Sequence[str]) -> rpt.RunReport:
    figures = e2e.figures()
    return rpt.RunReport(
        e2e.run.id,
        e2e.run.target,
        region,
        e2e.run.created_at,
        tuple(records),
        figures,
        e2e.timeline,
        tuple(notes),
        gitops_commit=str(e2e.run.settings.get(GITOPS_COMMIT, "")),
    )


def stage_table(records: Sequence[rpt.StageRecord], title: str) -> Table:
    table = Table(title=title)
    for column in ("stage", "result", "seconds", "why"):
        table.add_column(column)
    colour = {rpt.PASSED: "green", rpt.FAILED: "red", rpt.NOT_APPLICABLE: "yellow"}
    for r in records:
        seconds = "" if r.seconds is None else f"{r.seconds:.0f}"
        table.add_row(r.name, f"[{colour.get(r.status, 'dim')}]{r.status}[/]", seconds, escape(r.why))
    return table


def cmd_e2e(args: argparse.Namespace) -> int:
    return staged_run(args, STAGES, E2E, "e2e run")


def cmd_upgrade(args: argparse.Namespace) -> int:
    return staged_run(args, UPGRADE_STAGES, UpgradeDrill, "upgrade rehearsal")


def staged_run(args: argparse.Namespace, stages: Sequence[str], kind: type[E2E], title: str) -> int:
    """`stages` of a `kind` run (harness e2e, harness upgrade) from the command line, teardown always last."""
    console = Console(highlight=False, soft_wrap=True)
    env = dict(os.environ)
    if args.resume and not args.run_id:
        raise InputError("--resume needs --run-id (the run to continue)")
    caps = capabilities(args.target)
    # Everything that can refuse, refuses before anything is created.
    account = expected_account(args.target, env)
    if args.target == "aws":
        region = resolve_region(args.target, args.region, env, "")
        check_account(account, caller_account(AwsTarget(caps, region).client("sts"), "aws"), "aws")
    stack = Stack.create(args.target, args.run_id, live=args.live, console=console, api_public_cidrs=args.api_cidrs)
    run = stack.run
    selections = select_stages(
        only=args.only or (),
        skip=args.skip or (),
        resume=args.resume,
        passed_before=passed_stages(run),
        target=args.target,
        kubernetes_unsupported=caps.reason(KUBERNETES_CAPABILITY),
        stages=stages,
    )
    to_run = [s.stage for s in selections if not s.status]
    # The local target serves this working tree from its own Git endpoint (harness.targets.local); elsewhere
    # Argo CD syncs the commit checked out here, which must be committed and pushed.
    needs_git_url = "addons" in to_run and not caps.local_kubernetes
    gitops = gitops_source(args.gitops_repo_url, env, repo_root()) if needs_git_url else ("", "")
    watchdog = Watchdog(args.max_minutes * 60)
    e2e = kind(stack, console, gitops=gitops, watchdog=watchdog)
    try:
        if caps.emulated:
            stack.emulator(start=True)
            region = resolve_region(args.target, args.region, env, stack.region)
            check_account(account, caller_account(e2e.clients("sts"), args.target), args.target)
        run.settings["region"] = region
        run.save()
        preflight(stack, to_run)
        for line in creation_summary(run, region, account, to_run, args.max_minutes):
            console.print(escape(line))
        confirm(args.yes, sys.stdin, input, account)
        # The watchdog and time to green count from here, not from the prompt.
        e2e.watchdog = watchdog = Watchdog(args.max_minutes * 60)
        e2e.run_started = time.monotonic()
    except BaseException:
        if caps.emulated:
            stack.down()  # stop the emulator this command started; nothing else exists yet
        raise
    console.print(f"run directory: {run.dir}", markup=False)

    def record(r: rpt.StageRecord) -> None:
        write_stage_log(run, [r])
        console.print(f"stage {r.name}: {r.status}: {escape(r.why)}")

    try:
        with progress_shown(stack, console, args.live):
            records = execute_stages(
                selections, {stage: getattr(e2e, stage) for stage in stages}, watchdog, on_record=record
            )
    except KeyboardInterrupt:
        console.print(f"teardown interrupted: finish it with `make e2e-down RUN_ID={run.id}`", markup=False)
        raise
    notes = []
    if any(r.status == rpt.FAILED for r in records):
        notes.append(f"evidence bundle: {collect_evidence(e2e).relative_to(run.dir)}/ in the run directory")
    if "teardown" not in to_run:
        notes.append(f"the run is still up: tear it down with `make e2e-down RUN_ID={run.id}`")
    written = rpt.write_all(build_report(e2e, records, region, notes), run.dir)
    console.print(stage_table(records, f"{title} {run.id} on {run.target}"))
    for note in notes:
        console.print(escape(note))
    console.print(f"report: {written['markdown']}  junit: {written['junit']}", markup=False)
    return 0 if all(r.status in rpt.OK_STAGE_STATES for r in records) else 1


def add_run_arguments(parser: argparse.ArgumentParser, stages: Sequence[str]) -> None:
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="aws",
        help="aws (needs E2E_AWS_ACCOUNT_ID and a region), local (`make toolchain`) or emulator",
    )
    parser.add_argument("--run-id", help="name the run (default: a new id); with --resume, the run to continue")
    parser.add_argument("--region", help="AWS region (else AWS_REGION; there is no default on aws)")
    parser.add_argument("--yes", action="store_true", help="do not ask before creating resources")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULT_MAX_MINUTES,
        help=f"watchdog: stop and tear down after this long (default {DEFAULT_MAX_MINUTES:g})",
    )
    parser.add_argument("--skip", action="append", choices=stages, help="skip a stage (repeatable)")
    parser.add_argument("--only", action="append", choices=stages, help="run only these stages (repeatable)")
    parser.add_argument("--resume", action="store_true", help="skip stages that passed in an earlier attempt")
    parser.add_argument(
        "--api-cidr", action="append", dest="api_cidrs", help="CIDR allowed to the Kubernetes API (aws)"
    )
    parser.add_argument(
        "--gitops-repo-url",
        help=f"git URL Argo CD syncs gitops/ from, at the commit checked out here (else ${GITOPS_REPO_ENV}, else "
        "this checkout's origin)",
    )
    parser.add_argument("--live", action="store_true", help="stream Terraform's output")


def register(subparsers: Any) -> None:
    e2e = subparsers.add_parser("e2e", help="staged end-to-end run on a real AWS account (or the emulator)")
    add_run_arguments(e2e, STAGES)
    e2e.set_defaults(func=cmd_e2e)
    upgrade = subparsers.add_parser(
        "upgrade",
        help="rehearse the EKS minor upgrade (versions.yaml upgrade_from_kubernetes -> kubernetes): gate, stand up "
        "at the old minor, upgrade, Karpenter drift, the game against its budget, teardown",
    )
    add_run_arguments(upgrade, UPGRADE_STAGES)
    upgrade.set_defaults(func=cmd_upgrade)

    demo = subparsers.add_parser(
        "demo", help="offline: every stage on the local target (the emulator's AWS half without the toolchain)"
    )
    demo.add_argument("--run-id", help="name the run (default: a new id)")
    demo.add_argument("--keep-stack", action="store_true", help="leave the run up (tear down later with `down`)")
    demo.add_argument("--live", action="store_true", help="stream Terraform's output")
    demo.set_defaults(func=cmd_demo)


@dataclass(frozen=True)
class DemoPlan:
    target: str  # "local" or "emulator"
    build_toolchain: bool  # build what the local target lacks first
    note: str | None  # one line said before anything runs


def plan_demo(unbuilt: str | None, go_problem: str | None, no_pods: str | None = None) -> DemoPlan:
    """The best offline demo this machine can give: `local` when the toolchain is built, or once it is built when
    Go can build it; else the emulator, after one line on what brings the Kubernetes half.

    unbuilt: why the local target cannot run yet (None: it can); go_problem: why Go cannot build it (None: it can);
    no_pods: why this machine cannot run the ops nodes' pods whatever is built (not root).
    """
    if no_pods is not None and (unbuilt is None or go_problem is None):
        return DemoPlan(
            "emulator",
            build_toolchain=False,
            note=f"demo on the emulator, the AWS half; the Kubernetes half runs on the local target where {no_pods}",
        )
    if unbuilt is None:
        return DemoPlan("local", build_toolchain=False, note=None)
    if go_problem is None:
        return DemoPlan("local", build_toolchain=True, note=None)
    return DemoPlan(
        "emulator",
        build_toolchain=False,
        note=f"demo on the emulator, the AWS half; the Kubernetes half (cluster, add-ons, Argo CD, the ALB, "
        f"Karpenter) runs on the local target once the toolchain is built: {unbuilt}; {go_problem}",
    )


def go_problem(entries: list[Entry]) -> str | None:
    """Why the Go on PATH cannot build `entries` (one line with the fix), or None when it can."""
    try:
        go_for(entries)
    except EnvironmentProblem as exc:
        return str(exc)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """The e2e's stages on the best offline target this machine has (plan_demo). A toolchain that Go can build is
    built first, announced with its one-time cost and shown as it builds; a Ctrl-C leaves no half-built binary."""
    console = Console(highlight=False, soft_wrap=True)
    unbuilt = unavailable()
    todo = [entry for entry in toolchain_entries() if entry_problem(entry) is not None] if unbuilt else []
    plan = plan_demo(unbuilt, go_problem(todo) if todo else None, pod_network.unavailable())
    if plan.note:
        console.print(plan.note, markup=False)
    if plan.build_toolchain:
        build_shown(todo, cache_root(), console)
    e2e_args = argparse.Namespace(
        target=plan.target,
        run_id=args.run_id,
        region=None,
        yes=True,  # offline: nothing is billed, nothing to confirm
        max_minutes=DEFAULT_MAX_MINUTES,
        skip=["teardown"] if args.keep_stack else [],
        only=[],
        resume=False,
        api_cidrs=None,
        gitops_repo_url=None,
        live=args.live,
    )
    return cmd_e2e(e2e_args)
