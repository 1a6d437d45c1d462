"""Git as the harness runs it: one command, its output, and a one-line error naming the command and the folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from harness.errors import EnvironmentProblem


def _run(
    args: tuple[str, ...], cwd: Path, env: Mapping[str, str] | None, stdin: str | None
) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise EnvironmentProblem("git: not found on PATH; the harness reads and serves the repository with it")
    return subprocess.run(
        [git, *args], cwd=cwd, env=dict(env or os.environ), input=stdin, capture_output=True, text=True, check=False
    )


def git(*args: str, cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """The command's output, stripped; EnvironmentProblem (its last line of stderr) when it fails."""
    done = _run(args, cwd, env, stdin)
    if done.returncode != 0:
        raise EnvironmentProblem(f"git {args[0]} in {cwd}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def git_succeeds(*args: str, cwd: Path) -> bool:
    """Whether a command that answers by its exit status (`merge-base --is-ancestor`) says yes."""
    return _run(args, cwd, None, None).returncode == 0
