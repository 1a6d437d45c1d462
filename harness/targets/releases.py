"""infra/addons' Helm releases, installed with the helm CLI where its Terraform providers cannot be installed.

The releases are read from infra/addons itself (the gate's HCL model), so chart, version, namespace and values
have one source; what the add-ons root reads from the platform's outputs is filled in from the real outputs.
On `local` the charts come from the pinned chart folders in the reference data (infra/targets.yaml).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import EnvironmentProblem, InputError
from harness.gate.charts import chart_folder as pinned_chart
from harness.gate.hcl import Unknown
from harness.gate.model import Model
from harness.project import UpstreamFiles

# A read of the platform's outputs, as infra/addons writes it or as the gate leaves it unresolved.
PLATFORM_READ = re.compile(r"(?:local\.platform|remote_state\.outputs)(?P<path>(?:\.[A-Za-z_]\w*|\[\"[^\"]+\"\])+)")
PATH_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[\"([^\"]+)\"\]")
HELM_TIMEOUT_S = 300
HELM_GRACE_S = 30  # helm ends its own wait at the timeout; this bounds a helm that does not


def platform_value(
    value: Any, outputs: Mapping[str, Any], where: str, variables: Mapping[str, Any] | None = None
) -> Any:
    """`value` with every unresolved read of the platform's outputs replaced by the real output, and of a
    variable without a default (`var.NAME`) by `variables[NAME]`."""
    if isinstance(value, Unknown):
        text = value.text.strip()
        if text.startswith("var.") and variables is not None and text[4:] in variables:
            return variables[text[4:]]
        match = PLATFORM_READ.fullmatch(text)
        if match is None:
            raise InputError(f"{where}: {value.text} is neither a literal, a given variable nor a platform output")
        found: Any = outputs
        for name, key in PATH_STEP.findall(match["path"]):
            try:
                found = found[name or key]
            except (KeyError, TypeError):
                raise InputError(f"{where}: the platform has no output {value.text}") from None
        return found
    if isinstance(value, dict):
        return {k: platform_value(v, outputs, where, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [platform_value(v, outputs, where, variables) for v in value]
    return value


@dataclass(frozen=True)
class Release:
    address: str
    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]
    skip_crds: bool
    wait: bool = True  # the helm provider's defaults: wait for the release's workloads, at most 300 s
    timeout_s: int = HELM_TIMEOUT_S


def release(
    model: Model, address: str, outputs: Mapping[str, Any], variables: Mapping[str, Any] | None = None
) -> Release:
    """The helm_release `address` of infra/addons, its values made concrete with the platform's outputs."""
    resource = next((r for r in model.terraform.of_type("helm_release") if r.address == address), None)
    if resource is None:
        raise InputError(f"infra/addons: no {address}")
    where = f"{resource.file}:{resource.line_of('values')}"
    attrs = {
        k: platform_value(resource.attrs.get(k), outputs, where, variables)
        for k in ("name", "chart", "version", "namespace")
    }
    return Release(
        address=address,
        name=str(attrs["name"]),
        chart=str(attrs["chart"]),
        version=str(attrs["version"]),
        namespace=str(attrs["namespace"]),
        values=platform_value(model.helm[address].values, outputs, where, variables),
        skip_crds=resource.attrs.get("skip_crds") is True,
        wait=resource.attrs.get("wait") is not False,
        timeout_s=int(resource.attrs.get("timeout") or HELM_TIMEOUT_S),
    )


def install(
    helm: Path,
    kubeconfig: Path,
    chart_dir: Path,
    release: Release,
    work: Path,
    watch: Callable[[], str | None] = lambda: None,
) -> None:
    """`helm upgrade --install` of `release` from `chart_dir`, waiting as its helm_release does; a failure is one
    line with helm's last words, and whatever `watch` names while helm waits (a crashed pod, a refused identity)
    ends the wait at once in those words."""
    values = work / f"{release.name}.values.yaml"
    values.write_text(yaml.safe_dump(release.values), encoding="utf-8")
    command = [
        str(helm),
        "--kubeconfig",
        str(kubeconfig),
        "upgrade",
        "--install",
        release.name,
        str(chart_dir),
        "--namespace",
        release.namespace,
        "--create-namespace",
        "--values",
        str(values),
        *(["--skip-crds"] if release.skip_crds else []),
        *(["--wait"] if release.wait else []),
        f"--timeout={release.timeout_s}s",
    ]
    log = work / f"{release.name}.helm.log"
    with log.open("wb") as output:
        helm_process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + release.timeout_s + HELM_GRACE_S
    while helm_process.poll() is None:
        reason = watch()
        if reason is None and time.monotonic() < deadline:
            time.sleep(1.0)
            continue
        helm_process.kill()
        helm_process.wait()
        raise EnvironmentProblem(
            f"helm install {release.name} ({chart_dir.name}): {reason or f'no answer in {release.timeout_s} s'}"
        )
    if helm_process.returncode != 0:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise EnvironmentProblem(f"helm install {release.name} ({chart_dir.name}) failed: {last.strip()}")


def chart_folder(reference: Path, chart: str, version: str, shipped: Mapping[str, Path]) -> Path:
    """The pinned chart folder the local target installs `chart` from: its controller module's, else the reference
    data's charts/."""
    folder = pinned_chart(reference, chart, version, shipped)
    if folder is None:
        raise EnvironmentProblem(
            f"no pinned chart folder for {chart} {version}: neither a built toolchain module ships it nor "
            f"{reference / 'charts'} has it"
        )
    return folder


def upstream_file(
    model: Model, declared: UpstreamFiles, address: str, version: str, shipped: Mapping[str, Path]
) -> Path:
    """The file of the pinned module that stands in for what `address` (an instance of `declared.resource`)
    downloads: the URL of the `declared.source` instance of the same key, less the tag's root."""
    key = address[len(declared.resource) :]
    source = next((r for r in model.terraform.resources if r.address == declared.source + key), None)
    url = source.get("url") if source is not None else None
    prefix = declared.url_prefix.format(version=version)
    if not isinstance(url, str) or not url.startswith(prefix):
        raise InputError(
            f"infra/targets.yaml local_target.upstream_files: {declared.source}{key} has no URL under "
            f"{prefix} (found {url!r})"
        )
    if declared.component not in shipped:
        raise EnvironmentProblem(
            f"{address}: the toolchain's {declared.component} {version} is not built; run `make toolchain`"
        )
    path = shipped[declared.component] / url[len(prefix) :]
    if not path.is_file():
        raise InputError(
            f"{address}: {url[len(prefix) :]} is not among what the pinned {declared.component} module "
            f"ships (harness.toolchain Component.ships)"
        )
    return path


def secret(model: Model, address: str, outputs: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """The kubernetes_secret_v1 `address` of infra/addons as a Secret manifest (its data as stringData)."""
    resource = next((r for r in model.terraform.of_type("kubernetes_secret_v1") if r.address == address), None)
    if resource is None:
        raise InputError(f"infra/addons: no {address}")
    where = f"{resource.file}:{resource.line}"
    (metadata,) = platform_value(resource.attrs.get("metadata"), outputs, where, variables)
    data = platform_value(resource.attrs.get("data"), outputs, where, variables)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "labels", "annotations") if k in metadata},
        "stringData": {k: v if isinstance(v, str) else json.dumps(getattr(v, "value", v)) for k, v in data.items()},
    }
