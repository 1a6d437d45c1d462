"""wait_for with a fake clock whose time only moves when the loop sleeps: no real waiting."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from kube_fixtures import FakeKubeClient, items, load
from rich.console import Console

from harness.kube.core import GAME_PODS, judge_workload_off_ops
from harness.kube.terminal import GAME_PLACEMENT_WAIT, ends
from harness.results import Result, Status
from harness.waits import WaitProgress, wait_for


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def verdicts(*statuses: Status) -> Iterator[Result]:
    for number, status in enumerate(statuses, start=1):
        yield Result("judge", status, f"poll {number}", {"poll": number})


def test_polls_while_pending_and_returns_the_first_pass() -> None:
    time = FakeTime()
    sequence = verdicts(Status.PENDING, Status.PENDING, Status.PASS, Status.FAIL)
    result = wait_for(lambda: next(sequence), lambda r: r, 600, clock=time.clock, sleep=time.sleep)
    assert (result.status, result.why) == (Status.PASS, "poll 3")
    assert result.evidence["poll"] == 3 and result.evidence["polls"] == 3
    assert len(time.sleeps) == 2
    assert result.evidence["waited_s"] == pytest.approx(sum(time.sleeps), abs=1e-3)


def test_stops_at_the_first_fail_without_waiting_for_the_timeout() -> None:
    time = FakeTime()
    sequence = verdicts(Status.PENDING, Status.FAIL, Status.PASS)
    result = wait_for(lambda: next(sequence), lambda r: r, 600, clock=time.clock, sleep=time.sleep)
    assert (result.status, result.why) == (Status.FAIL, "poll 2")
    assert len(time.sleeps) == 1


def test_timeout_turns_the_last_pending_verdict_into_fail_with_its_evidence() -> None:
    time = FakeTime()
    polls = iter(range(1, 1000))

    def judge(number: int) -> Result:
        return Result.pending("pods ready", f"{number} of 6 pods Ready", ready=number)

    result = wait_for(lambda: next(polls), judge, 120, interval=5, max_interval=30, clock=time.clock, sleep=time.sleep)
    assert result.status is Status.FAIL
    last = result.evidence["ready"]
    assert result.why == f"timed out after 120s: {last} of 6 pods Ready"
    assert result.name == "pods ready"
    assert result.evidence["waited_s"] == pytest.approx(120)
    assert result.evidence["polls"] == last


def test_backoff_grows_with_jitter_and_never_sleeps_past_the_deadline() -> None:
    time = FakeTime()
    wait_for(
        lambda: None,
        lambda _: Result.pending("j", "not yet"),
        300,
        interval=5,
        max_interval=30,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert sum(time.sleeps) == pytest.approx(300)  # the last sleep is cut to end exactly at the deadline
    assert all(0 <= s <= 30 + 5 for s in time.sleeps)  # the cap plus at most one interval of jitter
    assert time.sleeps[0] >= 5  # never busy-polls
    assert max(time.sleeps) > time.sleeps[0]  # grows


def test_listed_fetch_errors_count_as_not_yet() -> None:
    time = FakeTime()
    answers: Iterator[int | Exception] = iter([ConnectionError("name or service not known"), 200])

    def fetch() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def judge(status: int) -> Result:
        return Result.passed("page", f"HTTP {status}")

    result = wait_for(fetch, judge, 60, retry_on=(ConnectionError,), clock=time.clock, sleep=time.sleep)
    assert (result.status, result.why, result.evidence["polls"]) == (Status.PASS, "HTTP 200", 2)


def test_fetch_errors_that_persist_time_out_with_the_error_as_the_reason() -> None:
    time = FakeTime()

    def fetch() -> int:
        raise ConnectionError("name or service not known")

    def judge_game_page(status: int) -> Result:
        return Result.passed("page", str(status))

    result = wait_for(fetch, judge_game_page, 60, retry_on=(ConnectionError,), clock=time.clock, sleep=time.sleep)
    assert result.status is Status.FAIL
    assert result.why == "timed out after 60s: could not read yet: ConnectionError: name or service not known"
    assert result.name == "judge_game_page"


def test_a_read_error_after_a_verdict_keeps_that_verdicts_name_and_evidence() -> None:
    time = FakeTime()
    answers: Iterator[int | Exception] = iter([503, *[ConnectionError("connection reset")] * 100])

    def fetch() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def judge(status: int) -> Result:
        return Result.pending("game page", f"HTTP {status}", status=status)

    result = wait_for(fetch, judge, 60, retry_on=(ConnectionError,), clock=time.clock, sleep=time.sleep)
    assert (result.name, result.evidence["status"]) == ("game page", 503)
    assert result.why == (
        "timed out after 60s: could not read yet: ConnectionError: connection reset (last verdict: HTTP 503)"
    )


def test_other_fetch_errors_end_the_wait() -> None:
    time = FakeTime()

    def fetch() -> int:
        raise PermissionError("403")

    with pytest.raises(PermissionError):
        wait_for(fetch, lambda s: Result.passed("x", "y"), 60, clock=time.clock, sleep=time.sleep)
    assert time.sleeps == []


def test_every_verdict_is_reported_as_it_comes() -> None:
    time = FakeTime()
    seen: list[str] = []
    sequence = verdicts(Status.PENDING, Status.PASS)
    wait_for(
        lambda: next(sequence),
        lambda r: r,
        60,
        clock=time.clock,
        sleep=time.sleep,
        on_poll=lambda r: seen.append(r.why),
    )
    assert seen == ["poll 1", "poll 2"]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        wait_for(lambda: None, lambda _: Result.passed("x", "y"), 0)


def test_a_reader_fetch_and_a_judge_compose_into_a_wait() -> None:
    """The shape every e2e stage has: thin reads through KubeClient, a pure judge, wait_for around both."""
    time = FakeTime()
    reader = FakeKubeClient(load("recorded/scaling/nodes.yaml"), load("recorded/scaling/pods_game-2048.yaml"))
    result = wait_for(
        lambda: (reader.list_pods(GAME_PODS.namespace, GAME_PODS.label_selector), reader.list_nodes()),
        lambda observed: judge_workload_off_ops(*observed),
        60,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert result.status is Status.PASS and result.evidence["polls"] == 1


# ---------------------------------------------------------------- the controller's final words, progress


def game_placement_wait(events: list[dict[str, object]], timeout: float, time: FakeTime) -> Result:
    """The recorded run whose game pods never scheduled, waited on with the game placement's final events."""
    pods, nodes = items("recorded/deadline/pods_game-2048.yaml"), items("recorded/synced/nodes.yaml")
    return wait_for(
        lambda: (pods, nodes, events),
        lambda seen: judge_workload_off_ops(seen[0], seen[1]),
        timeout,
        clock=time.clock,
        sleep=time.sleep,
        terminal=ends(GAME_PLACEMENT_WAIT, lambda seen: seen[2], since=None),
    )


def test_a_final_event_ends_a_pending_wait_at_once_in_the_controllers_words() -> None:
    time = FakeTime()
    # Karpenter's words for why the pods never scheduled, recorded with a NodePool no instance type satisfies.
    folder = "recorded/nodepool_no_instance_types"
    events = [*items(f"{folder}/events_default.yaml"), *items(f"{folder}/events_game-2048.yaml")]
    result = game_placement_wait(events, 600, time)
    assert result.status is Status.FAIL and time.sleeps == []  # the first poll, not 600 s later
    assert result.why == (
        "karpenter: NodePool/apps NoCompatibleInstanceTypes: NodePool requirements filtered out all compatible "
        "available instance types"
    )
    assert result.evidence["last_verdict"] == "no game-2048 pod is scheduled yet"


def test_without_a_final_event_the_wait_runs_its_course() -> None:
    # The kube-scheduler's FailedScheduling, recorded as the game waited for a node: how every scale-out starts.
    events = items("recorded/deadline/events_game-2048.yaml")
    assert any(e["reason"] == "FailedScheduling" for e in events)
    result = game_placement_wait(events, 120, FakeTime())
    assert result.why == "timed out after 120s: no game-2048 pod is scheduled yet"


def test_a_long_wait_says_a_line_a_minute_without_a_terminal() -> None:
    time = FakeTime()
    out = io.StringIO()
    progress = WaitProgress(Console(file=out, width=200), 200)
    wait_for(
        lambda: None,
        lambda _: Result.pending("game pods placed", "no game-2048 pod is scheduled yet"),
        200,
        interval=5,
        max_interval=30,
        clock=time.clock,
        sleep=time.sleep,
        progress=progress,
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # about 60, 120 and 180 s in: not every poll
    assert all(
        re.fullmatch(r"waiting \d+ s of 200 s for game pods placed: no game-2048 pod is scheduled yet", line)
        for line in lines
    )
    assert [int(line.split()[1]) // 60 for line in lines] == [1, 2, 3]


def test_on_a_terminal_the_wait_is_one_live_line() -> None:
    time = FakeTime()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    sequence = verdicts(Status.PENDING, Status.PASS)
    wait_for(
        lambda: next(sequence), lambda r: r, 60, clock=time.clock, sleep=time.sleep, progress=WaitProgress(console, 60)
    )
    shown = out.getvalue()
    assert re.search(r"waiting \d+ s of 60 s for judge: poll 2", shown)  # redrawn with the latest verdict
    assert shown.endswith("\x1b[2K")  # and erases it when the wait ends: the stage's own result follows
