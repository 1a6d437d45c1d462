"""Poll a judgement until it settles: the one wait loop every e2e stage uses.

``wait_for(fetch, judge, timeout)`` calls ``fetch()`` (thin I/O), hands what it returns to ``judge`` (a pure
function returning a ``Result``) and polls again, with exponential backoff and jitter, while the verdict is
PENDING. It stops at the first PASS or FAIL. When ``timeout`` seconds pass first, it returns the last
verdict turned into FAIL: ``"timed out after 300s: <last why>"`` with the last evidence, so a report says
what was still missing rather than only that time ran out. Every returned Result carries ``waited_s``
and ``polls`` in its evidence.

The clock and sleep are injected so tests run the whole loop instantly; tenacity drives the retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, wait_exponential, wait_random

from harness.results import Result, Status

T = TypeVar("T")


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
) -> Result:
    """Judge ``fetch()`` until PASS or FAIL, at most ``timeout`` seconds; see the module docstring.

    ``retry_on`` lists exception types from ``fetch`` that count as "not yet" (PENDING with the error as
    the why) instead of ending the wait, e.g. DNS failures while a new load balancer's name propagates.
    ``on_poll`` sees every verdict as it comes (progress output). Waits double from ``interval`` up to
    ``max_interval``, plus up to ``interval`` of random jitter, and never sleep past the deadline.
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
            judged.append(verdict)
        if on_poll is not None:
            on_poll(verdict)
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
    last: Result = retrying(attempt)
    waited = round(clock() - started, 3)
    evidence = {**last.evidence, "waited_s": waited, "polls": polls}
    if last.status is Status.PENDING:
        return Result(last.name, Status.FAIL, f"timed out after {timeout:g}s: {last.why}", evidence)
    return replace(last, evidence=evidence)
