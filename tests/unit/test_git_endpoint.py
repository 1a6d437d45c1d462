"""The local target's Git endpoint, for real: a snapshot of a working tree served by git http-backend over HTTPS
on loopback, cloned with git itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.targets.controlplane import create_pki
from harness.targets.git_endpoint import BRANCH, serve

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not on PATH")


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GIT), *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    _git("init", "--quiet", "--initial-branch=feature", cwd=work)
    (work / ".gitignore").write_text(".venv/\n")
    (work / "committed.yaml").write_text("a: 1\n")
    _git("add", "--all", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "first", cwd=work)
    (work / "committed.yaml").write_text("a: 2\n")  # modified, not committed
    (work / "untracked.yaml").write_text("b: 1\n")  # new, not added
    (work / ".venv").mkdir()
    (work / ".venv" / "ignored").write_text("x\n")
    return work


def test_a_clone_gets_the_working_tree_as_it_is_and_the_checkout_is_untouched(checkout: Path, tmp_path: Path) -> None:
    pki = create_pki(tmp_path / "pki")
    status_before = _git("status", "--porcelain", cwd=checkout).stdout
    head_before = _git("rev-parse", "HEAD", cwd=checkout).stdout
    with serve(checkout, tmp_path / "git", pki.path("apiserver.crt"), pki.path("apiserver.key")) as endpoint:
        assert endpoint.url.startswith("https://127.0.0.1:")
        env = {**os.environ, "GIT_SSL_CAINFO": str(pki.path("ca.crt"))}
        clone = tmp_path / "clone"
        done = _git("clone", "--quiet", "--branch", BRANCH, endpoint.url, str(clone), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    assert (clone / "committed.yaml").read_text() == "a: 2\n"
    assert (clone / "untracked.yaml").read_text() == "b: 1\n"
    assert not (clone / ".venv").exists()
    assert _git("rev-parse", "HEAD", cwd=clone).stdout.strip() == endpoint.commit
    assert _git("status", "--porcelain", cwd=checkout).stdout == status_before
    assert _git("rev-parse", "HEAD", cwd=checkout).stdout == head_before


def test_a_client_that_trusts_another_ca_is_refused(checkout: Path, tmp_path: Path) -> None:
    pki = create_pki(tmp_path / "pki")
    with serve(checkout, tmp_path / "git", pki.path("apiserver.crt"), pki.path("apiserver.key")) as endpoint:
        stranger = create_pki(tmp_path / "another-run")
        env = {**os.environ, "GIT_SSL_CAINFO": str(stranger.path("ca.crt"))}
        done = _git("ls-remote", endpoint.url, cwd=tmp_path, env=env)
    assert done.returncode != 0
    assert "certificate" in done.stderr
