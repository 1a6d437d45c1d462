"""Where Argo CD reads gitops/ from on a target that clones a remote (aws): one commit everywhere.

Terraform, the gate and the expected Applications come from this working tree, so Argo CD must sync the same
content: the commit checked out here, pinned by its SHA (infra/addons `gitops_revision`, which the root
Application and the cluster secret's `eks-platform/gitops-revision` annotation carry to every ApplicationSet).
That holds only when nothing Argo CD syncs has uncommitted changes and the remote has the commit; either is
refused before anything is created. (`local` serves the working tree itself: harness.targets.git_endpoint.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.errors import EnvironmentProblem, InputError
from harness.git import git, git_succeeds

GITOPS_REPO_ENV = "HARNESS_GITOPS_REPO_URL"
SYNCED = "gitops"  # what Argo CD syncs, relative to the checkout


def gitops_source(explicit_url: str | None, env: Mapping[str, str], checkout: Path) -> tuple[str, str]:
    """(repository URL, commit SHA) Argo CD syncs: --gitops-repo-url, else the env, else the checkout's origin."""
    url = explicit_url or env.get(GITOPS_REPO_ENV, "") or _origin(checkout)
    if not url.startswith(("https://", "git@", "ssh://")):
        raise InputError(
            f"Argo CD needs a git URL it can clone for gitops/: pass --gitops-repo-url or set {GITOPS_REPO_ENV} "
            f"(got {url!r})"
        )
    return url, commit_under_test(checkout, url)


def _origin(checkout: Path) -> str:
    try:
        return git("remote", "get-url", "origin", cwd=checkout)
    except EnvironmentProblem:
        return ""  # no origin: the URL check names the options


def commit_under_test(checkout: Path, url: str) -> str:
    """HEAD's SHA, when gitops/ has no uncommitted change and the repository at `url` has the commit."""
    head = git("rev-parse", "HEAD", cwd=checkout)
    changed = [
        *git("diff", "--name-only", "HEAD", "--", SYNCED, cwd=checkout).splitlines(),  # staged or not
        *git("ls-files", "--others", "--exclude-standard", "--", SYNCED, cwd=checkout).splitlines(),  # untracked
    ]
    if changed:
        raise InputError(
            f"{changed[0]}: uncommitted change in {SYNCED}/ ({len(changed)} path(s)), which Argo CD would not "
            f"see: commit it and push (`git commit` then `git push`), or stash it, and run again"
        )
    if not on_remote(checkout, url, head):
        raise InputError(
            f"commit {head[:12]} is not on {url}, where Argo CD reads it: push it (`git push`; `git fetch` first if "
            "the remote moved on) and run again"
        )
    return head


def on_remote(checkout: Path, url: str, commit: str) -> bool:
    """Whether a branch or tag of the repository at `url` is the commit or descends from it (`git ls-remote`)."""
    for line in git("ls-remote", url, cwd=checkout).splitlines():
        tip = line.split()[0]
        if tip == commit or git_succeeds("merge-base", "--is-ancestor", commit, tip, cwd=checkout):
            return True
    return False
