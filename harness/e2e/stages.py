"""The e2e's stage machine: which stages run and why the others do not, the watchdog, the record of each
stage in the run directory (for --resume), and running the stages in order with teardown always last.

Pure apart from the stage record: the stages themselves are callables (harness.e2e.orchestration).
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from harness.e2e import report as rpt
from harness.errors import HarnessError, InputError
from harness.results import Result
from harness.run import Run

STAGES = ("platform", "addons", "access", "checks", "karpenter", "teardown")
# `harness upgrade`: the gate proves the step first; the upgrade runs once the platform passed its checks.
UPGRADE_STAGES = ("gate", "platform", "addons", "access", "checks", "upgrade", "teardown")
KUBERNETES_STAGES = frozenset({"addons", "access", "karpenter", "upgrade"})
STAGES_FILE = "stages.json"
DEFAULT_MAX_MINUTES = 120.0  # the watchdog of `harness e2e` and of the pytest plugin


@dataclass(frozen=True)
class Selection:
    stage: str
    status: str = ""  # "" = run it; else the report status (skipped / n/a) with `why`
    why: str = ""


def select_stages(
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    resume: bool = False,
    passed_before: Sequence[str] = (),
    target: str,
    kubernetes_unsupported: str = "",
    stages: Sequence[str] = STAGES,
) -> list[Selection]:
    """Which of `stages` run, and why the others do not. Teardown runs unless excluded, even after failures."""
    unknown = sorted((set(only) | set(skip)) - set(stages))
    if unknown:
        raise InputError(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(stages)}")
    chosen = []
    for stage in stages:
        if only and stage not in only:
            chosen.append(Selection(stage, rpt.SKIPPED, f"not selected (--only {','.join(only)})"))
        elif stage in skip:
            chosen.append(Selection(stage, rpt.SKIPPED, f"skipped (--skip {stage})"))
        elif kubernetes_unsupported and stage in KUBERNETES_STAGES:
            chosen.append(Selection(stage, rpt.NOT_APPLICABLE, f"not applicable on {target}: {kubernetes_unsupported}"))
        elif resume and stage in passed_before and stage != "teardown":
            chosen.append(Selection(stage, rpt.SKIPPED, "passed in an earlier attempt (--resume)"))
        else:
            chosen.append(Selection(stage))
    return chosen


# ---------------------------------------------------------------- watchdog and stage records


@dataclass
class Watchdog:
    """Stops the run past `max_seconds`: stages check it before starting, waits get `remaining()` as their
    bound and Terraform polls `reason()` while it runs (it then stops gracefully)."""

    max_seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    option: str = "--max-minutes"  # what sets the limit, named in the reason

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return max(0.0, self.max_seconds - self.elapsed())

    def reason(self) -> str | None:
        if self.elapsed() >= self.max_seconds:
            return f"watchdog: the run exceeded {self.option} {self.max_seconds / 60:g}"
        return None

    def bound(self, timeout: float) -> float:
        """A wait's timeout, cut to what the watchdog leaves (at least 1 s so the wait can still judge once)."""
        return max(1.0, min(timeout, self.remaining()))


class Watchable(Protocol):
    """What runs Terraform (a Terraform runner, or a Stack for its platform root): polls `watchdog` while it runs."""

    watchdog: Callable[[], str | None] | None


@contextlib.contextmanager
def watched(runner: Watchable, watchdog: Watchdog, also: Callable[[], str | None] = lambda: None) -> Iterator[None]:
    """Let the watchdog, and `also` (a crashed controller), stop a Terraform apply; never a destroy (teardown must
    be allowed to finish)."""
    own = runner.watchdog
    runner.watchdog = lambda: (own() if own else None) or watchdog.reason() or also()
    try:
        yield
    finally:
        runner.watchdog = own


@dataclass(frozen=True)
class StageOutcome:
    why: str
    results: tuple[Result, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def read_stage_log(run: Run) -> dict[str, dict[str, Any]]:
    path = run.path(STAGES_FILE)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: unreadable stage record ({exc})") from None
    return {str(k): dict(v) for k, v in data.items()}


def write_stage_log(run: Run, records: Sequence[rpt.StageRecord]) -> None:
    log = read_stage_log(run)
    for record in records:
        log[record.name] = {
            "status": record.status,
            "why": record.why,
            "seconds": record.seconds,
            "at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        }
    run.path(STAGES_FILE).write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")


def passed_stages(run: Run) -> list[str]:
    return [name for name, row in read_stage_log(run).items() if row.get("status") == rpt.PASSED]


def execute_stages(
    selections: Sequence[Selection],
    actions: Mapping[str, Callable[[], StageOutcome]],
    watchdog: Watchdog,
    *,
    on_record: Callable[[rpt.StageRecord], None] = lambda _r: None,
    clock: Callable[[], float] = time.monotonic,
) -> list[rpt.StageRecord]:
    """Run the selected stages in order. After a failure, an interrupt or the watchdog, the remaining
    stages are "not run", except teardown, which always runs when selected."""
    records: list[rpt.StageRecord] = []
    stop_reason = ""
    interrupted = False
    for selection in selections:
        stage = selection.stage
        if selection.status:
            record = rpt.StageRecord(stage, selection.status, selection.why)
        elif stop_reason and stage != "teardown":
            record = rpt.StageRecord(stage, rpt.NOT_RUN, f"not run: {stop_reason}")
        elif stage != "teardown" and (reason := watchdog.reason()):
            stop_reason = reason
            record = rpt.StageRecord(stage, rpt.NOT_RUN, f"not run: {reason}")
        else:
            started = clock()
            try:
                outcome = actions[stage]()
                status = rpt.PASSED if outcome.ok else rpt.FAILED
                why, results = outcome.why, outcome.results
                if not outcome.ok:
                    failed = [r for r in results if not r.ok]
                    why = f"{len(failed)} of {len(results)} judgement(s) failed: {failed[0].name}: {failed[0].why}"
            except HarnessError as exc:
                status, why, results = rpt.FAILED, str(exc), ()
            except Exception as exc:  # a bug or an unexpected API error must never skip the teardown
                why = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                status, results = rpt.FAILED, (Result.failed(stage, why, traceback=traceback.format_exc()),)
            except KeyboardInterrupt:
                if interrupted or stage == "teardown":
                    raise
                interrupted = True
                status, why, results = rpt.FAILED, "interrupted (Ctrl-C): tearing down; Ctrl-C again to stop", ()
            record = rpt.StageRecord(stage, status, why, round(clock() - started, 3), tuple(results))
            if status == rpt.FAILED and not stop_reason:
                stop_reason = f"stage {stage} failed"
                if (reason := watchdog.reason()) is not None:
                    stop_reason = reason
        records.append(record)
        on_record(record)
    return records
