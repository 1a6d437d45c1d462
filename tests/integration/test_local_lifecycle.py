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
from harness.processes import ProcessRecord, stop_recorded
from harness.processes import runs as runs_executable
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


def start_harness(runs: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m harness <args>` with its runs under `runs`, output piped; the test plays the terminal: in a
    process group of its own, so a SIGINT goes to this group only."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        env={**os.environ, RUNS_ENV: str(runs)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def leave_nothing(harness: subprocess.Popen[str], runs: Path) -> None:
    """However the test ends: a harness still running is interrupted (it tears its run down, as after a user's
    Ctrl-C) and killed if it does not finish; whatever the run still records is stopped. The run's processes
    live in sessions of their own, so killing the harness alone would leave them running."""
    if harness.poll() is None:
        os.killpg(harness.pid, signal.SIGINT)
        try:
            harness.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(harness.pid, signal.SIGKILL)
    current = settings(runs)
    stop_recorded([ProcessRecord.from_settings(row) for row in current.get("processes") or []])
    emulator = int((current.get("emulator") or {}).get("pid") or 0)
    if emulator and runs_executable(emulator, "moto_server"):  # never a recycled pid
        os.kill(emulator, signal.SIGTERM)


@pytest.mark.parametrize(
    ("command", "interrupt_after"),
    [
        (["up", "--target", "local"], "kube-apiserver"),
        (["e2e", "--target", "local", "--yes", "--skip", "checks", "--skip", "karpenter"], "karpenter"),
    ],
    ids=["up-control-plane", "e2e-addons"],
)
def test_ctrl_c_leaves_no_process_port_or_emulator(tmp_path: Path, command: list[str], interrupt_after: str) -> None:
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    runs = tmp_path / "runs"
    harness = start_harness(runs, *command)
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
        leave_nothing(harness, runs)
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


def launched_instances(kube: Any) -> bool:
    """Whether Karpenter has launched an instance for a NodeClaim of the run (the claim has its providerID)."""
    from harness.kube.api import NODE_CLAIM

    with contextlib.suppress(HarnessError):
        return any((claim.get("status") or {}).get("providerID") for claim in kube.list_custom(NODE_CLAIM))
    return False


def test_a_controller_killed_mid_run_is_named_at_once_and_the_teardown_still_runs(tmp_path: Path) -> None:
    """Karpenter's process killed once it has launched the game's first node, while the checks run: the checks
    stage fails within seconds naming karpenter and its log's last words (not after a wait's 600 s); the teardown's
    Kubernetes steps still run (the API server answers), those that need Karpenter (its finalizers on the NodePool
    Argo CD deletes, its instances) fail at once in the same words, and the sweep deletes what Karpenter left:
    nothing of the run is left."""
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    runs = tmp_path / "runs"
    harness = start_harness(runs, "e2e", "--target", "local", "--yes", "--skip", "karpenter")
    lines: list[str] = []
    killed_at, checks_ended = None, float("inf")
    try:
        assert harness.stdout is not None
        for line in harness.stdout:
            lines.append(line)
            if line.startswith("stage access: pass"):
                from harness.kube.client import connect_kubeconfig

                # The checks can end a second after the first node joins, sooner than a loaded machine lets this
                # test see it: the harness is paused (its controllers, each in a session of its own, go on) until
                # Karpenter has launched and been killed, so it dies while the checks run, whatever the load.
                os.kill(harness.pid, signal.SIGSTOP)
                try:
                    (run_dir,) = runs.iterdir()
                    kube = connect_kubeconfig(run_dir / "cluster" / "kubeconfig")
                    deadline = time.monotonic() + 300
                    while not launched_instances(kube) and time.monotonic() < deadline:
                        time.sleep(0.5)
                    (karpenter,) = [
                        r
                        for r in map(ProcessRecord.from_settings, settings(runs)["processes"])
                        if r.name == "karpenter"
                    ]
                    os.kill(karpenter.pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                finally:
                    os.kill(harness.pid, signal.SIGCONT)
            if line.startswith("stage checks:") and killed_at is not None:
                checks_ended = time.monotonic() - killed_at
        harness.wait(timeout=900)
    finally:
        leave_nothing(harness, runs)
    output = "".join(lines)
    assert harness.returncode != 0 and killed_at is not None, output
    assert "Traceback" not in output, output
    named = re.compile(r"karpenter \(pid \d+\) is not running: ")
    checks = next(line for line in lines if line.startswith("stage checks:"))
    assert checks.startswith("stage checks: fail") and named.search(checks), output
    assert checks_ended < 60, f"the checks went on for {checks_ended:.0f} s after Karpenter died\n{output}"
    assert "the EKS cluster no longer exists" not in output, output
    nodepools = next(line for line in lines if line.startswith("teardown remove-nodepools:"))
    assert nodepools.startswith("teardown remove-nodepools: fail") and named.search(nodepools), output
    gitops = next(line for line in lines if line.startswith("teardown remove-gitops:"))
    assert gitops.startswith("teardown remove-gitops: fail") and named.search(gitops), output
    assert any(line.startswith("teardown remove-ingresses: pass") for line in lines), output
    sweep = next(line for line in lines if line.startswith("teardown sweep:"))
    assert sweep.startswith("teardown sweep: pass: deleted"), output  # Karpenter's instance, launched before it died
    assert settings(runs).get("processes") in (None, []), output
