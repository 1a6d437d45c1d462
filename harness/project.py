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
TARGETS = ("emulator", "local", "aws")  # infra/targets.yaml's targets, in the order the CLIs offer them
AWS_SIDES = ("account", "emulator")  # infra/targets.yaml `aws`: who serves a target's AWS APIs
KUBERNETES_SIDES = ("eks", "local")  # infra/targets.yaml `kubernetes`: EKS's API server, or processes here
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
    emulated: bool = False  # the AWS APIs are served by the emulator (moto), not by a real account
    local_kubernetes: bool = False  # the Kubernetes side runs as processes on this machine (harness.targets.local)

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
    aws = entry.get("aws", "account")
    if aws not in AWS_SIDES:
        raise InputError(f"{path}: target {target}: aws must be one of {', '.join(AWS_SIDES)} (got {aws!r})")
    kubernetes = entry.get("kubernetes", "eks")
    if kubernetes not in KUBERNETES_SIDES:
        raise InputError(
            f"{path}: target {target}: kubernetes must be one of {', '.join(KUBERNETES_SIDES)} (got {kubernetes!r})"
        )
    return TargetCapabilities(
        target,
        str(entry.get("description", "")),
        dict(entry.get("unsupported") or {}),
        emulated=aws == "emulator",
        local_kubernetes=kubernetes == "local",
    )


def emulated(target: str) -> bool:
    """Whether the emulator serves `target`'s AWS APIs (infra/targets.yaml `aws: emulator`)."""
    return capabilities(target).emulated


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
