"""Supervised processes across shells: a process started by one harness process is judged and stopped by
another from its record alone, and a record never signals a process that is not the one it names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import EnvironmentProblem
from harness.processes import ProcessRecord, Supervisor, judge_processes, stop_recorded
from harness.results import Status

SLEEP = shutil.which("sleep") or "/bin/sleep"


def members(pgid: int) -> list[str]:
    """Live processes of a group, by pgrep. Zombies (state Z) are not running: where PID 1 does not reap
    orphans they linger as entries only."""
    found = subprocess.run(["pgrep", "-g", str(pgid), "--runstates", "D,R,S,T"], capture_output=True, text=True)
    return found.stdout.split()


def test_a_record_lets_another_shell_see_and_stop_the_process_group(tmp_path: Path) -> None:
    recorded: list[ProcessRecord] = []
    supervisor = Supervisor(tmp_path, on_start=recorded.append)
    # A shell that forks a child: the stop must reach the whole group, not just the parent.
    # Ready once the record sees it (right after exec, /proc/PID/cmdline is briefly empty) and the child forked.
    command = ["/bin/sh", "-c", f"{SLEEP} 300 & wait"]
    child = supervisor.start(
        "pair", command, ready=lambda: recorded[0].running() and len(members(recorded[0].pid)) == 2, timeout_s=10
    )
    (record,) = recorded
    assert record.pid == child.process.pid and record.crashed() is None
    # "Another shell": only the record, as it comes back from the run's settings.
    again = ProcessRecord.from_settings(record.settings())
    stop_recorded([again])
    child.process.wait(timeout=5)
    assert not again.running()
    assert members(record.pid) == []


def test_a_record_whose_pid_now_runs_something_else_is_not_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen([SLEEP, "300"], start_new_session=True)
    try:
        stale = ProcessRecord("kube-apiserver", other.pid, "/opt/kube-apiserver", str(tmp_path / "x.log"))
        assert not stale.running()
        stale.stop()
        assert other.poll() is None  # still alive: the pid was reused by an unrelated program
    finally:
        other.kill()
        other.wait()


def test_a_dead_process_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    recorded: list[ProcessRecord] = []
    supervisor = Supervisor(tmp_path, on_start=recorded.append)
    code = "import sys; print('listen tcp 127.0.0.1:1: bind: address already in use'); sys.exit(3)"
    with pytest.raises(EnvironmentProblem, match=r"exited with code 3: listen tcp .* address already in use"):
        supervisor.start("flaky", [sys.executable, "-c", code], ready=lambda: False, timeout_s=10)
    (record,) = recorded  # recorded before it was ready: an interrupted start still knows what to stop
    crash = record.crashed()
    assert crash is not None and "flaky (pid" in crash and "address already in use" in crash


def test_a_watchdog_reason_ends_the_wait_at_once_and_none_lets_it_become_ready(tmp_path: Path) -> None:
    """A process that can never become ready (its identity refused) is given up on when the watchdog says why,
    long before its readiness times out; a silent watchdog changes nothing."""
    refused: list[str] = []
    supervisor = Supervisor(tmp_path, watchdog=lambda: refused[0] if refused else None)
    polls = iter(range(1_000_000))
    ready = supervisor.start("quiet", [SLEEP, "300"], ready=lambda: next(polls) >= 2, timeout_s=30)
    assert ready.crashed() is None

    def never_ready() -> bool:
        refused.append("karpenter got no AWS credentials: no Pod Identity association for kube-system/renamed")
        return False

    try:
        with pytest.raises(EnvironmentProblem, match=r"^karpenter got no AWS credentials: no Pod Identity"):
            supervisor.start("refused", [SLEEP, "300"], ready=never_ready, timeout_s=600)
    finally:
        supervisor.stop_all()


def test_stop_stops_those_processes_and_leaves_the_others_running(tmp_path: Path) -> None:
    """What a control-plane upgrade does: the old API server goes, its replacement of the same name and etcd stay."""
    supervisor = Supervisor(tmp_path)
    try:
        etcd = supervisor.start("etcd", [SLEEP, "300"], ready=lambda: True, timeout_s=5)
        old = supervisor.start("kube-apiserver", [SLEEP, "300"], ready=lambda: True, timeout_s=5)
        new = supervisor.start("kube-apiserver", [SLEEP, "300"], ready=lambda: True, timeout_s=5)
        supervisor.stop([old])
        old.process.wait(timeout=5)
        assert etcd.process.poll() is None and new.process.poll() is None
        assert supervisor.running == [etcd, new]
    finally:
        supervisor.stop_all()


def test_the_processes_judge_names_the_first_that_died_in_its_last_words() -> None:
    assert judge_processes(["etcd", "karpenter"], {}).status is Status.PASS
    died = "karpenter (pid 4242) is not running: panic: boom (log: karpenter.log)"
    failed = judge_processes(["etcd", "karpenter"], {"karpenter": died})
    assert failed.status is Status.FAIL and failed.why == died and failed.evidence["dead"] == ["karpenter"]


def test_two_port_blocks_never_hand_out_the_same_port_and_skip_one_in_use() -> None:
    """Two runs side by side (here two blocks in one process) get disjoint ports below the ephemeral range; a
    port something already listens on is skipped."""
    import socket

    from harness.processes import PORT_BLOCK, PortBlock

    first, second = PortBlock(), PortBlock()
    ours = [first.take("127.0.0.1") for _ in range(3)]
    theirs = [second.take("127.0.0.1") for _ in range(3)]
    try:
        assert not set(ours) & set(theirs)
        assert first.first != second.first and all(first.first <= p < first.first + PORT_BLOCK for p in ours)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", first.first + first.taken))
            listener.listen()
            assert first.take("127.0.0.1") == first.first + first.taken - 1 != listener.getsockname()[1]
    finally:
        for block in (first, second):
            if block.holder is not None:
                block.holder.close()
