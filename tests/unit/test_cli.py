"""`harness up|verify|down`: one clear line and a non-zero exit for bad input; Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.aws import emulator as emu
from harness.cli import build_parser, main
from harness.run import RUNS_ENV, load_run
from harness.terraform.runner import TERRAFORM_ENV, TerraformCli


def test_the_stack_subcommands_are_registered() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"demo", "up", "verify", "down"} <= set(choices)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.usefixtures("runs_dir")
def test_verify_and_down_of_an_unknown_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run-id", "r-unknown"]) == 2
    assert one_error_line(capsys).startswith("error: no run 'r-unknown' under ")
    assert main(["down", "--run-id", "BAD ID"]) == 2
    assert "use 3-31 lowercase letters" in one_error_line(capsys)


def test_up_with_a_missing_stack_directory(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["up", "--run-id", "r-missing", "--stack", str(tmp_path / "nope")])
    assert code == 2
    assert one_error_line(capsys).endswith("nope: stack directory not found")
    assert "emulator" not in load_run("r-missing", runs_dir).settings


def test_up_with_missing_terraform(
    runs_dir: Path, throwaway_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(throwaway_root))
    monkeypatch.delenv(TERRAFORM_ENV, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["up", "--run-id", "r-noterraform", "--stack", str(throwaway_root)]) == 2
    assert "Terraform not found on PATH" in one_error_line(capsys)
    assert not (runs_dir / "r-noterraform").exists()  # nothing created: no run, no emulator


SLEEPING_APPLY = """\
if args[0] == 'init':
    os.makedirs(os.environ['TF_DATA_DIR'], exist_ok=True)
    open(os.path.join(os.environ['TF_DATA_DIR'], 'terraform.tfstate'), 'w').write('{}')
if args[0] == 'apply':
    run_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.environ['TF_DATA_DIR'])))
    state = os.path.join(run_dir, 'platform.tfstate')
    json.dump({'resources': [{'mode': 'managed', 'type': 'aws_vpc', 'name': 'v', 'instances': [{}]}]},
              open(state, 'w'))
    def stop(signum, frame):
        print('Interrupt received. Gracefully shutting down...', flush=True)
        sys.exit(1)
    signal.signal(signal.SIGINT, stop)
    print('aws_vpc.v: Creating...', flush=True)
    time.sleep(60)
if args[0] == 'destroy':
    run_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.environ['TF_DATA_DIR'])))
    json.dump({'resources': []}, open(os.path.join(run_dir, 'platform.tfstate'), 'w'))
"""


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("stop", "launch"),
    [(signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGINT, ignore_sigint)],
    # The last: started as a background job of a non-interactive shell starts it, SIGINT ignored (a CI run saw
    # Ctrl-C do nothing then: the apply ran to its end).
    ids=["ctrl-c", "sigterm", "ctrl-c-inherited-ignored"],
)
def test_ctrl_c_during_apply_destroys_stops_the_emulator_and_exits_130(
    stop: signal.Signals,
    launch: Callable[[], None] | None,
    runs_dir: Path,
    throwaway_root: Path,
    tmp_path: Path,
    fake_cli: Callable[..., TerraformCli],
    pid_alive: Callable[[int], bool],
) -> None:
    cli = fake_cli(SLEEPING_APPLY)
    record = tmp_path / "calls.jsonl"
    env = {**os.environ, RUNS_ENV: str(runs_dir), TERRAFORM_ENV: str(cli.path), "FAKE_TF_RECORD": str(record)}
    env.pop("AWS_ENDPOINT_URL", None)
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", "up", "--run-id", "r-ctrlc", "--stack", str(throwaway_root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=launch,
    )
    apply_log = runs_dir / "r-ctrlc" / "logs" / "platform-02-apply.log"
    deadline = time.monotonic() + 30
    while "Creating..." not in (apply_log.read_text() if apply_log.exists() else ""):
        assert time.monotonic() < deadline and harness.poll() is None, "apply never started"
        time.sleep(0.1)
    emulator_pid = json.loads((runs_dir / "r-ctrlc" / "run.json").read_text())["settings"]["emulator"]["pid"]
    harness.send_signal(stop)
    _, err = harness.communicate(timeout=60)
    assert harness.returncode == 130
    assert err.strip().splitlines() == ["interrupted"]
    assert [json.loads(line)[1] for line in record.read_text().splitlines()] == ["init", "apply", "destroy"]
    assert not pid_alive(emulator_pid) and not emu.is_moto_process(emulator_pid)
    assert "emulator" not in load_run("r-ctrlc", runs_dir).settings
