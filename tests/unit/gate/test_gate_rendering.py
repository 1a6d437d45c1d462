"""`--render-charts` (EKS044, EKS045) with a stand-in helm: what the gate does with what helm prints, the cache,
and the fallback without helm. The pinned helm on the real charts: tests/integration/test_toolchain_tier.py."""

from __future__ import annotations

import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gate import charts
from harness.gate.api import Report

VALID = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  everything: "{values}"
"""
INVALID = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller
spec:
  replica: 2
  selector: {matchLabels: {app: c}}
  template:
    metadata: {labels: {app: c}}
    spec:
      containers: [{name: c, image: example/c:1.0.0}]
"""


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], Path]:
    """A helm stand-in that prints `output` ({values} becomes the values file's text) and exits with `code`;
    each call is logged to calls.log. The rendering cache goes to tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def make(output: str, code: int = 0) -> Path:
        (tmp_path / "output.yaml").write_text(output, encoding="utf-8")
        script = tmp_path / "helm"
        script.write_text(
            textwrap.dedent(f"""\
            #!/bin/sh
            echo "$@" >> {tmp_path}/calls.log
            values=$(eval echo \\${{$#}})
            if [ {code} -ne 0 ]; then
              echo "Error: values don't meet the specifications of the schema" >&2; exit {code}
            fi
            sed "s|{{values}}|$(tr '\\n"' '  ' < "$values")|" {tmp_path}/output.yaml
            """),
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setattr(charts, "helm_binary", lambda: (script, None))
        return tmp_path / "calls.log"

    return make


def run(platform: Callable[..., Report], *rules: str) -> Report:
    return platform(select=rules, render_charts=True)


def test_objects_the_chart_renders_are_validated(
    fake_helm: Callable[..., Path], platform: Callable[..., Report]
) -> None:
    fake_helm(INVALID)

    report = run(platform, "EKS044")

    assert report.findings and all("Deployment/controller that does not validate" in f.message for f in report.findings)
    assert {f.file for f in report.findings} == {"infra/addons/main.tf"}


def test_a_chart_that_does_not_render_is_an_error(
    fake_helm: Callable[..., Path], platform: Callable[..., Report]
) -> None:
    fake_helm("", 1)

    report = run(platform, "EKS044")

    assert report.findings and all("does not render: Error: values don't meet" in f.message for f in report.findings)


def test_values_that_appear_nowhere_in_the_rendering_are_reported(
    fake_helm: Callable[..., Path], platform: Callable[..., Report]
) -> None:
    fake_helm(VALID.replace("{values}", "nothing"))  # renders none of the values

    report = run(platform, "EKS045")

    assert any("settings.clusterName = 'demo' appears nowhere" in f.message for f in report.findings)
    assert all(f.severity.value == "warning" for f in report.findings)


def test_values_that_reach_the_rendering_pass(fake_helm: Callable[..., Path], platform: Callable[..., Report]) -> None:
    fake_helm(VALID)  # the values file, whole, inside one object

    assert run(platform, "EKS044", "EKS045").findings == []


def test_each_rendering_is_cached_by_chart_and_values(
    fake_helm: Callable[..., Path], platform: Callable[..., Report]
) -> None:
    calls = fake_helm(VALID)

    run(platform, "EKS044")
    first = calls.read_text(encoding="utf-8").count("\n")
    run(platform, "EKS044")

    assert first >= 3  # one per release of a pinned chart
    assert calls.read_text(encoding="utf-8").count("\n") == first


def test_without_helm_the_gate_falls_back_to_value_keys_with_a_note(
    monkeypatch: pytest.MonkeyPatch, platform: Callable[..., Report]
) -> None:
    monkeypatch.setattr(charts, "helm_binary", lambda: (None, "helm is not built: run `make toolchain`"))

    report = run(platform, "EKS018", "EKS044", "EKS045")

    assert report.findings == []
    assert any("--render-charts: no helm (helm is not built" in n and "EKS018" in n for n in report.notes)


def test_values_known_only_at_apply_time_render_as_a_placeholder() -> None:
    from harness.gate.hcl import Encoded, Unknown

    assert charts.plain({"a": Unknown("x"), "b": Encoded({"c": [Unknown("y")]}, "yaml")}) == {
        "a": charts.UNKNOWN,
        "b": {"c": [charts.UNKNOWN]},
    }
