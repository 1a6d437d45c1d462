"""Local Helm charts (harness.gate.local_charts): the constructs rendered, and everything else left out with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.gate.api import build_model
from harness.gate.hcl import Unknown
from harness.gate.local_charts import _Unsupported, render_line

PARAMS = {
    "Values": {
        "repo": "https://example.com/r.git",
        "nested": {"key": 'say "hi"'},
        "later": Unknown("var.x"),
        "list": [1],
    },
    "Release": {"Namespace": "argocd", "Name": "bootstrap"},
}


@pytest.mark.parametrize(
    ("line", "rendered"),
    [
        ("  repoURL: {{ .Values.repo }}", "  repoURL: https://example.com/r.git"),
        ("  namespace: {{ .Release.Namespace }}", "  namespace: argocd"),
        ('  v: {{ required "set it" .Values.repo | quote }}', '  v: "https://example.com/r.git"'),
        ("  v: {{ .Values.nested.key | quote }}", '  v: "say \\"hi\\""'),
        ("  v: {{ .Values.later }}", "  v: ${var.x}"),
        ("  v: {{ .Values.missing }}", "  v: "),
        ("  {{/* a comment */}}", "  "),
    ],
)
def test_rendered_constructs(line: str, rendered: str) -> None:
    assert render_line(line, PARAMS) == rendered


@pytest.mark.parametrize(
    "line",
    [
        '  {{ include "x.labels" . }}',
        "{{- if .Values.repo }}",
        "  v: {{ .Values.repo | upper }}",
        "  v: {{ toYaml .Values.nested }}",
        "  v: {{- .Values.repo }}",
        '  v: {{ required "set it" .Values.missing }}',
        "  v: {{ .Values.list }}",
    ],
)
def test_anything_else_is_unsupported(line: str) -> None:
    with pytest.raises(_Unsupported):
        render_line(line, PARAMS)


def test_a_template_with_an_unsupported_action_is_left_out_with_a_note(tmp_path: Path, reference: Path) -> None:
    chart = tmp_path / "infra" / "charts" / "root"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: root\nversion: 0.1.0\n", encoding="utf-8")
    (chart / "values.yaml").write_text("project: p\n", encoding="utf-8")
    (chart / "templates" / "project.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: {{ .Values.project }}\n",
        encoding="utf-8",
    )
    (chart / "templates" / "labels.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {{ include "labels" . }}\n', encoding="utf-8"
    )
    (tmp_path / "infra" / "main.tf").write_text(
        'resource "helm_release" "root" {\n  name      = "root"\n  chart     = "${path.module}/charts/root"\n'
        '  namespace = "argocd"\n  values    = [yamlencode({ project = "platform" })]\n}\n',
        encoding="utf-8",
    )

    model = build_model([tmp_path / "infra"], [], reference)

    assert [(m.kind, m.name, m.origin, m.line) for m in model.local_charts] == [
        ("AppProject", "platform", "helm_release.root", 1)
    ]
    (note,) = model.notes
    assert "labels.yaml:5: unsupported chart template action" in note and "helm_release.root" in note
