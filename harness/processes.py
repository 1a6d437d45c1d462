"""Supervised host processes: each with its own log file, a readiness probe, a crash report naming the
last lines of its log, and a stop that takes its whole process group (nothing of a run keeps running).

Each process runs in its own session, so it outlives the shell that started it (`harness up`); its record
(name, pid, executable, log) is enough for another shell to judge it or stop it (`harness down`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from harness.errors import EnvironmentProblem
from harness.results import Result

HOST = "127.0.0.1"  # everything a run starts listens on loopback only
PORT_FLOOR = 20000  # PortBlock's blocks lie between this and the kernel's ephemeral range
PORT_BLOCK = 128
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 5
PROCESSES_CHECK = "the run's processes kept running"


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class PortBlock:
    """The ports this process hands to what it starts: a block of PORT_BLOCK ports below the kernel's ephemeral
    range, held for this process's life by binding an abstract Unix socket named after it.

    A port chosen with bind(0) and handed to a child is free only until someone else binds it: another run of this
    machine side by side took the port Karpenter was about to bind. Below the ephemeral range the kernel hands
    none of these out on its own, and no other process of this project takes from a block this one holds; a port
    something else already listens on is skipped. Where the kernel has no abstract sockets or no room below its
    ephemeral range, bind(0) it is, as before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: socket.socket | None = None
        self.first = 0
        self.taken = 0

    def take(self, host: str) -> int:
        with self.lock:
            if self.holder is None and not self._claim():
                return _kernel_port(host)
            for _ in range(PORT_BLOCK):
                port = self.first + self.taken % PORT_BLOCK
                self.taken += 1
                if port_free(port, host):
                    return port
        raise EnvironmentProblem(
            f"every port of {self.first}-{self.first + PORT_BLOCK - 1} on {host} is taken: stop runs you no longer need"
        )

    def _claim(self) -> bool:
        low = _ephemeral_low()
        blocks = list(range(PORT_FLOOR, low - PORT_BLOCK + 1, PORT_BLOCK))
        if not blocks or not hasattr(socket, "AF_UNIX"):
            return False
        start = os.getpid() % len(blocks)
        for first in blocks[start:] + blocks[:start]:
            holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                holder.bind(f"\0eks-platform-harness-ports-{first}")
            except OSError:
                holder.close()
                continue
            self.holder, self.first = holder, first
            return True
        return False


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


PORTS = PortBlock()


def free_port(host: str = HOST) -> int:
    """A port on `host` for a process this one starts (PortBlock: no other run of this machine is handed it)."""
    return PORTS.take(host)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined with ' | ' so a crash report stays one line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"no log at {path}"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else f"empty log {path}"


def runs(pid: int, executable: str) -> bool:
    """The pid is alive and (where /proc exists) still runs `executable`: never signal a recycled pid."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
    except OSError:
        return not Path("/proc").is_dir()  # no /proc to read: trust the recorded pid
    return state != "Z" and executable.encode() in command


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is still in process group `pgid`."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def stop_group(pid: int, still_running: Callable[[], bool], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group of `pid`, SIGKILL what is left after `timeout_s`; returns once the leader and
    every process it forked are gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child; a zombie is not "gone" otherwise
            if not still_running() and not group_alive(pid):
                return
            time.sleep(0.05)


@dataclass(frozen=True)
class ProcessRecord:
    """What another shell needs to judge or stop a supervised process (kept in the run's settings)."""

    name: str
    pid: int
    executable: str
    log: str

    def running(self) -> bool:
        return runs(self.pid, self.executable)

    def crashed(self) -> str | None:
        """One line when the process is gone (with its log tail), else None."""
        if self.running():
            return None
        return f"{self.name} (pid {self.pid}) is not running: {log_tail(Path(self.log))} (log: {self.log})"

    def stop(self) -> None:
        if self.running():
            stop_group(self.pid, self.running)

    def settings(self) -> dict[str, str | int]:
        return {"name": self.name, "pid": self.pid, "executable": self.executable, "log": self.log}

    @classmethod
    def from_settings(cls, data: Mapping[str, str | int]) -> ProcessRecord:
        return cls(str(data["name"]), int(data["pid"]), str(data["executable"]), str(data["log"]))


def judge_processes(names: Sequence[str], dead: Mapping[str, str]) -> Result:
    """The run's host processes: all running, or the first that died, in its log's last words (`dead`: name -> the
    line ProcessRecord.crashed gives)."""
    if dead:
        return Result.failed(PROCESSES_CHECK, next(iter(dead.values())), dead=sorted(dead))
    return Result.passed(PROCESSES_CHECK, f"all {len(names)} running", processes=list(names))


def stop_recorded(records: Iterable[ProcessRecord]) -> None:
    """Stop recorded processes, last started first (what `harness down` does from any shell)."""
    for record in reversed(list(records)):
        record.stop()


@dataclass
class Supervised:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    executable: str

    def crashed(self) -> str | None:
        """One line when the process has exited (with its code and log tail), else None."""
        code = self.process.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}: {log_tail(self.log)} (log: {self.log})"

    def record(self) -> ProcessRecord:
        return ProcessRecord(self.name, self.process.pid, self.executable, str(self.log))

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_group(self.process.pid, lambda: self.process.poll() is None)


@dataclass
class Supervisor:
    """Starts processes into `log_dir` and stops them all, last started first."""

    log_dir: Path
    running: list[Supervised] = field(default_factory=list)
    # Called with each process's record as soon as it is started, before it is ready: a run that is
    # interrupted while waiting still knows every process it must stop.
    on_start: Callable[[ProcessRecord], None] = lambda _record: None
    # Polled while a process is waited for: a reason to give up on it at once (why it cannot become ready), or None.
    watchdog: Callable[[], str | None] = lambda: None

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
        """Start `command`, then wait until `ready()`; a crash or time-out is one line with the log's tail, the
        watchdog's reason one line of its own."""
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
        supervised = Supervised(name, process, log, str(command[0]))
        self.running.append(supervised)
        self.on_start(supervised.record())
        self._wait_ready(supervised, ready, timeout_s)
        return supervised

    def _wait_ready(self, supervised: Supervised, ready: Callable[[], bool], timeout_s: float) -> None:
        def probe() -> bool:
            if reason := self.watchdog():
                raise EnvironmentProblem(reason)
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

    def stop(self, processes: Collection[Supervised]) -> None:
        """Stop `processes`, last started first; the others keep running."""
        for process in [p for p in reversed(self.running) if p in processes]:
            process.stop()
            self.running.remove(process)
