"""Where the project's files are, and the single-source-of-truth files read from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError

REFERENCE_ENV = "HARNESS_REFERENCE"
REPO_ENV = "HARNESS_REPO"
KUBERNETES_CAPABILITY = "kubernetes"  # infra/targets.yaml: a target without it has no Kubernetes API


def _looks_like_repo(path: Path) -> bool:
    return (path / "versions.yaml").is_file() and (path / "infra").is_dir()


@cache
def repo_root() -> Path:
    """The checkout this harness drives: $HARNESS_REPO, else the nearest parent of cwd, else the package's."""
    if env := os.environ.get(REPO_ENV):
        root = Path(env).resolve()
        if not _looks_like_repo(root):
            raise InputError(f"{REPO_ENV}={env} is not a checkout of this project (no versions.yaml + infra/)")
        return root
    for candidate in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent):
        if _looks_like_repo(candidate):
            return candidate
    raise InputError("cannot find the project checkout: run from inside it or set HARNESS_REPO")


def read_yaml(path: Path) -> Any:
    """Load one YAML document; a missing or malformed file becomes a one-line InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}{where}: invalid YAML ({problem})") from None


def versions(root: Path | None = None) -> dict[str, str]:
    """Every pinned version, from versions.yaml."""
    data = read_yaml((root or repo_root()) / "versions.yaml")
    if not isinstance(data, dict):
        raise InputError("versions.yaml: expected a mapping of name: version")
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True)
class TargetCapabilities:
    """What one target cannot serve, each with the reason: read from infra/targets.yaml."""

    name: str
    description: str
    unsupported: dict[str, str]

    def supports(self, capability: str) -> bool:
        return capability not in self.unsupported

    def reason(self, capability: str) -> str:
        return self.unsupported.get(capability, "")


def capabilities(target: str, root: Path | None = None) -> TargetCapabilities:
    path = (root or repo_root()) / "infra" / "targets.yaml"
    targets = (read_yaml(path) or {}).get("targets", {})
    if target not in targets:
        raise InputError(f"{path}: unknown target {target!r} (known: {', '.join(sorted(targets))})")
    entry = targets[target] or {}
    return TargetCapabilities(target, str(entry.get("description", "")), dict(entry.get("unsupported") or {}))


def reference_dir(explicit: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """Pinned upstream data: --reference, else $HARNESS_REFERENCE, else ../shared/reference beside the repo."""
    if explicit is not None:
        path, how = Path(explicit), "--reference"
    elif env := os.environ.get(REFERENCE_ENV):
        path, how = Path(env), REFERENCE_ENV
    else:
        path, how = (root or repo_root()).parent / "shared" / "reference", "default location"
    if not (path / "crds").is_dir():
        raise InputError(
            f"{path} ({how}): no reference data (expected crds/, charts/, iam/, compatibility.yaml); "
            f"pass --reference DIR or set {REFERENCE_ENV}"
        )
    return path.resolve()
