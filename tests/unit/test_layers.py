"""Imports flow one way: no import cycle between harness modules, and no import against the declared layers.

Every import statement counts, wherever it stands: at module level, inside a function (a lazy import still
ties the two modules together) and under `if TYPE_CHECKING:`. docs/architecture.md draws these layers;
change both together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

import harness

# Top to bottom. A module may import from its own entry and from entries of lower layers; entries that share a
# layer are independent of each other. A module belongs to the longest entry that names it or a package above it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.__main__",),  # `python -m harness`
    ("harness.cli", "harness.plugin"),  # entry points: the command table, the pytest plugin
    ("harness.bench", "harness.images.pin", "harness.toolchain.cli"),  # commands that measure or rewrite across rooms
    ("harness.e2e",),  # the staged end-to-end run: safety, stages, orchestration, evidence, report
    ("harness.targets",),  # standing a target up and tearing it down (emulator, local, aws)
    ("harness.aws", "harness.kube", "harness.gate"),  # the AWS side, the Kubernetes side, the offline gate
    ("harness.terraform", "harness.images"),  # the Terraform runner; image references and the registry client
    ("harness.toolchain",),  # pinned Go modules -> cached binaries (make toolchain)
    ("harness.run", "harness.waits", "harness.processes", "harness.git"),  # a run; polling; processes; git commands
    ("harness.project", "harness.results", "harness.keys"),  # source-of-truth files; the verdict; shared tag keys
    ("harness.errors", "harness.signals"),  # one-line user errors; SIGTERM (and an inherited ignored SIGINT) as Ctrl-C
    ("harness",),  # the package itself: its version
)


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every .py file of the package under root (root holds the package folder)."""
    found = {}
    for file in sorted((root / package).rglob("*.py")):
        parts = file.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = file
    return found


def imported_modules(file: Path, module: str, known: Mapping[str, Path]) -> set[str]:
    """The package's modules this file imports, by any import statement anywhere in it."""
    is_package = file.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                parent = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(parent[: len(parent) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    resolved = set()
    for name in names:  # `import a.b.c` of a non-module attribute resolves to the longest known module
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    known = modules_of(root, package)
    return {module: imported_modules(file, module, known) for module, file in known.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def entry_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer index, entry) of the longest declared entry naming the module or a package above it."""
    matches = [
        (len(entry), depth, entry)
        for depth, layer in enumerate(layers)
        for entry in layer
        if module == entry or (module.startswith(entry + ".") and entry.count(".") > 0)
    ]
    if not matches:
        return None
    _, depth, entry = max(matches)
    return depth, entry


def layer_violations(graph: Mapping[str, set[str]], layers: Sequence[Sequence[str]]) -> list[str]:
    problems = []
    for module in sorted(graph):
        if entry_of(module, layers) is None:
            problems.append(f"{module}: in no declared layer (add it to LAYERS and docs/architecture.md)")
    for module, targets in sorted(graph.items()):
        source = entry_of(module, layers)
        for target in sorted(targets):
            dest = entry_of(target, layers)
            if source is None or dest is None or source[1] == dest[1]:
                continue
            if dest[0] < source[0]:
                problems.append(f"{module} imports {target}: {dest[1]} is in a higher layer than {source[1]}")
            elif dest[0] == source[0]:
                problems.append(
                    f"{module} imports {target}: {source[1]} and {dest[1]} share a layer, so neither "
                    "may import the other"
                )
    return problems


HARNESS_ROOT = Path(harness.__file__).resolve().parent.parent


def test_harness_has_no_import_cycle() -> None:
    assert cycles(import_graph(HARNESS_ROOT, "harness")) == []


def test_harness_imports_follow_the_declared_layers() -> None:
    assert layer_violations(import_graph(HARNESS_ROOT, "harness"), LAYERS) == []


def test_every_layer_entry_names_a_module_or_a_reserved_place() -> None:
    known = modules_of(HARNESS_ROOT, "harness")
    assert [entry for layer in LAYERS for entry in layer if entry not in known] == []


# ---------------------------------------------------------------- the checks find what they are for


def write_package(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def synthetic(tmp_path: Path) -> Iterator[Path]:
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/base.py": "import os\n",
            "pkg/low/__init__.py": "",
            "pkg/low/a.py": "from pkg import base\n",
            "pkg/low/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high.c import C\n",
            "pkg/high/__init__.py": "",
            "pkg/high/c.py": "from pkg.low.a import thing\n\n\ndef later():\n    from . import d\n",
            "pkg/high/d.py": "from .. import base\n\n\ndef f():\n    from pkg.high import c\n",
        },
    )
    yield tmp_path


SYNTHETIC_LAYERS = (("pkg.high",), ("pkg.low",), ("pkg.base",))


def test_the_graph_sees_lazy_relative_and_type_checking_imports(synthetic: Path) -> None:
    graph = import_graph(synthetic, "pkg")
    assert graph["pkg.low.b"] == {"pkg.high.c"}  # under TYPE_CHECKING
    assert graph["pkg.high.c"] == {"pkg.low.a", "pkg.high.d"}  # module level + lazy relative
    assert graph["pkg.high.d"] == {"pkg.base", "pkg.high.c"}  # relative from the parent + lazy absolute


def test_a_cycle_is_reported(synthetic: Path) -> None:
    assert cycles(import_graph(synthetic, "pkg")) == [["pkg.high.c", "pkg.high.d"]]


def test_an_import_against_the_layers_is_reported(synthetic: Path) -> None:
    problems = layer_violations(import_graph(synthetic, "pkg"), SYNTHETIC_LAYERS)
    assert problems == [
        "pkg: in no declared layer (add it to LAYERS and docs/architecture.md)",
        "pkg.low.b imports pkg.high.c: pkg.high is in a higher layer than pkg.low",
    ]


def test_siblings_in_one_layer_may_not_import_each_other(synthetic: Path) -> None:
    problems = layer_violations(import_graph(synthetic, "pkg"), (("pkg",), ("pkg.high", "pkg.low"), ("pkg.base",)))
    shared = "pkg.high and pkg.low share a layer, so neither may import the other"
    assert f"pkg.high.c imports pkg.low.a: {shared}" in problems


def test_a_clean_package_passes(tmp_path: Path) -> None:
    write_package(tmp_path, {"pkg/__init__.py": "", "pkg/top.py": "from pkg.bottom import x\n", "pkg/bottom.py": ""})
    graph = import_graph(tmp_path, "pkg")
    assert cycles(graph) == []
    assert layer_violations(graph, (("pkg.top",), ("pkg.bottom",), ("pkg",))) == []


def test_a_module_over_600_lines_says_why_at_its_top() -> None:
    long = []
    for module, file in modules_of(HARNESS_ROOT, "harness").items():
        text = file.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 600 and "Over 600 lines on purpose" not in docstring:
            long.append(f"{module}: {text.count(chr(10))} lines")
    assert long == []
