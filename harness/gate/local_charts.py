"""Local Helm charts: the objects a `helm_release` of a chart directory in the checked tree installs.

Remote charts (a `repository`) are judged by their values only (EKS018, ...). A chart that lives in the
repository (for example `infra/addons/charts/bootstrap`, which installs Argo CD's root Application and the
platform's AppProject) is read here, its templates rendered with the values the release passes over the
chart's `values.yaml`, by the gate's one template evaluator (harness.gate.effective, the one that renders
ApplicationSet templates) plus the two Helm functions such charts use: `required "message" X` and
`X | quote`. Anything else (`include`, `toYaml`, `if`/`range`, other pipelines, `{{-` trimming) is not
guessed: the template is left out and a note says which action in which file.

A value known only at apply time (a Terraform variable without a default) renders as `${<expression>}`,
its Terraform text, so rules can still tell that two places take it from the same variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.gate.effective import _GO_EXPR, _go_expression
from harness.gate.hcl import Unknown, decoded
from harness.gate.loaders import yaml_documents
from harness.gate.model import HelmValues, Manifest, TerraformModel, TfResource, text
from harness.gate.text import read_text
from harness.gate.values import deep_merge

_REQUIRED = re.compile(r'^required\s+"(?:[^"\\]|\\.)*"\s+(?P<rest>.+)$')
_COMMENT = re.compile(r"^/\*.*\*/$", re.DOTALL)


@dataclass
class LocalCharts:
    objects: list[Manifest] = field(default_factory=list)  # origin: the release's address
    notes: list[str] = field(default_factory=list)  # templates left out, and why


class _Unsupported(Exception):
    pass


def chart_directory(release: TfResource) -> Path | None:
    """The chart's directory when the release installs a chart from the checked tree, else None."""
    chart = release.get("chart")
    if not isinstance(chart, str) or release.get("repository") or "://" in chart:
        return None
    directory = Path(chart)
    if not directory.is_absolute():
        directory = release.file.parent / directory
    return directory if (directory / "Chart.yaml").is_file() else None


def render_local_charts(terraform: TerraformModel, helm: Mapping[str, HelmValues]) -> LocalCharts:
    result = LocalCharts()
    for release in terraform.of_type("helm_release"):
        directory = chart_directory(release)
        if directory is None or release.address not in helm:
            continue
        result.objects.extend(_render_chart(release, directory, helm[release.address], result.notes))
    return result


def _render_chart(release: TfResource, directory: Path, passed: HelmValues, notes: list[str]) -> list[Manifest]:
    defaults = yaml_documents(directory / "values.yaml") if (directory / "values.yaml").is_file() else []
    values: dict[str, Any] = dict(defaults[0][0]) if defaults and isinstance(defaults[0][0], dict) else {}
    deep_merge(values, passed.values)
    documents = yaml_documents(directory / "Chart.yaml")
    chart = documents[0][0] if documents and isinstance(documents[0][0], dict) else {}
    params = {
        "Values": values,
        "Release": {
            "Name": decoded(release.get("name")) or release.name,
            "Namespace": decoded(release.get("namespace")) or "default",
            "Service": "Helm",
        },
        "Chart": {"Name": chart.get("name"), "Version": chart.get("version")},
    }
    objects: list[Manifest] = []
    templates = directory / "templates"
    for file in sorted(templates.glob("*.y*ml")) if templates.is_dir() else []:
        source = read_text(file)
        try:
            rendered = "\n".join(render_line(line, params) for line in source.split("\n"))
        except _Unsupported as unsupported:
            line = next((n for n, t in enumerate(source.split("\n"), 1) if str(unsupported) in t), 1)
            notes.append(
                f"{_shown(file)}:{line}: unsupported chart template action {{{{{unsupported}}}}} (the gate "
                f"renders a local chart's .Values, .Release, .Chart, `required` and `| quote` only): the "
                f"objects of {file.name} ({release.address}) were not checked"
            )
            continue
        for data, first, lines in yaml_documents(file, rendered):
            if isinstance(data, dict) and data:
                objects.append(Manifest(data, file, first, lines, origin=release.address))
    return objects


def _shown(file: Path) -> str:
    """The file relative to the working directory when it is below it (notes are read by people)."""
    try:
        return file.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(file)


def render_line(line: str, params: Mapping[str, Any]) -> str:
    """One template line with each action substituted; _Unsupported(action) for any other construct."""

    def substitute(match: re.Match[str]) -> str:
        action = match.group(1)
        if match.group(0).startswith("{{-") or match.group(0).endswith("-}}"):
            raise _Unsupported(action)  # whitespace trimming may join lines: not rendered line by line
        if _COMMENT.match(action):
            return ""
        expression, *pipeline = [part.strip() for part in action.split("|")]
        if any(function != "quote" for function in pipeline):
            raise _Unsupported(match.group(1))
        required = _REQUIRED.match(expression)
        if required:
            expression = required.group("rest").strip()
        if not expression.startswith(".") and not expression.startswith("index "):
            raise _Unsupported(match.group(1))
        value = decoded(_go_expression(expression, params))
        if isinstance(value, Unknown):
            rendered = "${" + value.text + "}"
        elif value is None:
            if required:  # Helm fails the install with the message; the gate cannot judge what would be there
                raise _Unsupported(match.group(1))
            rendered = ""
        else:
            scalar = text(value)
            if scalar is None:  # a map or list needs toYaml
                raise _Unsupported(match.group(1))
            rendered = scalar
        return '"' + rendered.replace("\\", "\\\\").replace('"', '\\"') + '"' if pipeline else rendered

    return _GO_EXPR.sub(substitute, line)
