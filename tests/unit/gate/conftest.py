"""Gate test fixtures: a passing platform tree that tests copy and break one contract at a time."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gate.api import Report, check
from harness.project import repo_root

FIXTURES = Path(__file__).parent / "fixtures"
PLATFORM = FIXTURES / "platform"

Edit = tuple[str, str, str]  # (file relative to the tree, text that must be there, its replacement)


def copy_tree(source: Path, target: Path, edits: tuple[Edit, ...] = ()) -> Path:
    shutil.copytree(source, target)
    for file, old, new in edits:
        path = target / file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"fixture {file} no longer contains {old!r}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of what the gate reads of this checkout (infra/, gitops/, versions.yaml), to plant defects in."""
    repo, root = repo_root(), tmp_path / "repo"
    shutil.copytree(repo / "gitops", root / "gitops")
    shutil.copytree(
        repo / "infra", root / "infra", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "terraform.tfvars*")
    )
    shutil.copy(repo / "versions.yaml", root / "versions.yaml")
    return root


@pytest.fixture
def platform_tree(tmp_path: Path) -> Callable[..., Path]:
    """A fresh copy of the platform fixture with the given edits applied."""
    copies = iter(range(1000))

    def make(*edits: Edit) -> Path:
        return copy_tree(PLATFORM, tmp_path / f"platform{next(copies)}", edits)

    return make


@pytest.fixture
def platform(platform_tree: Callable[..., Path], reference: Path) -> Callable[..., Report]:
    """Check a copy of the platform fixture with the given edits applied."""

    def run(*edits: Edit, select: tuple[str, ...] = (), render_charts: bool = False) -> Report:
        root = platform_tree(*edits)
        return check([root / "infra"], [root / "gitops"], reference, select=select, render_charts=render_charts)

    return run
