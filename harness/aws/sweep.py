"""The tag sweep: delete everything still tagged with a run id, in dependency order, retrying what is still
held, and list again to prove it (harness.aws.leaks finds each kind); `harness sweep` runs it on its own.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from harness.aws.clients import (
    EMULATOR_REGION,
    AwsTarget,
    caller_account,
    check_account,
    expected_account,
    resolve_region,
)
from harness.aws.emulator import Emulator, external
from harness.aws.leaks import KINDS, ClientFactory, Kind, Leak, error_code, find_leaks, find_undeletable, is_gone
from harness.errors import EnvironmentProblem
from harness.project import TARGETS, capabilities, emulated
from harness.run import Run, load_run, runs_dir, validate_run_id

Sleep = Callable[[float], None]

# Error codes that mean "not yet": a dependency is still being released. Everything else fails at once.
TRANSIENT_CODES = frozenset(
    {
        "DependencyViolation",
        "ResourceInUse",
        "ResourceInUseException",
        "InvalidNetworkInterface.InUse",
        "InvalidIPAddress.InUse",
        "AuthFailure.ServiceLinkedRoleCreationNotPermitted",
        "DeleteConflict",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "IncorrectState",
        "InvalidParameterValue",  # e.g. an ENI still attached while its instance terminates
        "VolumeInUse",
    }
)


@dataclass(frozen=True)
class Outcome:
    leak: Leak
    deleted: bool
    error: str = ""


@dataclass
class SweepReport:
    run_id: str
    dry_run: bool
    found: list[Leak] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    remaining: list[Leak] = field(default_factory=list)
    undeletable: list[Leak] = field(default_factory=list)  # tagged, but of a kind the sweep cannot delete

    @property
    def clean(self) -> bool:
        if self.dry_run:
            return not self.found and not self.undeletable
        return not self.remaining and not self.undeletable and all(o.deleted for o in self.outcomes)

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "found"
        out = [f"sweep of run {self.run_id}: {verb} {len(self.found)} resource(s)"]
        out += [f"  {leak.label()}: {leak.why}" for leak in self.found]
        out += [f"  FAILED {o.leak.label()}: {o.error}" for o in self.outcomes if not o.deleted]
        out += [f"  still present: {leak.label()}" for leak in self.remaining]
        out += [f"  cannot delete (delete by hand): {leak.label()}" for leak in self.undeletable]
        if not self.dry_run:
            out.append("  clean: nothing tagged with the run id is left" if self.clean else "  NOT clean")
        return out


def is_transient(exc: BaseException) -> bool:
    return error_code(exc) in TRANSIENT_CODES


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying a delete whose dependencies are still being released (EKS: minutes)."""

    attempts: int = 40
    max_wait_seconds: float = 30.0


def delete_with_retries(clients: ClientFactory, leak: Leak, kind: Kind, policy: RetryPolicy, sleep: Sleep) -> Outcome:
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=1, max=policy.max_wait_seconds),
        sleep=sleep,
        reraise=False,
    )
    try:
        for attempt in retrying:
            with attempt:
                try:
                    kind.delete(clients, leak)
                except ClientError as exc:
                    if not is_gone(exc):
                        raise
    except RetryError as exc:
        last = exc.last_attempt.exception()
        return Outcome(leak, False, f"gave up after {policy.attempts} attempts: {_one_line(last)}")
    except (ClientError, BotoCoreError) as exc:
        return Outcome(leak, False, _one_line(exc))
    return Outcome(leak, True)


def _one_line(exc: BaseException | None) -> str:
    return str(exc).splitlines()[0] if exc else "unknown error"


def sweep(
    clients: ClientFactory,
    run_id: str,
    *,
    dry_run: bool = False,
    policy: RetryPolicy | None = None,
    sleep: Sleep | None = None,
    kinds: Sequence[Kind] = KINDS,
) -> SweepReport:
    """List what the run left; unless dry_run, delete it in dependency order and list again to prove it."""
    report = SweepReport(run_id, dry_run, found=find_leaks(clients, run_id, kinds))
    report.undeletable = find_undeletable(clients, run_id)
    if dry_run:
        return report
    by_name = {kind.name: kind for kind in kinds}
    for leak in report.found:
        report.outcomes.append(
            delete_with_retries(clients, leak, by_name[leak.kind], policy or RetryPolicy(), sleep or time.sleep)
        )
    report.remaining = find_leaks(clients, run_id, kinds)
    return report


# ---------------------------------------------------------------- `harness sweep`


def sweep_clients(run_id: str, target: str | None, region: str | None) -> tuple[Callable[[str], Any], str, str]:
    """Clients for the sweep from the run's record, or (no record on this machine) from the environment."""
    env = dict(os.environ)
    run: Run | None = None
    if (runs_dir() / run_id / "run.json").is_file():
        run = load_run(run_id)
    target = target or (run.target if run else "aws")
    recorded_region = str(run.settings.get("region", "")) if run else ""
    if emulated(target):
        recorded = run.settings.get("emulator") if run else None
        emulator = Emulator.from_settings(recorded) if recorded else external(env)
        if emulator is None or not emulator.alive():
            raise EnvironmentProblem(
                f"no running emulator for run {run_id}: nothing can be left in it "
                "(set AWS_ENDPOINT_URL to sweep another emulator)"
            )
        chosen = region or recorded_region or EMULATOR_REGION
        aws_target = AwsTarget(capabilities(target), chosen, emulator.endpoint)
    else:
        resolved = resolve_region(target, region or recorded_region or None, env, "")
        aws_target = AwsTarget(capabilities("aws"), resolved)
    account = expected_account(target, env)
    check_account(account, caller_account(aws_target.client("sts"), target), target)
    return aws_target.client, target, aws_target.region


def cmd_sweep(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    run_id = validate_run_id(args.run_id)
    clients, target, region = sweep_clients(run_id, args.target, args.region)
    console.print(
        f"sweeping run {run_id} on {target} ({region})" + (" - dry run" if args.dry_run else ""), markup=False
    )
    result = sweep(clients, run_id, dry_run=args.dry_run)
    for line in result.lines():
        console.print(escape(line))
    return 0 if result.clean else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sweep", help="list (--dry-run) or delete everything tagged with a run id")
    parser.add_argument("--run-id", required=True, help="the run whose leftovers to find")
    parser.add_argument("--target", choices=TARGETS, help="default: the run's target, else aws")
    parser.add_argument("--region", help="AWS region (else the run's, else AWS_REGION)")
    parser.add_argument("--dry-run", action="store_true", help="only list; delete nothing")
    parser.set_defaults(func=cmd_sweep)
