"""A tiny Go module served by a file:// module proxy made in the test: the toolchain builder runs a real
`go build` of it (cache, lock, atomicity, stamps), without building the real toolchain."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from harness.toolchain.components import Binary, Component

GO = shutil.which("go")
needs_go = pytest.mark.skipif(GO is None, reason="go is not on PATH: these tests run a real `go build`")

HELLO_MODULE = "example.test/hello"
HELLO_MAIN = """package main

import (
\t"fmt"
\t"os"
)

var version = "dev"

func main() {
\tif len(os.Args) > 1 && os.Args[1] == "--version" {
\t\tfmt.Println("hello version " + version)
\t}
}
"""
HELLO = Component(
    name="hello",
    module=HELLO_MODULE,
    version_key="hello",
    purpose="a test program",
    binaries=(Binary("hello", HELLO_MODULE, ("--version",), r"hello version (\S+)"),),
    cold_minutes=1,
    stamps=lambda facts: {"main.version": facts.version},
)


def serve_module(proxy: Path, module: str, version: str, files: dict[str, str]) -> None:
    """Lay out `module@version` the way GOPROXY=file://... expects it."""
    folder = proxy / module / "@v"
    folder.mkdir(parents=True)
    (folder / "list").write_text(f"{version}\n")
    (folder / f"{version}.info").write_text(f'{{"Version":"{version}","Time":"2026-01-02T03:04:05Z"}}')
    (folder / f"{version}.mod").write_text(files["go.mod"])
    with zipfile.ZipFile(folder / f"{version}.zip", "w") as archive:
        for name, text in files.items():
            archive.writestr(f"{module}@{version}/{name}", text)
