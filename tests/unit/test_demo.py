"""`make demo` on a fresh machine: the best offline target it can give, building what the local target lacks first
where Go can (announced with its one-time cost, shown as it builds, safe to interrupt), else the emulator's AWS
half after one line on what brings the rest. The build is real: a tiny module from a file:// module proxy stands
in for the toolchain (tests/unit/go_proxy.py); the run after it is recorded, not run (it is the e2e's own tests)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from go_proxy import HELLO

from harness.cli import main
from harness.e2e import cli as e2e_cli
from harness.e2e.cli import DemoPlan, plan_demo
from harness.processes import free_port
from harness.project import repo_root
from harness.targets import local
from harness.toolchain import build

UNBUILT = "toolchain not built: kwok; run `make toolchain` (one-time, about 2 min on 2 cores)"
Runs = list[tuple[str, str | None]]  # (target, what the local target lacked) of each e2e run the demo started
NO_GO = "go: not found on PATH; the toolchain is built from Go modules: install Go 1.26+"


def test_a_built_toolchain_runs_the_demo_on_local() -> None:
    assert plan_demo(None, None) == DemoPlan("local", build_toolchain=False, note=None)
    assert plan_demo(None, NO_GO) == DemoPlan("local", build_toolchain=False, note=None)  # Go is not needed then


def test_a_missing_toolchain_that_go_can_build_is_built_first() -> None:
    assert plan_demo(UNBUILT, None) == DemoPlan("local", build_toolchain=True, note=None)


def test_without_go_the_demo_is_the_emulator_half_and_one_line_on_what_brings_the_rest() -> None:
    plan = plan_demo(UNBUILT, NO_GO)
    assert (plan.target, plan.build_toolchain) == ("emulator", False)
    assert plan.note is not None and "\n" not in plan.note
    assert plan.note.startswith("demo on the emulator, the AWS half; the Kubernetes half")
    assert plan.note.endswith(f"once the toolchain is built: {UNBUILT}; {NO_GO}")


def test_a_machine_that_cannot_make_pod_namespaces_gets_the_emulator_half_whatever_is_built() -> None:
    not_root = (
        "the local target runs the ops nodes' pods in network and mount namespaces of their own, which takes root"
    )
    plan = plan_demo(None, None, not_root)
    assert (plan.target, plan.build_toolchain) == ("emulator", False)
    assert plan.note is not None and plan.note.endswith(f"runs on the local target where {not_root}")


@pytest.fixture
def hello_toolchain(hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The local target needs only `hello` (built from the file:// proxy) in an empty cache; returns the cache."""
    cache = tmp_path / "toolchain-cache"
    monkeypatch.setenv(build.CACHE_ENV, str(cache))
    monkeypatch.setenv("HARNESS_REPO", str(hello_repo))
    monkeypatch.setattr(local, "BINARIES", ("hello",))
    monkeypatch.setitem(build.BINARIES, "hello", HELLO)
    repo_root.cache_clear()
    yield cache
    repo_root.cache_clear()


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Runs:
    """Each e2e run the demo starts: its target, and what the local target still lacked when it started."""
    started: Runs = []

    def record(args: argparse.Namespace) -> int:
        started.append((args.target, local.unavailable()))
        return 0

    monkeypatch.setattr(e2e_cli, "cmd_e2e", record)
    return started


def test_the_demo_builds_the_missing_toolchain_then_runs_every_stage_on_local(
    hello_toolchain: Path, runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "toolchain: building hello 1.0.0 with go" in out and "one-time cost about 1 min on 2 cores" in out
    assert "toolchain: done in" in out and "demo on the emulator" not in out
    assert runs == [("local", None)]  # started once the build was complete
    # Built: the next demo starts at once, building nothing.
    assert main(["demo"]) == 0
    assert "toolchain:" not in capsys.readouterr().out
    assert runs[1:] == [("local", None)]


def test_without_go_the_demo_runs_the_emulator_half_and_builds_nothing(
    hello_toolchain: Path, runs: Runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(hello_toolchain / "no-go-here"))
    assert main(["demo"]) == 0
    (said, *_) = capsys.readouterr().out.splitlines()
    assert said.startswith("demo on the emulator, the AWS half;")
    assert "toolchain not built: hello; run `make toolchain`" in said and "go: not found on PATH" in said
    assert runs == [("emulator", local.unavailable())]
    assert not hello_toolchain.exists()


def test_a_build_that_fails_is_one_line_and_runs_nothing(
    hello_toolchain: Path,
    runs: Runs,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-modcache"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: toolchain/hello: the Go module proxy could not serve"), err
    assert runs == []


def test_ctrl_c_while_the_demo_builds_leaves_no_half_built_toolchain(
    hello_toolchain: Path,
    runs: Runs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*args: object) -> str:
        raise KeyboardInterrupt  # Ctrl-C after the binary was linked, before it was verified

    with monkeypatch.context() as patched:
        patched.setattr(build, "reported_version", interrupted)
        assert main(["demo"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]
    assert runs == []
    entry = build.entry_for(HELLO)
    assert not entry.path.exists() and not list(entry.path.parent.glob(".building-*"))
    # The next demo builds it whole, then runs.
    assert main(["demo"]) == 0
    assert runs == [("local", None)]
