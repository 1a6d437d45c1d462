"""A container of an ops node's pod as a process of this machine (harness.targets.kubelet): its process group, which
stops with it; the status the API server reads of it; its readiness probe; and what a killed kubelet left running.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from harness.processes import runs, stop_group

PID_SUFFIX = ".pid"  # in a pod's folder, per container: "<pid> <its executable>"


@dataclass
class ContainerRun:
    """One container's process and what its status says about it."""

    name: str
    image: str
    init: bool
    process: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    started_clock: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    ready: bool = False
    probe_due: float = 0.0
    failures: int = 0
    terminated: dict[str, Any] | None = None  # the last exit: {exitCode, reason, message, startedAt, finishedAt}
    waiting: tuple[str, str] | None = None  # (reason, message) while it does not run

    def signal(self, sig: int) -> None:
        """`sig` to the container's process group: its process and whatever it started (git for the repo-server),
        as a runtime stops a container's cgroup."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def state(self) -> dict[str, Any]:
        if self.process is not None and self.process.poll() is None:
            return {"running": {"startedAt": self.started_at}}
        if self.waiting:
            return {"waiting": {"reason": self.waiting[0], "message": self.waiting[1]}}
        if self.terminated:
            return {"terminated": self.terminated}
        return {"waiting": {"reason": "ContainerCreating"}}

    def status(self) -> dict[str, Any]:
        running = self.process is not None and self.process.poll() is None
        found: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready and running,
            "started": running,
            "restartCount": self.restarts,
            "state": self.state(),
        }
        if self.process is not None:
            found["containerID"] = f"process://{self.process.pid}"
        if self.terminated and (running or self.waiting):
            found["lastState"] = {"terminated": self.terminated}
        return found


def running(folder: Path) -> dict[str, tuple[int, str]]:
    """The container processes of the kubelet in `folder` that still run: "pod folder/container" -> (pid, its
    executable), from their pid files (each pid leads its container's process group)."""
    found = {}
    for pid_file in sorted(folder.glob(f"*/*{PID_SUFFIX}")):
        number, _, executable = pid_file.read_text(encoding="utf-8").partition(" ")
        if number.isdigit() and runs(int(number), executable):
            found[f"{pid_file.parent.name}/{pid_file.name.removesuffix(PID_SUFFIX)}"] = (int(number), executable)
    return found


def stop_leftovers(folder: Path) -> list[str]:
    """The container processes a kubelet that was killed left running, each with its process group; what it
    stopped."""
    left = running(folder)
    for pid, executable in left.values():
        stop_group(pid, functools.partial(runs, pid, executable))
    return list(left)


def probe_succeeds(probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str) -> bool:
    """One readiness probe: an HTTP GET answered 200-399 or a TCP connection accepted; an exec or gRPC probe is not
    run here (infra/targets.yaml `pod_probes`), and counts as passed."""
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}

    def port_of(handler: Mapping[str, Any]) -> int:
        port = handler.get("port")
        return int(ports.get(port, 0)) if isinstance(port, str) and not port.isdigit() else int(port or 0)

    if handler := probe.get("httpGet"):
        scheme = str(handler.get("scheme") or "HTTP").lower()
        host = handler.get("host") or pod_ip
        url = f"{scheme}://{host}:{port_of(handler)}{handler.get('path') or '/'}"
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            return 200 <= requests.get(url, timeout=timeout, verify=False).status_code < 400
        except requests.RequestException:
            return False
    if handler := probe.get("tcpSocket"):
        try:
            with socket.create_connection((handler.get("host") or pod_ip, port_of(handler)), timeout=1):
                return True
        except OSError:
            return False
    return True


def last_words(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][-300:] if lines else ""
