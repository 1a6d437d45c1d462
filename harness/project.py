"""Where the project's files are, and the single-source-of-truth files read from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


# versions.yaml: each EKS managed add-on's pin is eks_addon_<its name, dashes as underscores>.
ADDON_PIN_PREFIX = "eks_addon_"


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


@dataclass(frozen=True)
class UpstreamFiles:
    """An infra/addons resource whose content Terraform downloads from an upstream release tag (`source`, a
    data "http"): on local the same file of the same tag is read from the pinned Go module the toolchain extracted
    (`component`'s `ships`), whose zip is that tag's tree."""

    resource: str  # e.g. kubernetes_manifest.argocd_crd (every instance)
    source: str  # e.g. data.http.argocd_crd: the instance of the same key holds the URL
    url_prefix: str  # the tag's root; {version} stands for the component's pinned version
    component: str
    folder_variable: str  # the infra/addons variable that takes these files' folder where Terraform applies it


@dataclass(frozen=True)
class LocalTarget:
    """infra/targets.yaml `local_target`: the emulator gaps (name: reason) patched into the moto server, the images it
    serves, and the upstream files read from the toolchain's modules instead of downloaded."""

    emulator_gaps: dict[str, str]
    emulator_images: list[dict[str, Any]]
    upstream_files: list[UpstreamFiles] = field(default_factory=list)
    pod_images: dict[str, dict[str, Any]] = field(default_factory=dict)  # repository -> {entrypoint, files}
    pod_environment: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {value, reason}
    addons_without_terraform: str = ""  # what replaces `terraform apply infra/addons` without its providers


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list")
    return value


def local_target(root: Path | None = None) -> LocalTarget:
    """The `local_target` section of infra/targets.yaml, checked: every gap has a reason, every image an id and a name,
    every upstream file its resource, source, URL prefix and component."""
    path = (root or repo_root()) / "infra" / "targets.yaml"
    section = _mapping((read_yaml(path) or {}).get("local_target"), f"{path}: local_target")
    gaps = _mapping(section.get("emulator_gaps") or {}, f"{path}: local_target.emulator_gaps")
    for name, reason in gaps.items():
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{path}: local_target.emulator_gaps.{name} needs its reason")
    images = _list(section.get("emulator_images") or [], f"{path}: local_target.emulator_images")
    for index, image in enumerate(images):
        if not isinstance(image, dict) or not {"ami_id", "name"} <= set(image):
            raise InputError(f"{path}: local_target.emulator_images[{index}] needs ami_id and name")
    upstream = []
    for index, entry in enumerate(_list(section.get("upstream_files") or [], f"{path}: local_target.upstream_files")):
        fields = ("resource", "source", "url_prefix", "component", "folder_variable")
        if not all(
            str(_mapping(entry, f"{path}: local_target.upstream_files[{index}]").get(f, "")).strip() for f in fields
        ):
            raise InputError(f"{path}: local_target.upstream_files[{index}] needs {', '.join(fields)}")
        upstream.append(UpstreamFiles(*(str(entry[f]) for f in fields)))
    pod_images = _mapping(section.get("pod_images") or {}, f"{path}: local_target.pod_images")
    for repository, image in pod_images.items():
        where = f"{path}: local_target.pod_images.{repository}"
        if not isinstance(_mapping(image, where).get("entrypoint"), list) or not _mapping(image.get("files"), where):
            raise InputError(f"{where} needs entrypoint (a list) and files (image path: source)")
    environment = _mapping(section.get("pod_environment") or {}, f"{path}: local_target.pod_environment")
    for name, entry in environment.items():
        if not {"value", "reason"} <= set(_mapping(entry, f"{path}: local_target.pod_environment.{name}")):
            raise InputError(f"{path}: local_target.pod_environment.{name} needs value and reason")
    without_terraform = section.get("addons_without_terraform")
    if not isinstance(without_terraform, str) or not without_terraform.strip():
        raise InputError(f"{path}: local_target.addons_without_terraform needs its reason")
    return LocalTarget(
        {str(k): str(v) for k, v in gaps.items()},
        images,
        upstream,
        pod_images,
        {str(k): {"value": str(v["value"]), "reason": str(v["reason"])} for k, v in environment.items()},
        without_terraform.strip(),
    )


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
