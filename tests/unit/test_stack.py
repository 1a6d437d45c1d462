"""Stack up/verify/down with a fake Terraform CLI and a real moto server: lifecycle and fault handling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.aws import emulator as emu
from harness.errors import EnvironmentProblem, InputError
from harness.results import Result
from harness.run import load_run
from harness.targets.cli import results_table
from harness.targets.stack import (
    API_CIDRS_ENV,
    CLUSTER_NAME_MAX,
    EMULATOR_API_CIDRS,
    Stack,
    cluster_name_for,
)
from harness.terraform.runner import TERRAFORM_ENV, TerraformCli, TerraformFailed

# Behaves like `terraform` for the commands Stack uses; FAKE_APPLY picks how apply ends.
FAKE_TERRAFORM = """\
run_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.environ['TF_DATA_DIR'])))
state = os.path.join(run_dir, 'platform.tfstate')
command = args[0]
if command == 'init':  # records the backend in the data dir, like terraform
    os.makedirs(os.environ['TF_DATA_DIR'], exist_ok=True)
    open(os.path.join(os.environ['TF_DATA_DIR'], 'terraform.tfstate'), 'w').write('{}')
elif command == 'apply':
    json.dump({'resources': [{'mode': 'managed', 'type': 'aws_vpc', 'name': 'this', 'instances': [{}]}]},
              open(state, 'w'))
    json.dump({k: os.environ.get(k) for k in ('AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID')},
              open(os.path.join(run_dir, 'apply-env.json'), 'w'))
    mode = os.environ.get('FAKE_APPLY', 'ok')
    if mode == 'fail':
        print('Error: creating EC2 VPC: InvalidParameterValue'); sys.exit(1)
    if mode == 'kill-emulator':
        settings = json.load(open(os.path.join(run_dir, 'run.json')))['settings']
        os.kill(settings['emulator']['pid'], signal.SIGKILL)
        time.sleep(60)
elif command == 'destroy':
    json.dump({'resources': []}, open(state, 'w'))
elif command == 'output':
    print(json.dumps({'cluster_name': {'value': 'eks-x'}}))
"""


@pytest.fixture
def fake_terraform(
    fake_cli: Callable[..., TerraformCli], runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """HARNESS_TERRAFORM points at the fake; returns the file recording its calls."""
    cli = fake_cli(FAKE_TERRAFORM)
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(cli.path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return record


def commands(record: Path) -> list[str]:
    return [json.loads(line)[1] for line in record.read_text().splitlines()] if record.exists() else []


def test_emulator_variables_use_a_documentation_cidr_and_the_run(runs_dir: Path) -> None:
    stack = Stack.create("emulator", "r-vars")
    variables = stack.variables()
    assert variables["api_public_cidrs"] == list(EMULATOR_API_CIDRS)
    assert variables["run_id"] == "r-vars" and variables["target"] == "emulator"
    assert variables["cluster_name"] == "eks-r-vars"
    assert variables["expires_at"] == stack.run.expires_at


def test_the_aws_target_needs_api_cidrs(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv(API_CIDRS_ENV, raising=False)
    stack = Stack.create("aws", "r-aws")
    with pytest.raises(InputError, match="--api-cidr"):
        stack.variables()
    monkeypatch.setenv(API_CIDRS_ENV, "203.0.113.7/32, 203.0.113.8/32")
    assert stack.variables()["api_public_cidrs"] == ["203.0.113.7/32", "203.0.113.8/32"]


def test_the_aws_target_is_made_once_per_emulator(fake_terraform: Path) -> None:
    stack = Stack.create("emulator", "r-clients")
    try:
        first = stack.emulator(start=True)
        target = stack.aws_target()
        assert stack.aws_target() is target and target.client("sts") is stack.aws_target().client("sts")
        stack.down()  # nothing in state: stops the emulator
        with pytest.raises(EnvironmentProblem, match="no running emulator"):
            stack.aws_target()
        second = stack.emulator(start=True)  # the run's next emulator: other clients
        assert second is not None and first is not None and second.endpoint != first.endpoint
        assert stack.aws_target() is not target and stack.aws_target().endpoint_url == second.endpoint
    finally:
        stack.down()


def test_cluster_names_fit_the_platform_validation() -> None:
    name = cluster_name_for("r20261125-1920-abcd-and-more-xyz")
    assert len(name) <= CLUSTER_NAME_MAX and not name.endswith("-") and name.startswith("eks-")


def test_runs_are_found_again_only_on_their_target(runs_dir: Path) -> None:
    Stack.create("emulator", "r-again")
    assert Stack.load("r-again").target == "emulator"
    with pytest.raises(InputError, match="on target emulator, not aws"):
        Stack.load("r-again", "aws")
    with pytest.raises(InputError, match="no run 'r-none'"):
        Stack.load("r-none")


def test_up_then_down_from_another_process_view(fake_terraform: Path, pid_alive: Callable[[int], bool]) -> None:
    stack = Stack.create("emulator", "r-cycle")
    assert stack.up() == {"cluster_name": "eks-x"}
    recorded = load_run("r-cycle").settings["emulator"]
    assert pid_alive(recorded["pid"])

    later = Stack.load("r-cycle")  # what `harness down --run-id r-cycle` does
    later.down()
    assert commands(fake_terraform) == ["init", "apply", "output", "destroy"]
    assert "emulator" not in load_run("r-cycle").settings
    assert not emu.is_moto_process(recorded["pid"])
    later.down()  # repeating is harmless
    assert commands(fake_terraform).count("destroy") == 1


def test_terraform_made_before_the_emulator_starts_applies_against_it(fake_terraform: Path) -> None:
    """The watchdog wraps the run's Terraform before `up` starts the emulator (harness.e2e.stages.watched): the apply
    must still go to the emulator, with its dummy credentials, never to whatever account the shell has."""
    stack = Stack.create("emulator", "r-early")
    early = stack.terraform  # what `watched(stack.terraform, ...)` does before `stack.up()`
    try:
        stack.up()
        emulator = stack.emulator(start=False)
        assert emulator is not None and stack.terraform is early
        seen = json.loads(stack.run.path("apply-env.json").read_text(encoding="utf-8"))
        assert seen == {
            "AWS_ENDPOINT_URL": emulator.endpoint,
            "AWS_ACCESS_KEY_ID": emu.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        }
    finally:
        stack.down()


def test_a_failed_apply_tears_down_and_stops_the_emulator(
    fake_terraform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_APPLY", "fail")
    stack = Stack.create("emulator", "r-fail")
    with pytest.raises(TerraformFailed, match="creating EC2 VPC: InvalidParameterValue"):
        stack.up()
    assert commands(fake_terraform) == ["init", "apply", "destroy"]
    assert "emulator" not in load_run("r-fail").settings


def test_an_emulator_dying_mid_apply_is_one_line_and_leaves_nothing(
    fake_terraform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_APPLY", "kill-emulator")
    stack = Stack.create("emulator", "r-dies")
    with pytest.raises(EnvironmentProblem, match=r"the emulator \(moto server pid \d+\) exited during terraform apply"):
        stack.up()
    # Its resources lived in the dead process: nothing to destroy, the state is set aside, not reused.
    assert "destroy" not in commands(fake_terraform)
    assert not stack.terraform.state_path.exists()
    assert stack.terraform.state_path.with_name("platform.tfstate.orphaned").exists()
    assert "emulator" not in load_run("r-dies").settings


def test_a_missing_stack_directory_fails_before_anything_starts(
    fake_terraform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_start(*args: object, **kwargs: object) -> emu.Emulator:
        raise AssertionError("the emulator must not start for bad input")

    monkeypatch.setattr(emu, "start", no_start)
    stack = Stack.create("emulator", "r-nostack", root=tmp_path / "nope")
    with pytest.raises(InputError, match="stack directory not found"):
        stack.up()
    assert commands(fake_terraform) == []


def test_verify_needs_a_running_emulator(runs_dir: Path) -> None:
    stack = Stack.create("emulator", "r-noemu")
    with pytest.raises(EnvironmentProblem, match="has no running emulator"):
        stack.verify()


def test_the_verify_table_lists_every_verdict() -> None:
    results = [
        Result.passed("public subnets", "3 subnets"),
        Result.failed("queue policy", "no Allow | for events"),
        Result.not_applicable("access entry", "emulator", "no EKS access-entry API"),
    ]
    table = results_table(results, "t")
    assert table.row_count == 3
