"""`--render-charts`: the pinned charts rendered with the values each helm_release passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from harness.gate.model import Location, Model, Severity
from harness.gate.rules import Issue, rule

_MIN_LENGTH = 3  # shorter values ("a", "on") appear everywhere by chance


@rule("EKS044", "charts render with their values into objects the pinned schemas accept")
def chart_objects(model: Model) -> Iterator[Issue]:
    """With `--render-charts` (and the pinned helm from the toolchain), each `helm_release` of a chart
    pinned in the reference data (`charts/<name>-<version>/`) is rendered with `helm template` and the values
    the release passes (values known only at apply time render as a placeholder). A chart that does not
    render (a value of the wrong type, a required value missing, a template error) fails `terraform apply`
    after the cluster is up; an object that does not validate (core kinds for the pinned Kubernetes, custom
    resources against the pinned CRDs and those the chart ships) is refused by the API server or silently
    pruned. Each rendering is cached by chart, values and versions, so a repeated check runs no helm.
    Without helm the gate notes that it fell back to checking value keys (EKS018)."""
    if not model.renderings:
        return
    from harness.gate.charts import validator_for

    validator = validator_for(model, sorted({r.chart_dir for r in model.renderings}))
    for rendering in model.renderings:
        release = rendering.release
        where = Location(release.file, release.line_of("values"))
        if rendering.error is not None:
            yield Issue(
                f"{release.address}: chart {rendering.chart} does not render: {rendering.error}",
                where,
                "fix the value the error names (`helm template` with the release's values reproduces it)",
            )
            continue
        for obj in rendering.objects:
            for problem in validator.problems(obj):
                name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
                message = problem.message if len(problem.message) < 250 else problem.message[:247] + "..."
                yield Issue(
                    f"{release.address}: chart {rendering.chart} renders {name} that does not validate: "
                    f"{'.'.join(map(str, problem.path))}: {message}",
                    where,
                    "change the values that produce this field (or pin a chart version that renders it validly)",
                )


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    else:
        yield path, value


def _default(defaults: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(defaults, dict) or step not in defaults:
            return None
        defaults = defaults[step]
    return defaults


def _rendered_strings(objects: list[dict[str, Any]]) -> str:
    return json.dumps(objects, default=str)


@rule("EKS045", "chart values take effect in the rendered objects", Severity.WARNING)
def values_take_effect(model: Model) -> Iterator[Issue]:
    """A value key the chart defines can still change nothing: the template reads it only under a condition
    the other values turn off (`serviceMonitor.additionalLabels` with `serviceMonitor.enabled: false`), or a
    newer chart version kept the key in values.yaml but no longer reads it. With `--render-charts`, each text
    value a `helm_release` sets (other than the chart's default, at least three characters, known before
    apply) must appear in the objects the chart renders; one that appears nowhere is reported. Values under a
    section whose `enabled` switch the release sets itself are left alone (they wait for the switch, as
    `server.ingress.*` waits for `server.ingress.enabled`). A warning: templates may transform a value (base64,
    a checksum), so check the rendering before removing it."""
    if not model.renderings:
        return
    for rendering in model.renderings:
        if rendering.error is not None or not rendering.objects:
            continue
        release = rendering.release
        values = model.helm.get(release.address)
        if values is None:
            continue
        defaults = (model.reference.chart_values.get(rendering.chart) or ("", {}))[1]
        output = _rendered_strings(rendering.objects)
        for path, value in _leaves(values.values, ()):
            if path not in values.sources or not isinstance(value, str) or len(value) < _MIN_LENGTH:
                continue
            if value == _default(defaults, path) or "{{" in value:
                continue
            if any((*path[:end], "enabled") in values.sources for end in range(len(path))):
                continue  # the release sets the switch of this section: the value waits for it
            if json.dumps(value)[1:-1] in output:
                continue
            yield Issue(
                f"{release.address}: value {'.'.join(path)} = {value!r} appears nowhere in what chart "
                f"{rendering.chart} renders",
                values.sources[path],
                "remove the value, or set what makes the chart read it (an `enabled` switch, another "
                "key of this chart version)",
            )
