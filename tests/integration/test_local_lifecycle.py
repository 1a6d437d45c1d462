"""Ctrl-C on the local target leaves nothing: not a process of the run, not a listening port, not an emulator;
and a run left up by `harness up` is taken down whole by `harness down` from another process.

A terminal's Ctrl-C reaches the harness's foreground process group only; the run's processes live in sessions
of their own (so that `harness up` can return and leave them running), so it is the harness that must stop
them. Interrupted here in two places: `harness up` while the control plane starts, and `harness e2e` while the
add-ons and their controllers go in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.processes import ProcessRecord
from harness.run import RUNS_ENV
from harness.targets.local import unavailable
from harness.terraform.runner import find_cli

PORT = re.compile(r"(?:127\.0\.0\.1:|port[=\x00])(\d{2,5})")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


def settings(runs: Path) -> dict[str, Any]:
    found = list(runs.glob("*/run.json"))
    return dict(json.loads(found[0].read_text(encoding="utf-8"))["settings"]) if found else {}


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize(
    ("command", "interrupt_after"),
    [
        (["up", "--target", "local"], "kube-apiserver"),
        (["e2e", "--target", "local", "--yes", "--skip", "checks", "--skip", "karpenter"], "argocd-repo-server"),
    ],
    ids=["up-control-plane", "e2e-addons"],
)
def test_ctrl_c_leaves_no_process_port_or_emulator(tmp_path: Path, command: list[str], interrupt_after: str) -> None:
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    runs = tmp_path / "runs"
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", *command],
        env={**os.environ, RUNS_ENV: str(runs)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the test plays the terminal: SIGINT goes to this group only
    )
    seen: dict[str, ProcessRecord] = {}
    ports: set[int] = set()  # what the run's processes were told to listen on, read while they ran
    emulator_pid = None
    deadline = time.monotonic() + 600
    try:
        while interrupt_after not in seen:
            assert harness.poll() is None, f"harness exited before {interrupt_after} started: {harness.stdout}"
            assert time.monotonic() < deadline, f"{interrupt_after} never started"
            current = settings(runs)
            emulator = current.get("emulator") or {}
            emulator_pid = emulator.get("pid") or emulator_pid
            ports |= {int(port) for port in PORT.findall(emulator.get("endpoint", ""))}
            for row in current.get("processes") or []:
                record = seen.setdefault(row["name"], ProcessRecord.from_settings(row))
                with contextlib.suppress(OSError):
                    ports |= {int(p) for p in PORT.findall(Path(f"/proc/{record.pid}/cmdline").read_text())}
            time.sleep(0.2)
        os.killpg(harness.pid, signal.SIGINT)
        output, _ = harness.communicate(timeout=600)
    finally:
        if harness.poll() is None:
            os.killpg(harness.pid, signal.SIGKILL)
    assert harness.returncode != 0, output
    assert "Traceback" not in output, output
    running = [record.name for record in seen.values() if record.running()]
    assert running == [], f"still running after Ctrl-C: {running}\n{output}"
    assert emulator_pid is not None
    assert not Path(f"/proc/{emulator_pid}").exists() or "Z" in Path(f"/proc/{emulator_pid}/stat").read_text()
    assert ports and not ports & listening_ports(), f"still listening: {sorted(ports & listening_ports())}"
    assert settings(runs).get("processes") in (None, [])


def test_up_returns_leaving_the_run_up_and_down_from_another_shell_leaves_nothing(tmp_path: Path) -> None:
    """`harness up --target local` exits with the cluster running; `harness down --run-id` in a new process
    finds every process from run.json and stops it, then destroys the platform and stops the emulator."""
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    env = {**os.environ, RUNS_ENV: str(tmp_path / "runs")}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "harness", *args], env=env, capture_output=True, text=True, timeout=900
        )

    up = harness("up", "--target", "local")
    assert up.returncode == 0, up.stdout + up.stderr
    current = settings(tmp_path / "runs")
    records = [ProcessRecord.from_settings(row) for row in current["processes"]]
    assert {r.name for r in records} >= {"etcd", "kube-apiserver", "kube-scheduler", "kwok"}
    assert all(r.running() for r in records), [r.crashed() for r in records]
    run_id = next((tmp_path / "runs").iterdir()).name
    down = harness("down", "--run-id", run_id)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "torn down, nothing left" in down.stdout
    assert [r.name for r in records if r.running()] == []
    emulator_pid = current["emulator"]["pid"]
    assert not Path(f"/proc/{emulator_pid}").exists() or "Z" in Path(f"/proc/{emulator_pid}/stat").read_text()
