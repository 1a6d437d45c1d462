"""`harness check --render-charts`: the pinned charts rendered by the pinned helm with the values a helm_release
passes, each rendering cached by chart, values and versions (a repeated check does not run helm again).

The pinned chart folders are the controller module's (`helm/<name>/`, copied by the toolchain) or else
`<reference>/charts/<name>-<version>/`; helm comes from the toolchain
(`harness.toolchain.build.locate("helm")`). Without helm the gate falls back to checking value keys (EKS018) and
says so in a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.gate.hcl import Encoded, Unknown
from harness.gate.loaders import crd_schemas
from harness.gate.model import Model, TfResource, chart_name, text
from harness.gate.schema import DEFAULT_KUBERNETES, SchemaValidator

UNKNOWN = "unknown-before-apply"  # what a value known only at apply time renders as
TIMEOUT_S = 120


@dataclass
class Rendering:
    """One release's chart rendered: its objects, or why helm failed."""

    release: TfResource
    chart: str
    chart_dir: Path
    objects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def helm_binary() -> tuple[Path | None, str | None]:
    """(the pinned helm, None), or (None, why it is not there)."""
    from harness.toolchain.build import locate, missing

    reason = missing(["helm"])
    return (None, reason) if reason else (locate("helm"), None)


def plain(value: Any) -> Any:
    """Values as helm reads them: encoded documents unwrapped, values known only at apply time as a placeholder."""
    if isinstance(value, Encoded):
        return plain(value.value)
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _state(directory: Path) -> str:
    """What a chart folder holds, cheaply: every file's path, size and modification time."""
    entries = sorted(
        (str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256(repr(entries).encode()).hexdigest()


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness" / "gate-charts"


def render(
    helm: Path, chart_dir: Path, release: str, namespace: str, values: Mapping[str, Any], kubernetes_version: str
) -> tuple[list[dict[str, Any]], str | None]:
    """`helm template` of a chart folder with these values: (objects, None) or ([], the error's first lines).

    A v1 List is flattened into its items, as kubectl, helm and Argo CD apply it. Cached by chart folder state,
    values, release, namespace, Kubernetes version and helm binary."""
    payload = json.dumps(plain(values), sort_keys=True, default=str)
    key = hashlib.sha256(
        "\0".join(
            [str(helm), str(chart_dir.resolve()), _state(chart_dir), release, namespace, kubernetes_version, payload]
        ).encode()
    ).hexdigest()[:24]
    cache = _cache_dir() / f"{key}.json"
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        return list(cached["objects"]), cached["error"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with tempfile.TemporaryDirectory(prefix="gate-chart-") as work:
        values_file = Path(work) / "values.yaml"
        values_file.write_text(yaml.safe_dump(json.loads(payload)), encoding="utf-8")
        try:
            done = subprocess.run(
                [
                    str(helm),
                    "template",
                    release,
                    str(chart_dir),
                    "--namespace",
                    namespace,
                    "--kube-version",
                    kubernetes_version,
                    "--values",
                    str(values_file),
                ],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [], f"helm did not run ({exc.__class__.__name__}: {exc})"
    objects: list[dict[str, Any]] = []
    error: str | None = None
    if done.returncode != 0:
        error = " ".join((done.stderr or done.stdout).strip().splitlines()[:3])[:400] or f"exit {done.returncode}"
    else:
        try:
            documents = [d for d in yaml.safe_load_all(done.stdout) if isinstance(d, dict)]
        except yaml.YAMLError as exc:
            documents, error = [], f"helm printed invalid YAML ({exc.__class__.__name__})"
        objects = [
            i
            for d in documents
            for i in (d.get("items") or [] if d.get("kind") == "List" else [d])
            if isinstance(i, dict)
        ]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"objects": objects, "error": error}, default=str), encoding="utf-8")
    except OSError:
        pass  # a cache that cannot be written only costs time
    return objects, error


def chart_folder(reference: Path, chart: str, version: str, shipped: Mapping[str, Path]) -> Path | None:
    """The pinned chart `chart` `version`: the one its controller's Go module ships (harness.toolchain's data), else
    the reference data's folder; None when neither has it."""
    for data in shipped.values():
        folder = data / "helm" / chart
        if (folder / "Chart.yaml").is_file() and _chart_version(folder) == version:
            return folder
    folder = reference / "charts" / f"{chart}-{version}"
    return folder if (folder / "Chart.yaml").is_file() else None


def _chart_version(folder: Path) -> str:
    try:
        meta = yaml.safe_load((folder / "Chart.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    return str(meta.get("version", "")) if isinstance(meta, dict) else ""


def render_releases(model: Model, reference: Path, helm: Path) -> list[Rendering]:
    """Every helm_release whose chart is pinned in the reference data, rendered with its values."""
    renderings: list[Rendering] = []
    kubernetes = model.versions.get("kubernetes", DEFAULT_KUBERNETES)
    for release, values in model.helm_releases():
        chart = chart_name(release)
        pinned = model.reference.chart_values.get(chart)
        version = text(release.get("version")) or (pinned[0] if pinned else None)
        folder = chart_folder(reference, chart, version, model.shipped) if version else None
        if folder is None:
            continue
        name = text(release.get("name")) or release.name
        namespace = text(release.get("namespace")) or "default"
        objects, error = render(helm, folder, name, namespace, values.values, kubernetes)
        renderings.append(Rendering(release, chart, folder, objects, error))
    return renderings


def validator_for(model: Model, folders: Sequence[Path]) -> SchemaValidator:
    """Core kinds for the pinned Kubernetes; custom resources against the pinned CRDs and those the charts ship."""
    schemas = dict(model.reference.crd_schemas)
    for folder in folders:
        schemas.update(crd_schemas(sorted((folder / "crds").glob("*.yaml"))))
    return SchemaValidator(model.versions.get("kubernetes", DEFAULT_KUBERNETES), schemas)
