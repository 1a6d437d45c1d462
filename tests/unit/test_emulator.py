"""The moto server lifecycle: real processes on 127.0.0.1 (no network beyond loopback, no containers)."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from harness.aws import emulator as emu
from harness.errors import EnvironmentProblem


@pytest.fixture
def running(tmp_path: Path) -> Iterator[emu.Emulator]:
    server = emu.start(tmp_path / "emulator.log")
    yield server
    server.stop()


def test_start_answers_and_serves_boto3_then_stops(running: emu.Emulator, pid_alive: Callable[[int], bool]) -> None:
    assert running.owned and running.alive() and emu.answers(running.endpoint)
    env = running.child_env("us-east-1", base={"AWS_PROFILE": "prod", "PATH": "/bin"})
    assert env["AWS_ENDPOINT_URL"] == running.endpoint and "AWS_PROFILE" not in env
    sqs = boto3.client(
        "sqs",
        endpoint_url=running.endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    assert "QueueUrl" in sqs.create_queue(QueueName="probe")
    pid = running.pid
    assert pid is not None
    running.stop()
    running.stop()  # twice is fine
    assert not pid_alive(pid) and not emu.answers(running.endpoint)


def test_a_detached_emulator_is_stopped_from_its_recorded_settings(running: emu.Emulator) -> None:
    again = emu.Emulator.from_settings(running.settings())
    assert again.pid == running.pid and again.process is None and again.alive()
    again.stop()
    assert running.pid is not None and not emu.is_moto_process(running.pid)


def test_death_is_noticed(running: emu.Emulator) -> None:
    assert running.death_notice() is None
    assert running.process is not None
    running.process.send_signal(signal.SIGKILL)
    running.process.wait()
    assert running.death_notice() == f"the emulator (moto server pid {running.pid}) exited"


def test_a_taken_port_is_one_clear_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind((emu.HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EnvironmentProblem, match=f"emulator port {port} on 127.0.0.1 is taken"):
            emu.start(tmp_path / "emulator.log", port=port)
    assert not (tmp_path / "emulator.log").exists()


def test_a_server_that_dies_at_start_is_reported_with_its_last_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emu, "server_command", lambda port: [sys.executable, "-c", "print('no module moto'); exit(3)"])
    with pytest.raises(EnvironmentProblem, match=r"exited at start \(code 3\): no module moto"):
        emu.start(tmp_path / "emulator.log")


def test_aws_endpoint_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    assert emu.external({}) is None
    external = emu.external({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert external is not None and not external.owned
    external.stop()  # never ours to stop
    assert external.death_notice() is None


def test_only_moto_processes_count_as_the_emulator() -> None:
    import os

    assert not emu.is_moto_process(os.getpid())
    assert not emu.is_moto_process(2**22 + 12345)
