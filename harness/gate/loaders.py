"""Loaders: files -> model facts. They read and never judge; unreadable input is one InputError line."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError
from harness.gate.model import Manifest, Reference, Suppression, TerraformModel, as_dict
from harness.gate.plan import read_plan
from harness.gate.terraform import Project, collect
from harness.gate.text import read_text

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUPPRESSION = re.compile(r"(?:#|//)\s*harness:ignore\s+(?P<rules>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(?P<reason>.*)$")
# Files under a GitOps root that are not Kubernetes objects.
_NOT_MANIFESTS = re.compile(r"^(Chart|values([.-].*)?|\.?pre-commit-config|\.yamllint)\.ya?ml$")


def load_terraform(
    paths: Sequence[Path], plans: Sequence[Path] = (), variables: Mapping[str, Any] | None = None
) -> TerraformModel:
    """Every *.tf under the given directories, evaluated: roots, module instances, remote state outputs. A plan
    (`terraform show -json`) for a root gives every value of that root (harness.gate.plan); `variables` are the
    roots' input values, as `-var` gives them."""
    try:
        project = Project([Path(p) for p in paths], variables)
        project.attach([read_plan(Path(p)) for p in plans])
        return collect(project)
    except RecursionError:
        raise InputError(f"{', '.join(map(str, paths))}: Terraform configuration nested too deeply") from None


def yaml_documents(path: Path, text: str | None = None) -> list[tuple[Any, int, dict[tuple[Any, ...], int]]]:
    """(document, first line, line per field path) for each document of a YAML file."""
    text = read_text(path) if text is None else text
    # Only an alias (`*name`) makes a document bigger than its text: without one it has at most about one node per
    # character, so short texts cannot exceed the limit and skip the node walk (it costs as much as parsing).
    may_expand = "*" in text or len(text) * 2 > MAX_EXPANDED_NODES
    loader = _LOADER(text)
    documents: list[tuple[Any, int, dict[tuple[Any, ...], int]]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            if may_expand and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise InputError(
                    f"{path}:{node.start_mark.line + 1}: YAML aliases expand to more than "
                    f"{MAX_EXPANDED_NODES} nodes (an alias bomb?)"
                )
            data = loader.construct_document(node)
            lines: dict[tuple[Any, ...], int] = {}
            _index_lines(node, (), lines)
            documents.append((data, node.start_mark.line + 1, lines))
    except _DuplicateKey as dup:
        # PyYAML keeps the last value; kubectl, Argo CD and Helm (sigs.k8s.io/yaml) refuse the file instead.
        raise InputError(f"{path}:{dup.line}: invalid YAML (key {dup.key!r} appears twice in one mapping)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            where = f":{mark.line + 1}"
        else:  # a reader error (control character) knows only its character position
            position = getattr(exc, "position", 0)
            where = f":{text[:position].count(chr(10)) + 1}"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}{where}: invalid YAML ({problem})") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable YAML ({exc.__class__.__name__})") from None
    finally:
        loader.dispose()
    return documents


MAX_EXPANDED_NODES = 200_000


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes a document has once every alias is expanded (shared nodes are counted once per use)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once instead of recursing forever
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = min(size, MAX_EXPANDED_NODES + 1)
    return sizes[id(node)]


def _index_lines(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    depth: int = 0,
    seen: set[int] | None = None,
) -> None:
    seen = set() if seen is None else seen
    if depth > 200 or id(node) in seen:  # an alias: its lines are those of the anchored node
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            if key_node.value in keys:
                raise _DuplicateKey(key_node.value, key_node.start_mark.line + 1)
            keys.add(key_node.value)
            child = (*path, key_node.value)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _index_lines(value_node, child, lines, depth + 1, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _index_lines(item, child, lines, depth + 1, seen)


def yaml_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise InputError(f"{root}: no such directory")
    in_chart: dict[Path, bool] = {}  # per folder: most folders hold several manifests
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if path.suffix not in (".yaml", ".yml") or any(p.startswith(".") for p in relative):
            continue
        if _NOT_MANIFESTS.match(path.name) or _in_helm_chart(path.parent, root, in_chart):
            continue
        if path.is_file():
            yield path


def _in_helm_chart(folder: Path, root: Path, known: dict[Path, bool]) -> bool:
    """Helm chart sources (templates with {{ }}) are not manifests until rendered."""
    unknown: list[Path] = []  # this folder and those above it, up to the first answered one
    parent = folder
    while parent not in known:
        if (parent / "Chart.yaml").is_file():
            known[parent] = True
            break
        unknown.append(parent)
        if parent in (root, parent.parent):
            known[parent] = False
            break
        parent = parent.parent
    for below in unknown:
        known[below] = known[parent]
    return known[folder]


def load_manifests(paths: Sequence[Path]) -> list[Manifest]:
    """Every mapping document of every YAML file under the given GitOps roots, with file:line per field."""
    manifests: list[Manifest] = []
    for root in paths:
        for file in yaml_files(Path(root)):
            for data, line, lines in yaml_documents(file):
                if isinstance(data, dict):
                    manifests.append(Manifest(data, file, line, lines))
    return manifests


def suppressions(files: Sequence[Path]) -> list[Suppression]:
    """`harness:ignore RULE reason` comments: they cover their own line and the next line of content."""
    found: list[Suppression] = []
    for file in files:
        text = read_text(file)
        if "harness:ignore" not in text:  # most files have none; splitting and matching every line costs more
            continue
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            match = _SUPPRESSION.search(line)
            if match is None:
                continue
            covered = {number}
            if line.lstrip().startswith(("#", "//")):
                following = number + 1
                while following <= len(lines) and (
                    not lines[following - 1].strip() or lines[following - 1].lstrip().startswith(("#", "//"))
                ):
                    following += 1
                covered.add(following)
            reason = match.group("reason").strip(" -:—\t")
            for rule_id in re.split(r"\s*,\s*", match.group("rules")):
                found.append(Suppression(rule_id, reason, file, number, frozenset(covered)))
    return found


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation templates: short-form intrinsics (!Sub, !GetAtt) become their plain argument."""


def _intrinsic(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def _policy_actions(document: Any) -> set[str]:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    actions: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if isinstance(statement, dict) and statement.get("Effect", "Allow") == "Allow":
            action = statement.get("Action", [])
            actions.update([action] if isinstance(action, str) else action)
    return actions


def _plain_documents(path: Path) -> list[Any]:
    """Documents of a large reference file: no line index (nothing points into these files)."""
    try:
        return list(yaml.load_all(read_text(path), Loader=_LOADER))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{path}{f':{mark.line + 1}' if mark else ''}: invalid YAML") from None


def load_reference(directory: Path, shipped: Mapping[str, Path] | None = None) -> Reference:
    """CRD schemas, chart default values, upstream IAM actions and compatibility facts.

    `shipped` (component -> folder) adds what a pinned Go module ships beside its binary (a chart, an IAM policy,
    CRDs; harness.toolchain.build.shipped_data): for those the module's copy replaces the reference data's, since it
    is the same version as the binary that runs. Parsed once per process and state (file names, sizes, times).
    """
    directory = directory.resolve()
    if not directory.is_dir():
        raise InputError(f"{directory}: reference data directory not found")
    folders = (directory, *sorted((shipped or {}).values()))
    state = tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    )
    return _load_reference(directory, tuple(sorted((shipped or {}).items())), state)


def _cache_file(state: tuple[tuple[str, int, int], ...]) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(repr(state).encode()).hexdigest()[:20]
    return base / "harness" / f"gate-reference-{digest}.json"


@functools.lru_cache(maxsize=4)
def _load_reference(
    directory: Path, shipped: tuple[tuple[str, Path], ...], state: tuple[tuple[str, int, int], ...]
) -> Reference:
    """Parsing the CRDs takes most of a check's time, so the parsed form is cached as JSON per reference state."""
    cache = _cache_file(state)
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        return Reference(
            {(g, v, k): schema for g, v, k, schema in data["schemas"]},
            {(g, k): versions for g, k, versions in data["kinds"]},
            {name: (version, values) for name, version, values in data["charts"]},
            {name: set(actions) for name, actions in data["iam"].items()},
            data["compatibility"],
            iam_statements=data["iam_statements"],
            chart_app_versions=data["chart_app_versions"],
            chart_kube_versions=data["chart_kube_versions"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    reference = _parse_reference(directory, dict(shipped))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(
            json.dumps(
                {
                    "schemas": [[*key, schema] for key, schema in reference.crd_schemas.items()],
                    "kinds": [[*key, versions] for key, versions in reference.crd_kinds.items()],
                    "charts": [[name, version, values] for name, (version, values) in reference.chart_values.items()],
                    "iam": {name: sorted(actions) for name, actions in reference.iam_actions.items()},
                    "compatibility": reference.compatibility,
                    "iam_statements": reference.iam_statements,
                    "chart_app_versions": reference.chart_app_versions,
                    "chart_kube_versions": reference.chart_kube_versions,
                },
                default=str,
            ),
            encoding="utf-8",
        )
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written only costs time
    return reference


def crd_schemas(
    files: Iterable[Path],
    schemas: dict[tuple[str, str, str], dict[str, Any]] | None = None,
    kinds: dict[tuple[str, str], list[str]] | None = None,
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema of every served version of the CRDs in `files`."""
    schemas = {} if schemas is None else schemas
    kinds = {} if kinds is None else kinds
    for file in files:
        for data in _plain_documents(file):
            if not isinstance(data, dict) or data.get("kind") != "CustomResourceDefinition":
                continue
            spec = data.get("spec") or {}
            group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
            for version in spec.get("versions") or []:
                if version.get("served", True):
                    kinds.setdefault((group, kind), []).append(version["name"])
                    schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
                    schemas[(group, version["name"], kind)] = schema
    return schemas


def _parse_reference(directory: Path, shipped: Mapping[str, Path]) -> Reference:
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    kinds: dict[tuple[str, str], list[str]] = {}
    crd_schemas(sorted((directory / "crds").glob("*.yaml")), schemas, kinds)
    for folder in shipped.values():
        crd_schemas(sorted(folder.glob("manifests/crds/*-crd.yaml")), schemas, kinds)
    charts: dict[str, tuple[str, dict[str, Any]]] = {}
    for file in sorted((directory / "charts").glob("*.values.yaml")):
        match = re.match(r"^(?P<name>.+)-(?P<version>[0-9][^-]*)\.values\.yaml$", file.name)
        if match:
            values = _plain_documents(file)
            charts[match.group("name")] = (match.group("version"), values[0] if values and values[0] else {})
    app_versions: dict[str, str] = {}
    kube_versions: dict[str, str] = {}
    chart_files = [(False, f) for f in sorted((directory / "charts").glob("*/Chart.yaml"))]
    chart_files += [(True, f) for folder in shipped.values() for f in sorted(folder.glob("helm/*/Chart.yaml"))]
    for from_module, chart_file in chart_files:  # a module's chart comes last and wins
        chart = as_dict((_plain_documents(chart_file) or [{}])[0])
        name = str(chart.get("name"))
        if from_module:
            values = _plain_documents(chart_file.parent / "values.yaml")
            charts[name] = (str(chart.get("version")), values[0] if values and values[0] else {})
        if name in charts and str(chart.get("version")) == charts[name][0]:
            app_versions[name] = str(chart.get("appVersion", ""))
            if chart.get("kubeVersion"):
                kube_versions[name] = str(chart["kubeVersion"])
    iam: dict[str, set[str]] = {}
    statements: dict[str, list[dict[str, Any]]] = {}
    policies = [("aws-load-balancer-controller", f) for f in sorted((directory / "iam").glob("*.json"))]
    policies += [(name, f) for name, folder in shipped.items() for f in folder.glob("docs/install/iam_policy.json")]
    for controller, file in policies:  # a module's own policy comes last and wins
        try:
            document = json.loads(read_text(file))
        except ValueError:
            raise InputError(f"{file}: invalid JSON") from None
        iam[controller] = _policy_actions(document)
        statements[controller] = policy_statements(document)
    for file in sorted((directory / "iam").glob("*")):
        text = read_text(file)
        if file.suffix != ".json" and "karpenter" in file.name:
            documents = _karpenter_controller_documents(file, text)
            iam["karpenter"] = {a for d in documents for a in _policy_actions(d)}
            statements["karpenter"] = [s for d in documents for s in policy_statements(d)]
    compatibility_file = directory / "compatibility.yaml"
    compatibility = yaml_documents(compatibility_file)[0][0] if compatibility_file.is_file() else {}
    return Reference(
        schemas,
        kinds,
        charts,
        iam,
        compatibility or {},
        iam_statements=statements,
        chart_app_versions=app_versions,
        chart_kube_versions=kube_versions,
    )


def policy_statements(document: Any) -> list[dict[str, Any]]:
    """Allow statements of a policy document: actions, resources, conditions as [operator, key, [values]]."""
    raw = document.get("Statement", []) if isinstance(document, dict) else []
    found: list[dict[str, Any]] = []
    for statement in raw if isinstance(raw, list) else [raw]:
        if not isinstance(statement, dict) or statement.get("Effect", "Allow") != "Allow":
            continue
        actions, resources = statement.get("Action", []), statement.get("Resource", [])
        conditions = [
            [str(operator), str(key), [str(v) for v in (values if isinstance(values, list) else [values])]]
            for operator, entries in (statement.get("Condition") or {}).items()
            if isinstance(entries, dict)
            for key, values in entries.items()
        ]
        found.append(
            {
                "actions": [actions] if isinstance(actions, str) else list(actions),
                "resources": [resources] if isinstance(resources, str) else list(resources),
                "conditions": conditions,
            }
        )
    return found


def _karpenter_controller_documents(file: Path, text: str) -> list[Any]:
    try:
        template = yaml.load(text, Loader=_CloudFormationLoader)
    except yaml.YAMLError:
        raise InputError(f"{file}: invalid YAML") from None
    documents: list[Any] = []
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::IAM::ManagedPolicy":
            continue
        document = (resource.get("Properties") or {}).get("PolicyDocument")
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                continue
        documents.append(document)
    return documents


def load_versions(repo_root: Path | None) -> tuple[dict[str, str], Path | None, dict[str, int]]:
    """versions.yaml of the checked repository, with the line of each key; empty when there is none."""
    if repo_root is None or not (repo_root / "versions.yaml").is_file():
        return {}, None, {}
    file = repo_root / "versions.yaml"
    documents = yaml_documents(file)
    data = documents[0][0] if documents else {}
    if not isinstance(data, dict):
        raise InputError(f"{file}:1: expected a mapping of name: version")
    lines = {str(path[0]): line for path, line in documents[0][2].items() if len(path) == 1}
    return {str(k): str(v) for k, v in data.items()}, file, lines


def load_plan(path: Path) -> dict[str, dict[str, Any]]:
    """`terraform show -json` output -> planned values by resource address."""
    try:
        plan = json.loads(read_text(path))
    except ValueError as exc:
        raise InputError(f"{path}: invalid JSON ({exc})") from None
    found: dict[str, dict[str, Any]] = {}

    def visit(module: Any) -> None:
        if not isinstance(module, dict):
            return
        for resource in module.get("resources") or []:
            if isinstance(resource, dict) and isinstance(resource.get("values"), dict):
                found[str(resource.get("address"))] = resource["values"]
        for child in module.get("child_modules") or []:
            visit(child)

    planned = plan.get("planned_values") if isinstance(plan, dict) else None
    if not isinstance(planned, dict):
        raise InputError(f"{path}: not a plan (no planned_values; produce it with `terraform show -json PLAN`)")
    visit(planned.get("root_module"))
    return found
