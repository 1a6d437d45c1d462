"""Every Kubernetes fixture says where it came from: recorded from a run by scripts/capture_kube_objects.py, or
hand-written with the reason a run cannot produce its state. Recorded ones carry nothing of the recording machine."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from kube_fixtures import FIXTURES

from harness.project import repo_root

RECORDED_HEADER = re.compile(
    r"^# recorded from a local-target run by scripts/capture_kube_objects\.py "
    r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: GET /\S+$"
)
HAND_WRITTEN = re.compile(r"^# hand-written: \S.{10,}")
FILES = sorted(FIXTURES.rglob("*.y*ml"))


def leading_comments(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[: next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))]


def short(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def test_the_fixtures_are_found() -> None:
    # Every one is recorded today; a state no local run can produce may be hand-written, labelled as below.
    assert [f for f in FILES if f.relative_to(FIXTURES).parts[0] == "recorded"]


@pytest.mark.parametrize("path", FILES, ids=short)
def test_each_fixture_is_labelled_recorded_or_hand_written(path: Path) -> None:
    comments = leading_comments(path)
    recorded = bool(comments) and bool(RECORDED_HEADER.match(comments[0]))
    hand_written = any(HAND_WRITTEN.match(line) for line in comments)
    assert recorded or hand_written, (
        f"{short(path)}: start it with the header scripts/capture_kube_objects.py writes, or with a "
        "'# hand-written: <why a real run cannot produce this state here>' line"
    )
    assert not (recorded and hand_written), f"{short(path)}: both recorded and hand-written?"
    in_recorded_folder = path.relative_to(FIXTURES).parts[0] == "recorded"
    assert recorded == in_recorded_folder, f"{short(path)}: recorded fixtures live in recorded/, and only they"


RECORDED_FILES = [f for f in FILES if f.relative_to(FIXTURES).parts[0] == "recorded"]


@pytest.mark.parametrize("path", RECORDED_FILES, ids=short)
def test_recorded_fixtures_hold_no_machine_paths_and_are_list_responses(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for machine in {str(repo_root()), str(Path.home()) + "/"}:
        assert machine not in text, f"{short(path)} contains {machine!r}: re-record it (the script scrubs it)"
    served = yaml.safe_load(text)
    assert served["kind"].endswith("List") and isinstance(served["items"], list)
    assert all("managedFields" not in item["metadata"] for item in served["items"])
    built_in = served["apiVersion"] == "v1" or served["apiVersion"].split("/")[0].endswith(".k8s.io")
    if built_in:  # NodeList, PodList, IngressList...: the API server puts no kind on their items
        assert all("kind" not in item for item in served["items"])
    else:  # custom resources' lists carry each item's kind
        assert all(item["kind"] == served["kind"].removesuffix("List") for item in served["items"])


def capture_script() -> ModuleType:
    path = repo_root() / "scripts" / "capture_kube_objects.py"
    spec = importlib.util.spec_from_file_location("capture_kube_objects", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_scrubs_this_machines_paths_and_keeps_the_containers(tmp_path: Path) -> None:
    script = capture_script()
    run_dir = tmp_path / "runs" / "r1"
    paths = script.placeholders(run_dir / "cluster" / "kubeconfig", run_dir)
    served = {
        "metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"volumes": [{"hostPath": {"path": f"{run_dir}/argocd/repo"}}], "workingDir": "/tmp"},
        "status": {"message": f"kustomize build {repo_root()}/gitops/ops failed; see {run_dir}x"},
    }
    assert script.scrub(served, paths) == {
        "metadata": {"name": "x"},
        "spec": {"volumes": [{"hostPath": {"path": "<run-dir>/argocd/repo"}}], "workingDir": "/tmp"},
        "status": {"message": "kustomize build <repo>/gitops/ops failed; see <runs-dir>/r1x"},
    }


def test_the_script_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = capture_script()
    assert script.main(["--kubeconfig", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no kubeconfig there" in error
