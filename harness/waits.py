"""Poll a judgement until it settles: the one wait loop every e2e stage uses.

``wait_for(fetch, judge, timeout)`` calls ``fetch()`` (thin I/O), hands what it returns to ``judge`` (a pure
function returning a ``Result``) and polls again, with exponential backoff and jitter, while the verdict is
PENDING. It stops at the first PASS or FAIL. When ``timeout`` seconds pass first, it returns the last
verdict turned into FAIL: ``"timed out after 300s: <last why>"`` with the last evidence, so a report says
what was still missing rather than only that time ran out. Every returned Result carries ``waited_s``
and ``polls`` in its evidence.

A wait can also know when to give up early: ``terminal(observed)`` returns the words of the component waited on
when what it reports makes success impossible without a change by a person (Karpenter's
NoCompatibleInstanceTypes on the NodePool, harness.kube.terminal holds which words end which wait); a PENDING
verdict then becomes FAIL at once with those words. ``progress`` (a ``WaitProgress``) shows what a long wait awaits
and its elapsed time against its limit: a rich progress line on a terminal, a line a minute otherwise (CI logs).

The clock and sleep are injected so tests run the whole loop instantly; tenacity drives the retries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn
from tenacity import RetryCallState, Retrying, retry_if_result, wait_exponential, wait_random

from harness.results import Result, Status

T = TypeVar("T")
PROGRESS_LINE_EVERY_S = 60.0  # without a terminal (CI logs): one line a minute


@dataclass
class WaitProgress:
    """What a wait awaits and how long it has waited against its limit, for a person watching the run.

    On a terminal a rich progress line (replaced as the wait goes on, gone when it ends); otherwise a plain line
    each time another minute has passed, so a CI log shows a wait is alive and what it still misses."""

    console: Console
    limit: float
    _shown: Progress | None = None
    _task: TaskID | None = None
    _lines: int = 0  # minutes reported so far

    def line(self, verdict: Result, waited: float) -> str:
        return f"waiting {waited:.0f} s of {self.limit:.0f} s for {verdict.name}: {verdict.why}"

    def __call__(self, verdict: Result, waited: float) -> None:
        if self._shown is not None and self._task is not None:
            self._shown.update(self._task, description=escape(self.line(verdict, waited)))
        elif waited >= (self._lines + 1) * PROGRESS_LINE_EVERY_S:
            self._lines = int(waited // PROGRESS_LINE_EVERY_S)
            self.console.print(self.line(verdict, waited), markup=False, highlight=False)

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        """The rich line for as long as the wait runs (wait_for enters it)."""
        if not self.console.is_terminal:
            yield
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=self.console, transient=True) as bar:
            self._shown, self._task = bar, bar.add_task("waiting", total=None)
            try:
                yield
            finally:
                self._shown = self._task = None


def wait_for(
    fetch: Callable[[], T],
    judge: Callable[[T], Result],
    timeout: float,
    *,
    interval: float = 5.0,
    max_interval: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    retry_on: tuple[type[Exception], ...] = (),
    on_poll: Callable[[Result], None] | None = None,
    terminal: Callable[[T], str | None] | None = None,
    progress: WaitProgress | None = None,
) -> Result:
    """Judge ``fetch()`` until PASS or FAIL, at most ``timeout`` seconds; see the module docstring.

    ``retry_on`` lists exception types from ``fetch`` that count as "not yet" (PENDING with the error as
    the why) instead of ending the wait, e.g. DNS failures while a new load balancer's name propagates.
    ``on_poll`` sees every verdict as it comes. ``terminal`` and ``progress``: see the module docstring. Waits
    double from ``interval`` up to ``max_interval``, plus up to ``interval`` of random jitter, and never sleep
    past the deadline.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    started = clock()
    deadline = started + timeout
    polls = 0
    backoff = wait_exponential(multiplier=interval, max=max_interval) + wait_random(0, interval)
    judged: list[Result] = []  # the verdicts so far: a read error reports alongside the latest one

    def attempt() -> Result:
        nonlocal polls
        polls += 1
        try:
            observed = fetch()
        except retry_on as exc:
            previous = judged[-1] if judged else None
            verdict = Result.pending(
                previous.name if previous else getattr(judge, "__name__", "wait"),
                f"could not read yet: {type(exc).__name__}: {exc}"
                + (f" (last verdict: {previous.why})" if previous else ""),
                **(previous.evidence if previous else {}),
            )
        else:
            verdict = judge(observed)
            hopeless = terminal(observed) if terminal is not None and verdict.status is Status.PENDING else None
            if hopeless:
                verdict = Result(verdict.name, Status.FAIL, hopeless, {**verdict.evidence, "last_verdict": verdict.why})
            judged.append(verdict)
        if on_poll is not None:
            on_poll(verdict)
        if progress is not None:
            progress(verdict, clock() - started)
        return verdict

    def out_of_time(_: RetryCallState) -> bool:
        return clock() >= deadline

    def next_wait(state: RetryCallState) -> float:
        return max(0.0, min(backoff(state), deadline - clock()))

    retrying = Retrying(
        retry=retry_if_result(lambda verdict: verdict.status is Status.PENDING),
        stop=out_of_time,
        wait=next_wait,
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    with progress.shown() if progress is not None else contextlib.nullcontext():
        last: Result = retrying(attempt)
    waited = round(clock() - started, 3)
    evidence = {**last.evidence, "waited_s": waited, "polls": polls}
    if last.status is Status.PENDING:
        return Result(last.name, Status.FAIL, f"timed out after {timeout:g}s: {last.why}", evidence)
    return replace(last, evidence=evidence)
