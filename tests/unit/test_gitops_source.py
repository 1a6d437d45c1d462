"""One commit everywhere on a target that clones a remote: Argo CD syncs the commit checked out here, refused
while gitops/ has uncommitted changes or the remote lacks the commit. Real git: a checkout and a bare "remote"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.e2e.gitops_source import GITOPS_REPO_ENV, commit_under_test, gitops_source
from harness.errors import InputError

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not on PATH")
URL = "https://git.example.invalid/platform.git"  # rewritten to the bare remote by the checkout's git config


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run([str(GIT), "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def commit(checkout: Path, path: str, text: str) -> str:
    (checkout / path).parent.mkdir(parents=True, exist_ok=True)
    (checkout / path).write_text(text)
    git("add", "--all", cwd=checkout)
    git("commit", "--quiet", "-m", f"change {path}", cwd=checkout)
    return git("rev-parse", "HEAD", cwd=checkout)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
def checkout(tmp_path: Path, remote: Path) -> Path:
    work = tmp_path / "checkout"
    git("clone", "--quiet", str(remote), str(work), cwd=tmp_path)
    git("config", f"url.{remote}.insteadOf", URL, cwd=work)
    commit(work, "gitops/apps/app.yaml", "replicas: 1\n")
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return work


def test_a_clean_pushed_checkout_is_synced_at_its_commit(checkout: Path) -> None:
    head = git("rev-parse", "HEAD", cwd=checkout)
    assert gitops_source(URL, {}, checkout) == (URL, head)
    assert gitops_source(None, {GITOPS_REPO_ENV: URL}, checkout) == (URL, head)


def test_changes_outside_gitops_do_not_matter_to_argo_cd(checkout: Path) -> None:
    (checkout / "README.md").write_text("edited\n")
    assert commit_under_test(checkout, URL) == git("rev-parse", "HEAD", cwd=checkout)


@pytest.mark.parametrize("path", ["gitops/apps/app.yaml", "gitops/apps/new.yaml"], ids=["modified", "untracked"])
def test_an_uncommitted_change_to_gitops_is_refused(checkout: Path, path: str) -> None:
    (checkout / path).write_text("replicas: 2\n")
    with pytest.raises(InputError, match=f"^{path}: uncommitted change in gitops/.*commit it and push") as error:
        commit_under_test(checkout, URL)
    assert "\n" not in str(error.value)


def test_a_commit_the_remote_lacks_is_refused(checkout: Path) -> None:
    head = commit(checkout, "gitops/apps/app.yaml", "replicas: 3\n")
    with pytest.raises(InputError, match=f"commit {head[:12]} is not on {URL}.*push it"):
        commit_under_test(checkout, URL)
    git("push", "--quiet", "origin", "HEAD:refs/heads/feature", cwd=checkout)  # any branch of the remote will do
    assert commit_under_test(checkout, URL) == head


def test_a_commit_the_remote_has_moved_past_is_still_on_it(checkout: Path) -> None:
    tested = git("rev-parse", "HEAD", cwd=checkout)
    commit(checkout, "gitops/apps/app.yaml", "replicas: 4\n")
    git("push", "--quiet", "origin", "HEAD:main", cwd=checkout)
    git("checkout", "--quiet", tested, cwd=checkout)
    assert commit_under_test(checkout, URL) == tested


def test_a_path_is_not_a_url_argo_cd_can_clone(checkout: Path) -> None:
    # The clone's origin is the bare remote's path: Argo CD in the cluster cannot read this machine's disk.
    with pytest.raises(InputError, match="--gitops-repo-url"):
        gitops_source(None, {}, checkout)
