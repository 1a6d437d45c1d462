"""The pytest plugin in a child pytest session: options, the target fixture, skips, guaranteed teardown."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.aws.emulator import Emulator
from harness.run import RUNS_ENV
from harness.targets.stack import API_CIDRS_ENV
from harness.terraform.runner import TERRAFORM_ENV, TerraformCli

pytest_plugins = ["pytester"]

FAKE_PLATFORM = """\
data_dir = os.environ['TF_DATA_DIR']
state = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(data_dir))), 'platform.tfstate')
if args[0] == 'init':
    os.makedirs(data_dir, exist_ok=True)
    open(os.path.join(data_dir, 'terraform.tfstate'), 'w').write('{}')
elif args[0] == 'apply':
    # On the emulator target the apply must reach the run's emulator, never the environment's credentials.
    if not os.environ.get('AWS_ENDPOINT_URL', '').startswith('http://127.0.0.1:'):
        sys.exit('Error: No valid credential sources found')
    json.dump({'resources': [{'mode': 'managed', 'type': 'aws_vpc', 'name': 'v', 'instances': [{}]}]},
              open(state, 'w'))
elif args[0] == 'destroy':
    json.dump({'resources': []}, open(state, 'w'))
elif args[0] == 'output':
    print(json.dumps({'vpc_id': {'value': 'vpc-123'}}))
"""


def commands(record: Path) -> list[str]:
    return [json.loads(line)[1] for line in record.read_text().splitlines()]


@pytest.fixture
def child(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("HARNESS_TARGET", raising=False)
    return pytester


def test_the_target_fixture_carries_capabilities(child: pytest.Pytester) -> None:
    child.makepyfile(
        """
        def test_target(harness_target):
            assert harness_target.name == "aws" and harness_target.unsupported == {}
        """
    )
    child.runpytest_subprocess("--harness-target", "aws").assert_outcomes(passed=1)
    child.makepyfile(
        """
        def test_target(harness_target):
            assert harness_target.name == "emulator" and not harness_target.supports("eks_access_entries")
        """
    )
    child.runpytest_subprocess().assert_outcomes(passed=1)


def test_platform_skips_with_the_reason_when_terraform_is_missing(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TERRAFORM_ENV, "no-such-terraform")
    child.makepyfile("def test_needs_platform(harness_platform):\n    pass\n")
    result = child.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*HARNESS_TERRAFORM=no-such-terraform: no such executable*"])


def test_the_aws_target_is_skipped_without_opt_in(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_cli: Callable[..., TerraformCli]
) -> None:
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli("").path))
    monkeypatch.delenv("E2E_AWS_ACCOUNT_ID", raising=False)
    child.makepyfile("def test_needs_platform(harness_platform):\n    pass\n")
    result = child.runpytest_subprocess("-rs", "--harness-target", "aws")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*touches a real account: set E2E_AWS_ACCOUNT_ID to opt in*"])


def test_the_platform_is_destroyed_after_a_failing_session_unless_kept(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_cli: Callable[..., TerraformCli], tmp_path: Path
) -> None:
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli(FAKE_PLATFORM).path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    child.makepyfile(
        """
        def test_outputs(harness_platform_outputs, harness_aws_clients):
            assert harness_platform_outputs == {"vpc_id": "vpc-123"}
            assert harness_aws_clients("sqs").meta.endpoint_url.startswith("http://127.0.0.1:")

        def test_fails(harness_platform):
            assert False, "a failing test must not leave the stack up"
        """
    )
    child.runpytest_subprocess("--harness-run-id", "r-plugin").assert_outcomes(passed=1, failed=1)
    calls = commands(record)
    assert calls[:2] == ["init", "apply"] and calls[-1] == "destroy" and calls.count("destroy") == 1
    run = json.loads((tmp_path / "runs" / "r-plugin" / "run.json").read_text())
    assert "emulator" not in run["settings"]

    record.unlink()
    kept = tmp_path / "runs" / "r-kept" / "run.json"
    try:
        result = child.runpytest_subprocess("--harness-run-id", "r-kept", "--harness-keep-stack", "-s")
        result.stdout.fnmatch_lines(["*kept run r-kept: harness down --run-id r-kept*"])
        assert "destroy" not in commands(record)
        assert child.run(sys.executable, "-m", "harness", "down", "--run-id", "r-kept").ret == 0
        assert commands(record)[-1] == "destroy"
    finally:  # never leave the kept emulator running, whatever failed above
        settings = json.loads(kept.read_text())["settings"] if kept.exists() else {}
        if "emulator" in settings:
            Emulator.from_settings(settings["emulator"]).stop()


SIX_PLATFORM_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_uses_platform(n, harness_platform_outputs):
    assert harness_platform_outputs == {"vpc_id": "vpc-123"}
"""


@pytest.mark.parametrize(("dist", "applies"), [("loadgroup", 1), ("load", 2)])
def test_under_xdist_the_platform_tests_share_one_worker_and_one_apply(
    dist: str,
    applies: int,
    child: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    fake_cli: Callable[..., TerraformCli],
    tmp_path: Path,
) -> None:
    """With --dist loadgroup the plugin's group sends every test of the platform to one worker: one apply. With
    plain --dist load (groups ignored) each worker applies a platform of its own: what the group prevents."""
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli(FAKE_PLATFORM).path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # an emulator of our own: none is started
    child.makepyfile(SIX_PLATFORM_TESTS)
    child.runpytest_subprocess("-n", "2", "--dist", dist).assert_outcomes(passed=6)
    calls = commands(record)
    assert calls.count("apply") == applies and calls.count("destroy") == applies


@pytest.mark.parametrize(("plugins", "group"), [(["-p", "no:xdist"], "[]"), ([], "['harness_platform']")])
def test_the_platform_tests_are_grouped_only_where_xdist_is_loaded(
    plugins: list[str], group: str, child: pytest.Pytester
) -> None:
    """A test that uses the platform is in its group, a test beside it that does not is not. Without xdist no
    `xdist_group` mark is added: pytest would warn of an unknown mark."""
    child.makeconftest(
        """
        def pytest_collection_finish(session):
            for item in session.items:
                print("groups", item.name, [m.args[0] for m in item.iter_markers("xdist_group")])
        """
    )
    child.makepyfile(
        test_on_platform="def test_uses_platform(harness_platform_outputs): pass\n\ndef test_beside(): pass\n",
        test_elsewhere="def test_other(): pass\n",
    )
    result = child.runpytest_subprocess(*plugins, "--collect-only", "-W", "error::pytest.PytestUnknownMarkWarning")
    assert result.ret == 0
    groups = {line for line in result.outlines if line.startswith("groups ")}
    assert groups == {f"groups test_uses_platform {group}", "groups test_beside []", "groups test_other []"}


def test_the_suite_keeps_a_module_on_one_worker_only_where_its_tests_share_a_module_fixture(
    child: pytest.Pytester,
) -> None:
    """tests/conftest.py under xdist: the tests of a module with a module fixture are one group (set up once);
    the tests of a module without one are units of their own, so long ones spread over the workers."""
    project_conftest = Path(__file__).parents[1] / "conftest.py"
    child.makeconftest(
        project_conftest.read_text(encoding="utf-8")
        + """
def pytest_collection_finish(session):
    for item in session.items:
        print("groups", item.name, [m.args[0] for m in item.iter_markers("xdist_group")])
"""
    )
    child.makepyfile(
        test_shared="import pytest\n\n@pytest.fixture(scope='module')\ndef server():\n    return 1\n\n"
        "def test_a(server): pass\n\ndef test_b(server): pass\n\ndef test_c(): pass\n",
        test_alone="import pytest\n\n@pytest.fixture\ndef each():\n    return 1\n\n"
        "def test_d(each): pass\n\ndef test_e(tmp_path): pass\n",
    )
    result = child.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == 0, result.outlines
    groups = {line for line in result.outlines if line.startswith("groups ")}
    assert groups == {
        "groups test_a ['test_shared.py']",
        "groups test_b ['test_shared.py']",
        "groups test_c []",
        "groups test_d []",
        "groups test_e []",
    }


# An apply that has created the VPC (it is in the state) and is still creating the rest.
SLOW_APPLY = FAKE_PLATFORM.replace(
    "elif args[0] == 'destroy':", "    time.sleep(float(os.environ['FAKE_TF_APPLY_S']))\nelif args[0] == 'destroy':"
)


@pytest.mark.parametrize(("apply_seconds", "passed"), [(0, True), (60, False)])
def test_the_watchdog_stops_the_platform_apply_and_the_session_still_tears_down(
    apply_seconds: int,
    passed: bool,
    child: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    fake_cli: Callable[..., TerraformCli],
    tmp_path: Path,
) -> None:
    """The pytest path has `harness e2e`'s watchdog: an apply that outlives --harness-max-minutes is stopped, the
    test fails naming the limit, and what was started is destroyed. Within the limit the same session passes."""
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli(SLOW_APPLY).path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.setenv("FAKE_TF_APPLY_S", str(apply_seconds))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # an emulator of our own: none is started
    child.makepyfile("def test_needs_platform(harness_platform_outputs):\n    pass\n")
    started = time.monotonic()
    result = child.runpytest_subprocess("--harness-max-minutes", "0.05")  # 3 s
    if passed:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*watchdog: the run exceeded --harness-max-minutes 0.05 during terraform apply*"])
        assert time.monotonic() - started < 40, "the watchdog let the apply run on"
    assert commands(record)[-1] == "destroy"


def test_past_the_watchdog_the_remaining_platform_tests_fail_at_once(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_cli: Callable[..., TerraformCli], tmp_path: Path
) -> None:
    """A test that runs past the limit leaves the next platform tests nothing to wait for: they fail in setup with the
    watchdog's reason, a test without the platform still runs, and the teardown destroys the platform."""
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli(FAKE_PLATFORM).path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    child.makepyfile(
        """
        import time

        def test_first(harness_platform):
            time.sleep(3.5)

        def test_second(harness_platform):
            pass

        def test_without_platform():
            pass
        """
    )
    result = child.runpytest_subprocess("--harness-max-minutes", "0.05", "-rE")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_second*", "watchdog: the run exceeded --harness-max-minutes 0.05"]
    )
    assert commands(record).count("destroy") == 1


def test_the_aws_target_without_api_cidrs_fails_in_one_line_before_terraform_runs(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_cli: Callable[..., TerraformCli], tmp_path: Path
) -> None:
    """The pytest path on aws refuses a missing API CIDR as `harness e2e` does: before anything is created."""
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv(TERRAFORM_ENV, str(fake_cli(FAKE_PLATFORM).path))
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "111122223333")
    monkeypatch.delenv(API_CIDRS_ENV, raising=False)
    child.makepyfile("def test_needs_platform(harness_platform):\n    pass\n")
    result = child.runpytest_subprocess("--harness-target", "aws", "-rE")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*the platform did not come up*needs the CIDRs*{API_CIDRS_ENV}=<cidr>*"])
    assert "Traceback" not in result.stdout.str()
    assert not record.exists() or "apply" not in commands(record)
