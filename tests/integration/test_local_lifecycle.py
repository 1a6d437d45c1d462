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
from harness.targets import containers, local, pod_network
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


def network_left(runs: Path) -> list[str]:
    """The run's pod network (harness.targets.pod_network) still on this machine: its namespaces and links."""
    (run_dir,) = runs.iterdir()
    prefix = pod_network.bridge_name(run_dir.name)
    namespaces = [p.name for p in pod_network.NETNS_DIR.glob(f"{prefix}-*")] if pod_network.NETNS_DIR.is_dir() else []
    links = [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]
    return namespaces + links


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
        (["e2e", "--target", "local", "--yes", "--skip", "checks", "--skip", "karpenter"], "git-endpoint"),
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
    assert network_left(runs) == [], output


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
    assert {r.name for r in records} >= {"etcd", "kube-apiserver", "kube-scheduler", "kwok", "kubelet"}
    assert all(r.running() for r in records), [r.crashed() for r in records]
    run_id = next((tmp_path / "runs").iterdir()).name
    down = harness("down", "--run-id", run_id)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "torn down, nothing left" in down.stdout
    assert [r.name for r in records if r.running()] == []
    assert network_left(tmp_path / "runs") == []
    emulator_pid = current["emulator"]["pid"]
    assert not Path(f"/proc/{emulator_pid}").exists() or "Z" in Path(f"/proc/{emulator_pid}/stat").read_text()


def launched_instances(kube: Any) -> bool:
    """Whether Karpenter has launched an instance for a NodeClaim of the run (the claim has its providerID)."""
    from harness.kube.api import NODE_CLAIM

    with contextlib.suppress(HarnessError):
        return any((claim.get("status") or {}).get("providerID") for claim in kube.list_custom(NODE_CLAIM))
    return False


def karpenter_pods(kube: Any) -> list[dict[str, Any]]:
    return list(kube.list_pods("kube-system", label_selector="app.kubernetes.io/name=karpenter"))


def shows_exit(pod: dict[str, Any]) -> bool:
    """Whether the pod's status says its container was killed: its last state, or the back-off before its restart."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        last = ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode")
        waiting = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if last == 137 or waiting == "CrashLoopBackOff":
            return True
    return False


def test_a_controller_killed_mid_run_shows_in_its_pod_and_the_stage_but_the_teardown_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Karpenter's processes killed once it has launched the game's first node, while the checks run: within seconds
    its pods show it (their last state, the crash-loop back-off), the checks stage fails within seconds naming
    karpenter and its log's last words (not after a wait's 600 s); the kubelet restarts it, as on EKS, so the
    controller-aware teardown runs whole (the API server answers; Karpenter removes its nodes) and leaves the sweep
    nothing."""
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    runs = tmp_path / "runs"
    harness = start_harness(runs, "e2e", "--target", "local", "--yes", "--skip", "karpenter")
    lines: list[str] = []
    killed_at, shown_after, checks_ended = None, float("inf"), float("inf")
    try:
        assert harness.stdout is not None
        for line in harness.stdout:
            lines.append(line)
            if line.startswith("stage access: pass"):
                from harness.kube.client import connect_kubeconfig

                # The checks can end a second after the first node joins, sooner than a loaded machine lets this
                # test see it: the harness is paused (the kubelet and the controllers, each in a session of its
                # own, go on) until Karpenter has launched and been killed, so it dies while the checks run.
                os.kill(harness.pid, signal.SIGSTOP)
                try:
                    (run_dir,) = runs.iterdir()
                    kube = connect_kubeconfig(run_dir / "cluster" / "kubeconfig")
                    deadline = time.monotonic() + 300
                    while not launched_instances(kube) and time.monotonic() < deadline:
                        time.sleep(0.5)
                    running = containers.running(run_dir / local.KUBELET)
                    pids = [pid for name, (pid, _) in running.items() if name.startswith("kube-system_karpenter-")]
                    assert len(pids) == 2, pids  # the chart's two replicas
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                    while time.monotonic() - killed_at < 30:
                        if all(shows_exit(pod) for pod in karpenter_pods(kube)):
                            shown_after = time.monotonic() - killed_at
                            break
                        time.sleep(0.5)
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
    assert shown_after < 10, f"the pods did not show the kill within 30 s\n{output}"
    named = re.compile(r"karpenter \(pod kube-system/karpenter-[-a-z0-9]+, container controller\) exited with code 137")
    checks = next(line for line in lines if line.startswith("stage checks:"))
    assert checks.startswith("stage checks: fail") and named.search(checks), output
    assert checks_ended < 60, f"the checks went on for {checks_ended:.0f} s after Karpenter died\n{output}"
    for step in ("remove-gitops", "remove-ingresses", "remove-nodepools"):
        assert any(line.startswith(f"teardown {step}: pass") for line in lines), output
    assert any(line.startswith("teardown sweep: pass: nothing tagged with the run id was left") for line in lines), (
        output
    )
    assert settings(runs).get("processes") in (None, []), output
    assert network_left(runs) == [], output
