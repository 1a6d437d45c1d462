"""Shared fixtures: an isolated runs directory, fake Terraform CLIs, throwaway Terraform roots."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.plugin import uses_platform
from harness.project import REFERENCE_ENV, REPO_ENV, reference_dir, repo_root
from harness.run import RUNS_ENV
from harness.targets.releases import PATH_STEP
from harness.terraform.runner import TerraformCli

# `local.platform.a.b["c"]` in infra/addons: one read of the platform's outputs (through terraform_remote_state).
PLATFORM_READ = re.compile(r'(?P<try>try\(\s*)?local\.platform(?P<path>(?:\.[A-Za-z_]\w*|\["[^"]+"\])+)')


SHARED_SCOPES = ("class", "module", "package")


def shares_setup_with_its_module(item: pytest.Item) -> bool:
    """Whether the test uses a fixture set up once for several tests of its module (a moto server, an applied
    root, a control plane)."""
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the fixtures the test resolved
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope in SHARED_SCOPES for chain in definitions for d in chain)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`) the tests of a module that share a module fixture are one unit of work, so
    it is set up once, on one worker; every other test is a unit of its own, so long ones (three local runs in one
    file) spread over the workers. The tests that use the session's platform are the plugin's group instead (its
    worker would otherwise take their modules' other tests too)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if not uses_platform(item) and shares_setup_with_its_module(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _output_path(steps: str) -> tuple[str, ...]:
    return tuple(name or key for name, key in PATH_STEP.findall(steps))


@pytest.fixture(scope="session")
def addons_platform_reads() -> dict[tuple[str, ...], bool]:
    """Every path infra/addons reads from the platform's outputs -> True when try() lets it be absent."""
    reads: dict[tuple[str, ...], bool] = {}
    for tf in sorted((repo_root() / "infra" / "addons").glob("*.tf")):
        for match in PLATFORM_READ.finditer(tf.read_text(encoding="utf-8")):
            path = _output_path(match["path"])
            reads[path] = reads.get(path, True) and match["try"] is not None
    return reads


MINIMAL_ROOT = """\
terraform {
  backend "local" {}
}
"""


@pytest.fixture(scope="session")
def reference() -> Path:
    """The pinned upstream reference data (../shared/reference or HARNESS_REFERENCE); skips without it."""
    try:
        return reference_dir()
    except InputError as exc:
        pytest.skip(f"pinned reference data not available: {exc}")


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs are created under tmp_path, never in the checkout's .runs/."""
    directory = tmp_path / "runs"
    monkeypatch.setenv(RUNS_ENV, str(directory))
    return directory


LocalE2E = Callable[[Path, float], tuple[subprocess.CompletedProcess[str], Path]]


@pytest.fixture
def local_e2e(tmp_path: Path, reference: Path) -> LocalE2E:
    """Runs `harness e2e --target local` without the Karpenter stage, as a subprocess, on the infra/ and gitops/ of
    a repository (this checkout, or a broken `repo_copy`) with this checkout's harness and reference
    data; returns its result and its run's folder."""

    def run(repo: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], Path]:
        runs = tmp_path / "runs"
        done = subprocess.run(
            [sys.executable, "-m", "harness", "e2e", "--target", "local", "--yes", "--skip", "karpenter"],
            # A copy has no shared/ beside it: the reference data stays this checkout's.
            env={**os.environ, RUNS_ENV: str(runs), REPO_ENV: str(repo), REFERENCE_ENV: str(reference)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        (folder,) = runs.iterdir()
        return done, folder

    return run


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A clone of this checkout (its committed tree), for a test to break."""
    copy = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(repo_root()), str(copy)], check=True)
    return copy


@pytest.fixture
def throwaway_root(tmp_path: Path) -> Path:
    """A Terraform root with a local backend and nothing in it."""
    root = tmp_path / "stack"
    root.mkdir()
    (root / "main.tf").write_text(MINIMAL_ROOT, encoding="utf-8")
    return root


@pytest.fixture
def fake_cli(tmp_path: Path) -> Callable[[str], TerraformCli]:
    """Write an executable `terraform` whose body is Python; `args` holds the arguments after -chdir=..."""

    def make(body: str, name: str = "terraform") -> TerraformCli:
        bin_dir = tmp_path / "fake-bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / name
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, signal, sys, time\n"
            "args = sys.argv[2:]\n"
            "record = os.environ.get('FAKE_TF_RECORD')\n"
            "if record:\n"
            "    open(record, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n" + textwrap.dedent(body),
            encoding="utf-8",
        )
        script.chmod(0o755)
        return TerraformCli(script, name)

    return make


@pytest.fixture
def no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in a unit test may reach a real account: dummy keys, no profile, moto's default region."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.parent.exists() or bool(cmdline.read_bytes())  # a zombie has an empty command line


@pytest.fixture
def pid_alive() -> Callable[[int], bool]:
    """Whether a process still runs (zombies awaiting their parent's wait() count as gone)."""
    return _pid_alive
