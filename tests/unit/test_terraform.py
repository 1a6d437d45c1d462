"""The Terraform runner, driven by fake CLIs: no Terraform needed."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import EnvironmentProblem, InputError
from harness.terraform.providers import ProviderSource
from harness.terraform.runner import (
    TERRAFORM_ENV,
    TRANSIENT_ERRORS,
    Plan,
    Terraform,
    TerraformCli,
    TerraformFailed,
    check_root,
    find_cli,
    first_error,
    transient_error,
)

REGISTRY = ProviderSource("registry", "registry")

VARIABLE_ERROR = """\
Planning failed. Terraform encountered an error while generating this plan.

\x1b[31m╷\x1b[0m
│ Error: Invalid value for variable
│
│   on /runs/r1/terraform/platform/terraform.tfvars.json line 1:
│    1: {"api_public_cidrs":["0.0.0.0/0"]}
│     ├────────────────
│     │ var.api_public_cidrs is list of string with 1 element
│
│ api_public_cidrs must not contain 0.0.0.0/0 or ::/0.
│
│ This was checked by the validation rule at variables.tf:50,3-13.
╵
"""

API_ERROR = """\
Error: attaching IAM Policy (arn:aws:iam::aws:policy/X) to IAM Role (r): NoSuchEntity

  with module.cluster.aws_iam_role_policy_attachment.cluster,
  on ../modules/cluster/main.tf line 55, in resource "aws_iam_role_policy_attachment" "cluster":
  55: resource "aws_iam_role_policy_attachment" "cluster" {

Error: a second error that is not reported
"""


def make_terraform(root: Path, run_dir: Path, cli: TerraformCli, **kwargs: object) -> Terraform:
    env = {"PATH": os.environ["PATH"], "FAKE_TF_RECORD": str(run_dir / "calls.jsonl")}
    return Terraform(root, run_dir, env=env, provider=REGISTRY, cli=cli, name="platform", **kwargs)  # type: ignore[arg-type]


def calls(run_dir: Path) -> list[list[str]]:
    path = run_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- finding the CLI ----------------------------------------------------------------------------------
def test_find_cli_reports_missing_terraform_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="Terraform not found on PATH"):
        find_cli({"PATH": str(tmp_path)})


def test_find_cli_prefers_terraform_and_falls_back_to_tofu(fake_cli: Callable[..., TerraformCli]) -> None:
    tofu = fake_cli("", name="tofu")
    assert find_cli({"PATH": str(tofu.path.parent)}).flavour == "tofu"
    terraform = fake_cli("", name="terraform")
    assert find_cli({"PATH": str(terraform.path.parent)}) == TerraformCli(terraform.path, "terraform")


def test_find_cli_honours_the_env_override(fake_cli: Callable[..., TerraformCli], tmp_path: Path) -> None:
    tofu = fake_cli("", name="tofu")
    assert find_cli({"PATH": "", TERRAFORM_ENV: str(tofu.path)}).flavour == "tofu"
    with pytest.raises(EnvironmentProblem, match=f"{TERRAFORM_ENV}=nope"):
        find_cli({"PATH": str(tmp_path), TERRAFORM_ENV: "nope"})


# --- error lines --------------------------------------------------------------------------------------
def test_first_error_names_file_line_summary_and_the_validation_message() -> None:
    line = first_error(VARIABLE_ERROR)
    assert line.endswith(
        "runs/r1/terraform/platform/terraform.tfvars.json:1: Invalid value for variable: "
        "api_public_cidrs must not contain 0.0.0.0/0 or ::/0."
    )
    assert "\n" not in line


def test_first_error_resolves_module_paths_against_the_root(tmp_path: Path) -> None:
    root = tmp_path / "infra" / "platform"
    line = first_error(API_ERROR, root)
    assert line.startswith(os.path.relpath(tmp_path / "infra" / "modules" / "cluster" / "main.tf") + ":55: attaching")
    assert "second error" not in line


def test_first_error_without_an_error_line_reports_the_last_line() -> None:
    assert first_error("one\nkilled by signal\n\n") == "killed by signal"
    assert first_error("") == "no output"


@pytest.mark.parametrize(
    ("output", "name"),
    [
        ("read tcp 10.0.0.1:443: connection reset by peer", "connection reset"),
        ("net/http: TLS handshake timeout", "TLS handshake timeout"),
        ("ThrottlingException: Rate exceeded", "API throttling"),
        ("fork/exec .terraform/providers/x: text file busy", "provider binary busy"),
    ],
)
def test_transient_errors_are_named(output: str, name: str) -> None:
    assert name in TRANSIENT_ERRORS
    assert transient_error(output) == name


def test_ordinary_errors_are_not_transient() -> None:
    assert transient_error(API_ERROR) is None


# --- roots --------------------------------------------------------------------------------------------
def test_check_root_accepts_a_local_backend_root(throwaway_root: Path) -> None:
    assert check_root(throwaway_root) == throwaway_root.resolve()


def test_check_root_rejects_missing_empty_and_backendless_roots(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stack directory not found"):
        check_root(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no \*\.tf files"):
        check_root(tmp_path)
    (tmp_path / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    with pytest.raises(InputError, match='no `backend "local"'):
        check_root(tmp_path)


# --- running commands ---------------------------------------------------------------------------------
def test_apply_writes_variables_and_logs_and_passes_per_run_paths(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    cli = fake_cli("print('applied', os.environ['TF_DATA_DIR'])\n")
    run_dir = tmp_path / "run"
    tf = make_terraform(throwaway_root, run_dir, cli)
    tf.init()
    tf.apply({"region": "us-east-1", "api_public_cidrs": ["198.51.100.0/24"]})
    init_call, apply_call = calls(run_dir)
    assert init_call[:2] == [f"-chdir={throwaway_root.resolve()}", "init"]
    assert f"-backend-config=path={run_dir / 'platform.tfstate'}" in init_call
    var_file = run_dir / "terraform" / "platform" / "terraform.tfvars.json"
    assert f"-var-file={var_file}" in apply_call
    assert json.loads(var_file.read_text())["api_public_cidrs"] == ["198.51.100.0/24"]
    assert [step for step, _ in tf.command_seconds] == ["init", "apply"]
    log = (run_dir / "logs" / "platform-02-apply.log").read_text()
    assert f"applied {run_dir / 'terraform' / 'platform' / 'data'}" in log


def test_a_failing_command_raises_one_line_with_the_log_path(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    cli = fake_cli(f"print({VARIABLE_ERROR!r}); sys.exit(1)\n")
    tf = make_terraform(throwaway_root, tmp_path / "run", cli)
    with pytest.raises(TerraformFailed) as caught:
        tf.apply({})
    message = str(caught.value)
    assert message.startswith("terraform apply failed: ")
    assert "Invalid value for variable: api_public_cidrs must not contain 0.0.0.0/0" in message
    assert "platform-01-apply.log" in message and "\n" not in message


def test_transient_failures_are_retried_then_succeed(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    cli = fake_cli(
        "n = len(open(record).read().splitlines())\n"
        "if n < 3:\n"
        "    print('Error: read: connection reset by peer'); sys.exit(1)\n"
    )
    run_dir = tmp_path / "run"
    make_terraform(throwaway_root, run_dir, cli, retry_wait_s=0.01).apply({})
    assert len(calls(run_dir)) == 3


def test_transient_failures_give_up_after_the_attempts(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    cli = fake_cli("print('Error: Throttling: Rate exceeded'); sys.exit(1)\n")
    run_dir = tmp_path / "run"
    with pytest.raises(TerraformFailed, match=r"\[API throttling\]"):
        make_terraform(throwaway_root, run_dir, cli, retry_wait_s=0.01, attempts=2).apply({})
    assert len(calls(run_dir)) == 2


def test_permanent_failures_are_not_retried(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    cli = fake_cli(f"print({API_ERROR!r}); sys.exit(1)\n")
    run_dir = tmp_path / "run"
    with pytest.raises(TerraformFailed):
        make_terraform(throwaway_root, run_dir, cli, retry_wait_s=0.01).apply({})
    assert len(calls(run_dir)) == 1


SLEEPER = """\
open(os.environ['FAKE_PID'], 'w').write(str(os.getpid()))
def stop(signum, frame):
    open(os.environ['FAKE_PID'] + '.sigint', 'w').write('saved state')
    sys.exit(1)
signal.signal(signal.SIGINT, stop)
print('module.x: Creating...', flush=True)
time.sleep(60)
"""


def sleeper(tmp_path: Path, throwaway_root: Path, cli: TerraformCli, **kwargs: object) -> tuple[Terraform, Path]:
    tf = make_terraform(throwaway_root, tmp_path / "run", cli, **kwargs)
    pid_file = tmp_path / "fake.pid"
    tf._env["FAKE_PID"] = str(pid_file)
    return tf, pid_file


def test_a_timeout_interrupts_terraform_once_and_says_so(
    throwaway_root: Path,
    tmp_path: Path,
    fake_cli: Callable[..., TerraformCli],
    pid_alive: Callable[[int], bool],
) -> None:
    tf, pid_file = sleeper(tmp_path, throwaway_root, fake_cli(SLEEPER), timeout_s=1.0)
    with pytest.raises(TerraformFailed, match=r"terraform apply timed out after 1s"):
        tf.apply({})
    assert Path(str(pid_file) + ".sigint").read_text() == "saved state"
    assert not pid_alive(int(pid_file.read_text()))


def test_the_watchdog_aborts_a_command_whose_endpoint_died(
    throwaway_root: Path,
    tmp_path: Path,
    fake_cli: Callable[..., TerraformCli],
    pid_alive: Callable[[int], bool],
) -> None:
    started = threading.Event()

    def watchdog() -> str | None:
        return "the emulator (moto server pid 1) exited" if started.is_set() else None

    tf, pid_file = sleeper(tmp_path, throwaway_root, fake_cli(SLEEPER), watchdog=watchdog)
    timer = threading.Timer(0.5, started.set)
    timer.start()
    with pytest.raises(EnvironmentProblem, match=r"the emulator \(moto server pid 1\) exited during terraform apply"):
        tf.apply({})
    assert not pid_alive(int(pid_file.read_text()))


def test_ctrl_c_forwards_one_sigint_and_propagates(
    throwaway_root: Path,
    tmp_path: Path,
    fake_cli: Callable[..., TerraformCli],
    pid_alive: Callable[[int], bool],
) -> None:
    def interrupt_once_running() -> str | None:
        if pid_file.exists():
            raise KeyboardInterrupt
        return None

    tf, pid_file = sleeper(tmp_path, throwaway_root, fake_cli(SLEEPER), watchdog=interrupt_once_running)
    with pytest.raises(KeyboardInterrupt):
        tf.apply({})
    assert Path(str(pid_file) + ".sigint").read_text() == "saved state"
    assert not pid_alive(int(pid_file.read_text()))


def test_output_unwraps_values(throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]) -> None:
    body = "print(json.dumps({'vpc_id': {'value': 'vpc-1', 'type': 'string', 'sensitive': False}}))\n"
    assert make_terraform(throwaway_root, tmp_path / "run", fake_cli(body)).output() == {"vpc_id": "vpc-1"}


def test_registry_failures_at_init_become_the_provider_line(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    body = (
        "print('Error: Failed to query available provider packages')\n"
        "print('could not connect to registry.terraform.io: dial tcp: lookup registry.terraform.io: no such host')\n"
        "sys.exit(1)\n"
    )
    with pytest.raises(EnvironmentProblem, match="Terraform's AWS provider is not installed and the registry is"):
        make_terraform(throwaway_root, tmp_path / "run", fake_cli(body)).init()


def test_managed_resources_reads_the_run_state(
    throwaway_root: Path, tmp_path: Path, fake_cli: Callable[..., TerraformCli]
) -> None:
    tf = make_terraform(throwaway_root, tmp_path / "run", fake_cli(""))
    assert tf.managed_resources() == []
    tf.state_path.parent.mkdir(parents=True, exist_ok=True)
    tf.state_path.write_text(
        json.dumps(
            {
                "resources": [
                    {
                        "mode": "managed",
                        "type": "aws_vpc",
                        "name": "this",
                        "module": "module.network",
                        "instances": [{}],
                    },
                    {"mode": "data", "type": "aws_partition", "name": "current", "instances": [{}]},
                    {"mode": "managed", "type": "aws_sqs_queue", "name": "gone", "instances": []},
                ]
            }
        )
    )
    assert tf.managed_resources() == ["module.network.aws_vpc.this"]
    tf.state_path.write_text("{not json")
    with pytest.raises(InputError, match="unreadable state"):
        tf.managed_resources()


def test_plan_changes_ignore_no_ops_and_reads() -> None:
    plan = Plan(
        {
            "resource_changes": [
                {"address": "a.b", "change": {"actions": ["no-op"]}},
                {"address": "data.c.d", "change": {"actions": ["read"]}},
                {"address": "e.f", "change": {"actions": ["update"]}},
            ]
        }
    )
    assert plan.changes == [("e.f", ["update"])]
    assert plan.has_changes
    assert not Plan({"resource_changes": [{"address": "a.b", "change": {"actions": ["no-op"]}}]}).has_changes


INIT_PREAMBLE = """\
Error: Terraform encountered problems during initialisation, including problems
with the configuration, described below.

The Terraform configuration must be valid before initialization so that
Terraform can determine which modules and providers need to be installed.


Error: Invalid expression

  on main.tf line 6, in resource "aws_vpc" "v":
   6:   cidr_block =
   7: }

Expected the start of an expression, but found an invalid expression token.
"""


def test_an_error_with_a_location_wins_over_a_generic_preamble(tmp_path: Path) -> None:
    line = first_error(INIT_PREAMBLE, tmp_path)
    assert line == (
        f"{os.path.relpath(tmp_path / 'main.tf')}:6: Invalid expression: "
        "Expected the start of an expression, but found an invalid expression token."
    )
