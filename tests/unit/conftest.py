"""Fixtures of the unit tier that several test files share."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from go_proxy import GO, HELLO_MAIN, HELLO_MODULE, serve_module

from harness.project import versions
from harness.terraform.providers import provider_pins


@pytest.fixture
def hello_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with versions.yaml and toolchain/hello, and Go pointed at a file:// proxy serving the module."""
    if GO is None:
        pytest.skip("go is not on PATH: these tests run a real `go build`")
    proxy = tmp_path / "proxy"
    files = {"go.mod": f"module {HELLO_MODULE}\n\ngo 1.22\n", "main.go": HELLO_MAIN}
    serve_module(proxy, HELLO_MODULE, "v1.0.0", files)
    repo = tmp_path / "repo"
    (repo / "infra").mkdir(parents=True)
    providers = "".join(f'{name}_provider: "{version}"\n' for name, version in provider_pins(versions()).items())
    (repo / "versions.yaml").write_text('hello: "1.0.0"\n' + providers)
    wrapper = repo / "toolchain" / "hello"
    wrapper.mkdir(parents=True)
    (wrapper / "go.mod").write_text(
        f"module wrapper/hello\n\ngo 1.22\n\ntool {HELLO_MODULE}\n\nrequire {HELLO_MODULE} v1.0.0\n"
    )
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")  # so tmp_path's cleanup can delete the module cache
    # The machine's own Go builds the tiny module: a GOTOOLCHAIN exported for the real toolchain (.ci/run does) would
    # make go fetch that release from this file:// proxy, which does not hold it.
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    subprocess.run([GO, "mod", "tidy"], cwd=wrapper, check=True, capture_output=True)
    return repo
