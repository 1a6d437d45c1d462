"""scripts/fetch_reference.py against a raw-file server on 127.0.0.1: no internet needed."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from harness.errors import InputError
from harness.project import reference_dir, repo_root, versions
from harness.toolchain.components import BY_NAME

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch_reference.py"

# The shape of argo-helm's CRD templates: template actions on their own lines around plain YAML.
HELM_TEMPLATED_CRD = """\
{{- if .Values.crds.install }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    {{- if .Values.crds.keep }}
    "helm.sh/resource-policy": keep
    {{- end }}
    {{- with .Values.crds.annotations }}
      {{- toYaml . | nindent 4 }}
    {{- end }}
  name: things.argoproj.io
spec:
  group: argoproj.io
{{- end }}
"""


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


fetch_reference = load_script()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A raw-file server laid out as <owner>/<repo>/<ref>/<path>, holding every pinned file."""
    root = tmp_path / "upstream"
    for item in fetch_reference.PINNED:
        source = root / item.repo / item.ref / item.path
        source.parent.mkdir(parents=True, exist_ok=True)
        if item.strip_helm:
            source.write_text(HELM_TEMPLATED_CRD)
        elif item.dest.endswith(".json"):
            source.write_text('{"Version": "2012-10-17", "Statement": []}\n')
        else:
            source.write_text(f"# upstream {item.path}\nkey: value\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_fetches_every_pinned_file_and_strips_helm_lines(upstream: tuple[str, Path], tmp_path: Path) -> None:
    base_url, _ = upstream
    dest = tmp_path / "reference"

    assert fetch_reference.main(["--dest", str(dest), "--base-url", base_url]) == 0

    for item in fetch_reference.PINNED:
        text = (dest / item.dest).read_text()
        assert "{{" not in text, item.dest
        assert yaml.safe_load(text) is not None, item.dest
    crd = yaml.safe_load((dest / "crds/argoproj.io_application.yaml").read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not list(dest.glob(".fetch-reference-*")), "scratch folder left behind"


def test_missing_upstream_file_fails_in_one_line_and_leaves_dest_untouched(
    upstream: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, root = upstream
    last = fetch_reference.PINNED[-1]
    (root / last.repo / last.ref / last.path).unlink()
    dest = tmp_path / "reference"
    (dest / "crds").mkdir(parents=True)
    (dest / "crds/karpenter.sh_nodepools.yaml").write_text("previous copy\n")

    assert fetch_reference.main(["--dest", str(dest), "--base-url", base_url]) == 2

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.fullmatch(rf"error: {re.escape(last.url(base_url))}: HTTP 404 .*", err)
    assert (dest / "crds/karpenter.sh_nodepools.yaml").read_text() == "previous copy\n"
    assert sorted(p.name for p in dest.rglob("*")) == ["crds", "karpenter.sh_nodepools.yaml"]


def test_offline_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused, like a machine offline
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    code = fetch_reference.main(
        ["--dest", str(tmp_path / "ref"), "--base-url", f"http://127.0.0.1:{closed_port}", "--timeout", "5"]
    )

    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot connect" in err and "offline" in err


def test_template_left_after_stripping_is_an_error() -> None:
    item = fetch_reference.PINNED[3]
    assert item.strip_helm
    body = b"kind: CustomResourceDefinition\nmetadata:\n  name: {{ .Release.Name }}-x\n"

    with pytest.raises(fetch_reference.FetchError, match="Helm template left at line 3"):
        fetch_reference.render(item, body, "http://example/x")


def test_strip_keeps_yaml_lines_that_merely_mention_braces() -> None:
    text = '{{- if .Values.crds.install }}\ndescription: "use {{ .name }} in templates"\n{{- end }}\n'

    assert fetch_reference.strip_helm_template_lines(text) == 'description: "use {{ .name }} in templates"\n'


def reference_readme_rows() -> list[tuple[str, str, str, str]]:
    """(file, repository, ref, upstream path) for each row of the reference README's table."""
    try:
        readme = (reference_dir() / "README.md").read_text()
    except InputError as exc:
        pytest.skip(f"no reference data to compare against: {exc}")
    rows = []
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[\w./-]+\.(yaml|json)", cells[0]):
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def test_pins_match_the_reference_readme() -> None:
    rows = {row[0]: row for row in reference_readme_rows()}
    assert rows, "README table not found"
    for item in fetch_reference.PINNED:
        _, repo, ref, upstream_path = rows[item.dest]
        assert repo == item.repo, item.dest
        assert item.ref in ref, item.dest  # "tag v1.14.1", "main at 1d927085", "tag argo-cd-10.1.1 (Argo CD v3.4.4)"
        # The README names a folder for some rows and the file for others.
        assert item.path.startswith(upstream_path.split(" ")[0]), item.dest
    assert set(rows) - {item.dest for item in fetch_reference.PINNED} == {"compatibility.yaml"}


def test_pins_match_versions_yaml() -> None:
    pinned = versions(repo_root())
    dests = {item.dest for item in fetch_reference.PINNED}
    assert f"charts/karpenter-{pinned['karpenter']}.values.yaml" in dests
    assert f"charts/argo-cd-{pinned['argo_cd_chart']}.values.yaml" in dests
    # The LB controller's chart and policy come from its pinned Go module (harness.toolchain Component.ships).
    assert any(s.startswith("helm/") for s in BY_NAME["aws-load-balancer-controller"].ships)
