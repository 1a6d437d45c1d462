"""examples/ci/conformance-gate.yml: a workflow users copy; it must call the harness the way the harness works."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "conformance-gate.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    result: list[dict[str, Any]] = job["steps"]
    return result


def commands(step: dict[str, Any], env: dict[str, str]) -> list[list[str]]:
    """Each shell line of a run step, with $VARS from the workflow env expanded, split into argv."""
    lines = []
    for raw in step.get("run", "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for name, value in env.items():
            line = line.replace(f"${name}", value)
        line = line.replace('"$RUNNER_TEMP', '"/runner-temp')
        lines.append(shlex.split(line.split("||")[0]))
    return lines


def test_triggers_on_pull_requests_with_least_privilege(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the bare key `on` as true
    assert "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "security-events": "write"}


def test_gate_step_uses_flags_the_harness_cli_accepts(workflow: dict[Any, Any]) -> None:
    env = {k: str(v) for k, v in workflow["env"].items()}
    gate = next(step for step in steps(workflow) if step.get("id") == "gate")
    (argv,) = [cmd for cmd in commands(gate, env) if cmd[0] == "harness"]

    args = build_parser().parse_args(argv[1:])

    assert args.command == "check"
    assert args.format == "sarif"
    assert str(args.output) == "harness-check.sarif"


def test_uploads_the_file_the_gate_writes_even_when_the_gate_fails(workflow: dict[Any, Any]) -> None:
    upload = next(step for step in steps(workflow) if "upload-sarif" in step.get("uses", ""))
    assert upload["with"]["sarif_file"] == "harness-check.sarif"
    assert upload["if"].startswith("always()")
    last = steps(workflow)[-1]
    assert last["if"] == "steps.gate.outputs.exit-code != '0'"
    assert last["run"].rstrip().endswith("exit 1")


def test_fetch_step_calls_the_script_with_arguments_it_accepts(workflow: dict[Any, Any]) -> None:
    fetch = next(step for step in steps(workflow) if "fetch_reference.py" in step.get("run", ""))
    (argv,) = commands(fetch, {})
    assert argv[:2] == ["python", ".harness/scripts/fetch_reference.py"]
    spec = importlib.util.spec_from_file_location("fetch_reference", ROOT / "scripts" / "fetch_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    with pytest.raises(SystemExit) as exited:  # --help proves the parser accepts the step's other flags first
        module.main([*argv[2:], "--help"])
    assert exited.value.code == 0


def test_every_action_is_pinned_to_a_major_version(workflow: dict[Any, Any]) -> None:
    for step in steps(workflow):
        if "uses" in step:
            version = step["uses"].partition("@")[2]
            assert version.startswith("v") and version[1:].split(".")[0].isdigit(), step["uses"]
