"""Supervised host processes: each with its own log file, a readiness probe, a crash report naming the
last lines of its log, and a stop that takes its whole process group (nothing of a run keeps running)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from harness.errors import EnvironmentProblem

HOST = "127.0.0.1"  # everything a run starts listens on loopback only
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 5


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined with ' | ' so a crash report stays one line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"no log at {path}"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else f"empty log {path}"


@dataclass
class Supervised:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def crashed(self) -> str | None:
        """One line when the process has exited (with its code and log tail), else None."""
        code = self.process.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}: {log_tail(self.log)} (log: {self.log})"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Supervisor:
    """Starts processes into `log_dir` and stops them all, last started first."""

    log_dir: Path
    running: list[Supervised] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        ready: Callable[[], bool],
        timeout_s: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Supervised:
        """Start `command`, then wait until `ready()`; a crash or time-out is one line with the log's tail."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as handle:
            try:
                process = subprocess.Popen(
                    list(command),
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: a stop reaches every child it forks
                    env=dict(os.environ if env is None else env),
                    cwd=cwd,
                )
            except OSError as exc:
                raise EnvironmentProblem(f"{name}: cannot start {command[0]} ({exc.strerror})") from None
        supervised = Supervised(name, process, log)
        self.running.append(supervised)
        self._wait_ready(supervised, ready, timeout_s)
        return supervised

    @staticmethod
    def _wait_ready(supervised: Supervised, ready: Callable[[], bool], timeout_s: float) -> None:
        def probe() -> bool:
            if crash := supervised.crashed():
                raise EnvironmentProblem(crash)
            return ready()

        try:
            Retrying(
                retry=retry_if_result(lambda ok: not ok),
                stop=stop_after_delay(timeout_s),
                wait=wait_exponential(multiplier=0.1, max=1.0),
            )(probe)
        except RetryError:
            raise EnvironmentProblem(
                f"{supervised.name} was not ready within {timeout_s:.0f} s: {log_tail(supervised.log)} "
                f"(log: {supervised.log})"
            ) from None

    def crashed(self) -> list[str]:
        return [crash for s in self.running if (crash := s.crashed())]

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()
