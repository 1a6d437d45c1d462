"""`harness bench emulator`: the emulator cycle's wall time, and the harness's overhead over plain Terraform.

Both sides apply and destroy the same root (infra/platform) with the same variables, each against its own
fresh moto server, in the same process, one after the other. Targets: harness (up + down) <= 1.15x plain
(init + apply + destroy); the whole harness cycle (up + verify + down) < 90 s.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.aws import emulator as emu
from harness.errors import EnvironmentProblem
from harness.project import versions
from harness.targets.stack import Stack, platform_root
from harness.terraform.providers import find_machine_mirror, provider_source
from harness.terraform.runner import find_cli

OVERHEAD_TARGET = 1.15
CYCLE_TARGET_S = 90.0
# The AWS provider waits a random 0-60 s before DeleteCluster (WithDelayRand in resourceClusterDelete);
# the bench shows that share of the cycle so a slow run can be told from a slow harness.
EKS_CLUSTER = "module.cluster.aws_eks_cluster.this"
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def destruction_seconds(log: str, address: str) -> float | None:
    """How long Terraform reported destroying `address` ("Destruction complete after 1m5s"), if it did."""
    match = re.search(re.escape(address) + r": Destruction complete after (\S+)", log)
    if not match or not (parts := DURATION.match(match.group(1))) or not any(parts.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def logged_destruction_seconds(logs: Path, pattern: str) -> float | None:
    found = [
        destruction_seconds(path.read_text(encoding="utf-8", errors="replace"), EKS_CLUSTER)
        for path in sorted(logs.glob(pattern))
    ]
    return next((seconds for seconds in reversed(found) if seconds is not None), None)


@dataclass(frozen=True)
class Step:
    """One plain Terraform command: when it started (epoch seconds), how long it ran, where its output (and, when
    asked for, the provider's DEBUG log) went."""

    launched: float
    seconds: float
    log: Path
    provider_log: Path | None


def terraform_cycle(
    root: Path,
    variables: dict[str, object],
    work: Path,
    *,
    extra_args: Mapping[str, Sequence[str]] | None = None,
    provider_log: bool = False,
) -> dict[str, Step]:
    """init + apply + destroy with nothing but the Terraform CLI (and a fresh moto server to talk to); `extra_args`
    are added per step, `provider_log` asks for the provider's DEBUG log of each step (Step.provider_log)."""
    server = emu.start(work / "emulator.log")
    try:
        env = server.child_env(str(variables["region"]))
        source = provider_source(work, find_machine_mirror(versions()["aws_provider"]), env)
        env = {k: v for k, v in env.items() if k not in source.unset} | source.env | {"TF_DATA_DIR": str(work / "data")}
        var_file = work / "vars.tfvars.json"
        var_file.write_text(json.dumps(variables), encoding="utf-8")
        cli = str(find_cli(env).path)
        commands = {
            "init": ["init", "-input=false", f"-backend-config=path={work / 'plain.tfstate'}"],
            "apply": ["apply", "-input=false", "-auto-approve", f"-var-file={var_file}"],
            "destroy": ["destroy", "-input=false", "-auto-approve", f"-var-file={var_file}"],
        }
        steps: dict[str, Step] = {}
        for step, args in commands.items():
            log_path = work / f"plain-{step}.log"
            provider_path = work / f"{step}-provider.log" if provider_log else None
            step_env = env | ({"TF_LOG_PROVIDER": "DEBUG", "TF_LOG_PATH": str(provider_path)} if provider_path else {})
            launched, started = time.time(), time.monotonic()
            with log_path.open("w") as log:
                done = subprocess.run(
                    [cli, f"-chdir={root}", *args, *(extra_args or {}).get(step, ())],
                    env=step_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            steps[step] = Step(launched, time.monotonic() - started, log_path, provider_path)
            if done.returncode != 0:
                raise EnvironmentProblem(f"plain terraform {step} failed (log: {log_path})")
        return steps
    finally:
        server.stop()


def harness_cycle(console: Console) -> tuple[Stack, dict[str, float], float]:
    """Wall time of up, verify and down (each as a whole), and the seconds Terraform itself spent in init,
    apply and destroy during them."""
    stack = Stack.create("emulator", console=console)
    wall: dict[str, float] = {}
    started = time.monotonic()
    try:
        stack.up()
        wall["up"] = time.monotonic() - started
        started = time.monotonic()
        stack.verify()
        wall["verify"] = time.monotonic() - started
    finally:
        started = time.monotonic()
        stack.down()
        wall["down"] = time.monotonic() - started
    in_terraform = sum(s for step, s in stack.terraform.command_seconds if step in ("init", "apply", "destroy"))
    return stack, wall, in_terraform


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    harness_stack, harness_times, in_terraform = harness_cycle(console)
    with tempfile.TemporaryDirectory(prefix="bench-plain-", dir=harness_stack.run.dir) as work:
        plain_times = {
            step: ran.seconds
            for step, ran in terraform_cycle(platform_root(), harness_stack.variables(), Path(work)).items()
        }
        plain_eks = logged_destruction_seconds(Path(work), "plain-destroy.log")
    harness_eks = logged_destruction_seconds(harness_stack.run.path("logs"), "*destroy.log")

    plain_total = sum(plain_times.values())
    harness_up_down = harness_times.get("up", 0.0) + harness_times.get("down", 0.0)
    cycle = sum(harness_times.values())
    raw_ratio = harness_up_down / plain_total if plain_total else float("inf")
    # What the harness adds around the same Terraform commands; the raw ratio also carries the provider's
    # waiters, whose duration varies by tens of seconds between identical applies.
    overhead = harness_up_down - in_terraform
    ratio = (plain_total + overhead) / plain_total if plain_total else float("inf")

    table = Table(title=f"emulator cycle (run {harness_stack.run.id})")
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_column("ratio / target", justify="right")
    for step, seconds in plain_times.items():
        table.add_row(f"plain terraform {step}", f"{seconds:.1f}", "")
    table.add_row("plain total (init + apply + destroy)", f"{plain_total:.1f}", "")
    for side, eks_seconds in (("plain", plain_eks), ("harness", harness_eks)):
        if eks_seconds is not None:
            table.add_row(
                f"{side}: of the destroy, EKS cluster (provider waits a random 0-60 s)", f"{eks_seconds:.0f}", ""
            )
    for step, seconds in harness_stack.timings.items():
        table.add_row(f"harness: {step}", f"{seconds:.1f}", "")
    for step, seconds in harness_times.items():
        table.add_row(f"harness {step} (wall)", f"{seconds:.1f}", "")
    ok_ratio = ratio <= OVERHEAD_TARGET
    ok_cycle = cycle < CYCLE_TARGET_S
    table.add_row(
        "harness up + down vs plain (raw, includes waiter variance)", f"{harness_up_down:.1f}", f"{raw_ratio:.2f}x"
    )
    table.add_row("harness overhead outside Terraform (up + down)", f"{overhead:.1f}", "")
    table.add_row(
        "plain + harness overhead vs plain",
        f"{plain_total + overhead:.1f}",
        f"[{'green' if ok_ratio else 'red'}]{ratio:.2f}x[/] (<= {OVERHEAD_TARGET}x)",
    )
    table.add_row(
        "harness cycle (up + verify + down)",
        f"{cycle:.1f}",
        f"[{'green' if ok_cycle else 'red'}]{cycle / CYCLE_TARGET_S:.2f}[/] of {CYCLE_TARGET_S:.0f} s",
    )
    console.print(table)
    return 0 if ok_ratio and ok_cycle else 1
