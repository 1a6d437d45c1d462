"""Terraform roots and modules -> evaluated resources (module inputs, locals, remote state followed)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from lark.exceptions import LarkError, UnexpectedInput

from harness.errors import InputError
from harness.gate import module_adapters
from harness.gate.hcl import (
    Block,
    Env,
    MapNamespace,
    Namespace,
    Node,
    Unknown,
    _Failed,
    concrete,
    decoded,
    evaluate,
    node_text,
    parse_file,
    parse_json_file,
    string_literals,
)
from harness.gate.model import ProviderRequirement, TerraformModel, TfResource
from harness.gate.module_adapters import Expansion, Inputs
from harness.gate.plan import Plan, check_unique, overlay, root_of
from harness.gate.text import read_text

_META_ARGS = frozenset({"count", "for_each", "depends_on", "provider", "providers", "lifecycle", "source", "version"})
# Arguments holding YAML/JSON documents as text (Helm values, IAM policies).
_DOCUMENT_ARGS = frozenset({"values", "policy", "assume_role_policy", "inline_policy"})


@dataclass
class ModuleDir:
    """The blocks of one directory of .tf files."""

    path: Path
    blocks: list[Block]
    variables: dict[str, Block] = field(default_factory=dict)
    locals: dict[str, tuple[Node, Block]] = field(default_factory=dict)
    outputs: dict[str, Block] = field(default_factory=dict)
    resources: list[Block] = field(default_factory=list)
    calls: dict[str, Block] = field(default_factory=dict)
    tfvars: dict[str, tuple[Node, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for block in self.blocks:
            if block.type == "variable" and block.labels:
                self.variables[block.labels[0]] = block
            elif block.type == "locals":
                for name, node in block.attrs.items():
                    self.locals[name] = (node, block)
            elif block.type == "output" and block.labels:
                self.outputs[block.labels[0]] = block
            elif block.type in ("resource", "data") and len(block.labels) == 2:
                self.resources.append(block)
            elif block.type == "module" and block.labels:
                self.calls[block.labels[0]] = block

    def local_source(self, call: Block) -> Path | None:
        node = call.attrs.get("source")
        source = evaluate(node, Env(_no_names, call.source, self.path)) if node is not None else None
        if isinstance(source, str) and source.startswith(("./", "../")):
            return (self.path / source).resolve()
        return None


def _no_names(name: str) -> Any:
    raise _Failed(name)


class Instance:
    """A module instance: the root of a configuration or a module call, with its own var/local scope."""

    def __init__(
        self,
        project: Project,
        module: ModuleDir,
        path: str,
        root: str,
        inputs: dict[str, tuple[Node, Env]],
        depth: int = 0,
    ) -> None:
        self.project = project
        self.module = module
        self.path = path
        self.root = root
        self.inputs = inputs
        self.depth = depth
        self._memo: dict[tuple[str, ...], Any] = {}
        self._busy: set[tuple[str, ...]] = set()
        self.children: dict[str, Instance] = {}
        self.registry_calls: dict[str, tuple[Callable[[Inputs], Expansion], Block]] = {}
        for name, call in module.calls.items():
            child_dir = module.local_source(call)
            child = project.modules.get(child_dir) if child_dir else None
            if child is None and "source" in call.attrs:
                source = evaluate(call.attrs["source"], Env(_no_names, call.source, module.path))
                expand = module_adapters.adapter(source) if isinstance(source, str) else None
                if expand is not None:
                    self.registry_calls[name] = (expand, call)
            if child is None or depth > 8:
                continue
            env = self.env(call)
            args = {k: (v, env) for k, v in call.attrs.items() if k not in _META_ARGS}
            child_path = f"{path}.module.{name}" if path else f"module.{name}"
            self.children[name] = Instance(project, child, child_path, root, args, depth + 1)

    def env(self, block: Block) -> Env:
        return Env(self.resolve, block.source, self.module.path)

    def _cached(self, key: tuple[str, ...], compute: Any) -> Any:
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:  # a cycle: give up on this value rather than recurse forever
            return Unknown(".".join(key))
        self._busy.add(key)
        try:
            value = compute()
        finally:
            self._busy.discard(key)
        self._memo[key] = value
        return value

    def resolve(self, name: str) -> Any:
        if name == "var":
            return MapNamespace("var", self.var)
        if name == "local":
            return MapNamespace("local", self.local)
        if name == "module":
            return MapNamespace("module", self.module_outputs)
        if name == "data":
            return MapNamespace("data", lambda t: MapNamespace(f"data.{t}", lambda n: self.resource("data", t, n)))
        if name == "path":
            root_dir = self.project.root_dirs.get(self.root, self.module.path)
            return {"module": str(self.module.path), "root": str(root_dir), "cwd": str(root_dir)}
        if name == "terraform":
            return {"workspace": "default"}
        if any(block.labels[0] == name for block in self.module.resources if block.type == "resource"):
            return MapNamespace(name, lambda n: self.resource("resource", name, n))
        raise _Failed(name)

    def var(self, name: str) -> Any:
        def compute() -> Any:
            plan = self.project.plans.get(self.root) if not self.path else None
            if plan is not None and name in plan.variables:  # a root's variables: the plan's values
                return plan.variables[name]
            if name in self.inputs:
                node, env = self.inputs[name]
                return evaluate(node, env, lazy=True)
            if name in self.module.tfvars:
                node, source = self.module.tfvars[name]
                return evaluate(node, Env(_no_names, source, self.module.path))
            block = self.module.variables.get(name)
            if block is not None and "default" in block.attrs:
                return evaluate(block.attrs["default"], self.env(block))
            return Unknown(f"var.{name}")

        return self._cached(("var", name), compute)

    def local(self, name: str) -> Any:
        if name not in self.module.locals:
            raise _Failed(f"local.{name}")
        node, block = self.module.locals[name]
        return self._cached(("local", name), lambda: evaluate(node, self.env(block), lazy=True))

    def output(self, name: str) -> Any:
        block = self.module.outputs.get(name)
        if block is None or "value" not in block.attrs:
            return Unknown(f"output.{name}")
        return self._cached(("output", name), lambda: evaluate(block.attrs["value"], self.env(block), lazy=True))

    def expansion(self, call_name: str) -> Expansion:
        """What a registry module call creates, from its inputs."""
        expand, call = self.registry_calls[call_name]
        env = self.env(call)

        def inputs(name: str) -> Any:
            return evaluate(call.attrs[name], env) if name in call.attrs else None

        return self._cached(("registry", call_name), lambda: expand(inputs))  # type: ignore[no-any-return]

    def module_outputs(self, call: str) -> Any:
        if call in self.registry_calls:
            outputs = self.expansion(call).outputs
            return MapNamespace(f"module.{call}", lambda o: outputs.get(o, Unknown(f"module.{call}.{o}")))
        child = self.children.get(call)
        if child is None:
            return MapNamespace(f"module.{call}", lambda o: Unknown(f"module.{call}.{o}"))
        return MapNamespace(f"module.{call}", child.output)

    def resource_block(self, mode: str, type_: str, name: str) -> Block | None:
        for block in self.module.resources:
            if block.type == mode and block.labels == [type_, name]:
                return block
        return None

    def instances(self, block: Block) -> list[tuple[int | str | None, dict[str, Any], Env]]:
        """(index, evaluated arguments, env) per instance of a resource block (count/for_each expanded)."""

        def compute() -> list[tuple[int | str | None, dict[str, Any], Env]]:
            env = self.env(block)
            keys: list[tuple[int | str | None, Env]]
            if "count" in block.attrs:
                count = evaluate(block.attrs["count"], env)
                if isinstance(count, int) and not isinstance(count, bool):
                    keys = [(i, env.child(count={"index": i})) for i in range(count)]
                else:
                    keys = [(None, env.child(count={"index": Unknown("count.index")}))]
            elif "for_each" in block.attrs:
                each = decoded(evaluate(block.attrs["for_each"], env))
                if isinstance(each, dict):
                    keys = [(str(k), env.child(each={"key": k, "value": v})) for k, v in each.items()]
                elif isinstance(each, list):
                    keys = [(str(v), env.child(each={"key": v, "value": v})) for v in each]
                else:
                    unknown = Unknown("each")
                    keys = [(None, env.child(each={"key": unknown, "value": unknown}))]
            else:
                keys = [(None, env)]
            return [(key, evaluate_body(block, scope), scope) for key, scope in keys]

        return self._cached(("instances", block.type, *block.labels), compute)  # type: ignore[no-any-return]

    def resource(self, mode: str, type_: str, name: str) -> Any:
        block = self.resource_block(mode, type_, name)
        if block is None:
            raise _Failed(f"{type_}.{name}")
        address = f"{type_}.{name}" if mode == "resource" else f"data.{type_}.{name}"
        objects = [
            ResourceObject(self, f"{address}[{key!r}]" if key is not None else address, attrs)
            for key, attrs, _env in self.instances(block)
        ]
        if "count" in block.attrs:
            if any(key is None for key, _a, _e in self.instances(block)):
                raise _Failed(address)
            return objects
        if "for_each" in block.attrs:
            keys = [key for key, _a, _e in self.instances(block)]
            if None in keys:
                raise _Failed(address)
            return dict(zip([str(k) for k in keys], objects, strict=True))
        return objects[0]


class ResourceObject(Namespace):
    """A resource instance seen from an expression: arguments known, computed attributes unknown."""

    def __init__(self, instance: Instance, address: str, attrs: dict[str, Any]) -> None:
        self.instance = instance
        self.address = address
        self.attrs = attrs

    def attr(self, name: str) -> Any:
        if self.address.startswith("data.terraform_remote_state.") and name == "outputs":
            return MapNamespace(f"{self.address}.outputs", self.instance.project.remote_output)
        if name in self.attrs:
            return self.attrs[name]
        return Unknown(f"{self.address}.{name}")

    def describe(self) -> str:
        return self.address


def evaluate_body(block: Block, env: Env) -> dict[str, Any]:
    """Arguments and nested blocks of a block; blocks become lists of mappings, dynamic blocks expanded."""
    result: dict[str, Any] = {}
    for name, node in block.attrs.items():
        if name in ("count", "for_each", "depends_on", "provider", "providers"):
            continue
        result[name] = evaluate(node, env, parse_documents=name in _DOCUMENT_ARGS)
    for nested in block.blocks:
        if nested.type == "dynamic" and nested.labels:
            result.setdefault(nested.labels[0], []).extend(_dynamic(nested, env))
        elif nested.type != "lifecycle":
            result.setdefault(nested.type, []).append(evaluate_body(nested, env))
    return result


def _dynamic(block: Block, env: Env) -> list[dict[str, Any]]:
    label = block.labels[0]
    iterator = label
    if "iterator" in block.attrs:
        iterator = node_text(block.attrs["iterator"], block.source)
    content = next((b for b in block.blocks if b.type == "content"), None)
    items = decoded(evaluate(block.attrs["for_each"], env)) if "for_each" in block.attrs else None
    if content is None or not isinstance(items, dict | list):
        return []
    pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items))
    return [evaluate_body(content, env.child(**{iterator: {"key": k, "value": v}})) for k, v in pairs]


class Project:
    """All directories of .tf files under the given paths, their roots and module instances."""

    def __init__(self, paths: Sequence[Path], variables: Mapping[str, Any] | None = None) -> None:
        """`variables`: input values for the roots (as `-var` gives them), over their tfvars and defaults."""
        self.modules: dict[Path, ModuleDir] = {}
        self.files: list[Path] = []
        for path in paths:
            for directory in _tf_dirs(path):
                files = sorted([*directory.glob("*.tf"), *directory.glob("*.tf.json")])
                blocks = [
                    block
                    for file in files
                    for block in (parse_json_file(file) if file.name.endswith(".json") else parse_file(file))
                ]
                self.files.extend(files)
                self.modules[directory.resolve()] = ModuleDir(directory.resolve(), blocks)
        called = {
            target
            for module in self.modules.values()
            for call in module.calls.values()
            if (target := module.local_source(call)) is not None
        }
        roots = [d for d in self.modules if d not in called]
        self.root_dirs: dict[str, Path] = {}
        for directory in roots:
            name = directory.name if directory.name not in self.root_dirs else str(directory)
            self.root_dirs[name] = directory
            _load_tfvars(self.modules[directory])
            _set_variables(self.modules[directory], variables or {})
        self.roots = {name: Instance(self, self.modules[d], "", name, {}) for name, d in self.root_dirs.items()}
        self.plans: dict[str, Plan] = {}  # root name -> the plan every value of that root comes from

    def attach(self, plans: Sequence[Plan]) -> None:
        """Plans for some roots (each matched to its root by variables and resources): their values replace the
        static evaluation of that root everywhere (call before anything is evaluated)."""
        roots = {
            name: (
                set(root.module.variables),
                {
                    f"{b.labels[0]}.{b.labels[1]}" if b.type == "resource" else f"data.{b.labels[0]}.{b.labels[1]}"
                    for b in root.module.resources
                },
            )
            for name, root in self.roots.items()
        }
        self.plans = check_unique([(root_of(plan, roots), plan) for plan in plans])

    def remote_output(self, name: str) -> Any:
        """An output of a sibling root read through terraform_remote_state: resolved when exactly one root has it."""
        owners = [root for root in self.roots.values() if name in root.module.outputs]
        if len(owners) == 1:
            owner = owners[0]
            return planned_output(self, owner.root, name) if owner.root in self.plans else owner.output(name)
        return Unknown(f"remote_state.outputs.{name}")


def planned_output(project: Project, root: str, name: str) -> Any:
    plan = project.plans[root]
    return plan.outputs[name] if name in plan.outputs else Unknown(f"output.{name}")


def _tf_dirs(path: Path) -> list[Path]:
    if path.is_file():
        raise InputError(f"{path}: expected a directory of Terraform files")
    if not path.is_dir():
        raise InputError(f"{path}: no such directory")
    found = {
        p.parent
        for pattern in ("*.tf", "*.tf.json")
        for p in path.rglob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.parts[-3:-1])
    }
    return sorted(d for d in found if ".terraform" not in d.parts)


def _load_tfvars(module: ModuleDir) -> None:
    for file in [module.path / "terraform.tfvars", *sorted(module.path.glob("*.auto.tfvars"))]:
        if not file.is_file():
            continue
        text = read_text(file)
        try:
            tree = hcl2.parses_to_tree(text)
        except UnexpectedInput as exc:
            raise InputError(f"{file}:{exc.line}: invalid HCL (unexpected input)") from None
        except (LarkError, ValueError, RuntimeError) as exc:
            raise InputError(f"{file}: invalid HCL ({exc.__class__.__name__})") from None
        for child in tree.children[0].children:
            if getattr(child, "data", None) == "attribute":
                key_node, _eq, expr = child.children
                module.tfvars[str(key_node.children[0])] = (expr, text)


def _set_variables(module: ModuleDir, variables: Mapping[str, Any]) -> None:
    """Values given on the command line win over tfvars, as with `terraform apply -var`. JSON is HCL syntax."""
    for name, value in variables.items():
        if name in module.variables:
            text = f"{name} = {json.dumps(value)}\n"
            _key, _eq, expr = hcl2.parses_to_tree(text).children[0].children[0].children
            module.tfvars[name] = (expr, text)


def collect(project: Project) -> TerraformModel:
    """Every resource instance of every root and module instance, plus provider requirements and outputs."""
    model = TerraformModel(files=list(project.files))
    for root_name, root in project.roots.items():
        default_tags = _default_tags(root)
        _collect_instance(root, model, default_tags)
        model.outputs[root_name] = {
            name: planned_output(project, root_name, name)
            if root_name in project.plans
            else concrete(root.output(name), "")
            for name in root.module.outputs
        }
    for module in project.modules.values():
        root_name = next((n for n, d in project.root_dirs.items() if d == module.path), module.path.name)
        for block in module.blocks:
            if block.type != "terraform":
                continue
            if "required_version" in block.attrs:
                constraint = evaluate(block.attrs["required_version"], Env(_no_names, block.source, module.path))
                if isinstance(constraint, str):
                    model.providers.append(
                        ProviderRequirement(
                            "terraform", "", constraint, root_name, block.file, block.attr_lines["required_version"]
                        )
                    )
            for required in (b for b in block.blocks if b.type == "required_providers"):
                env = Env(_no_names, required.source, module.path)
                for name, node in required.attrs.items():
                    spec = decoded(evaluate(node, env))
                    if isinstance(spec, dict):
                        model.providers.append(
                            ProviderRequirement(
                                name,
                                str(spec.get("source", "")),
                                str(spec.get("version", "")),
                                root_name,
                                required.file,
                                required.attr_lines.get(name, required.line),
                            )
                        )
    overlay(model, project.plans)
    return model


def _default_tags(root: Instance) -> dict[str, Any]:
    for block in root.module.blocks:
        if block.type == "provider" and block.labels == ["aws"]:
            body = evaluate_body(block, root.env(block))
            tags = body.get("default_tags")
            if isinstance(tags, list) and tags and isinstance(tags[0], dict):
                value = decoded(tags[0].get("tags"))
                return value if isinstance(value, dict) else {}
    return {}


def _collect_instance(instance: Instance, model: TerraformModel, default_tags: dict[str, Any]) -> None:
    for block in instance.module.resources:
        mode, (type_, name) = block.type, block.labels
        for key, attrs, _env in instance.instances(block):
            model.resources.append(
                TfResource(
                    mode=mode,
                    type=type_,
                    name=name,
                    module_path=instance.path,
                    root=instance.root,
                    index=key,
                    attrs=attrs,
                    file=block.file,
                    line=block.line,
                    attr_lines=_lines(block),
                    default_tags=default_tags if type_.startswith("aws_") else {},
                    count_unknown=key is None and ("count" in block.attrs or "for_each" in block.attrs),
                    literal_strings=_helm_literals(block) if type_ == "helm_release" else frozenset(),
                )
            )
    for call_name, (_expand, call) in instance.registry_calls.items():
        path = f"{instance.path}.module.{call_name}" if instance.path else f"module.{call_name}"
        for made in instance.expansion(call_name).resources:
            lines = {attr: call.attr_lines.get(source, call.line) for attr, source in made.inputs.items()}
            model.resources.append(
                TfResource(
                    "resource",
                    made.type,
                    made.name,
                    path,
                    instance.root,
                    None,
                    made.attrs,
                    call.file,
                    call.line,
                    lines,
                    default_tags if made.type.startswith("aws_") else {},
                )
            )
    for child in instance.children.values():
        _collect_instance(child, model, default_tags)


_HELM_VALUE_ARGUMENTS = ("values", "set", "set_list", "set_sensitive")


def _helm_literals(block: Block) -> frozenset[str]:
    """Strings a helm_release's values and set entries (attributes or blocks) write literally."""
    found: set[str] = set()
    for name in _HELM_VALUE_ARGUMENTS:
        if name in block.attrs:
            found |= string_literals(block.attrs[name])
    for nested in block.blocks:
        if nested.type in _HELM_VALUE_ARGUMENTS:
            for node in nested.attrs.values():
                found |= string_literals(node)
    return frozenset(found)


def _lines(block: Block, prefix: str = "") -> dict[str, int]:
    lines = {f"{prefix}{k}": v for k, v in block.attr_lines.items()}
    seen: dict[str, int] = {}
    for nested in block.blocks:
        label = nested.labels[0] if nested.type == "dynamic" and nested.labels else nested.type
        lines.setdefault(f"{prefix}{label}", nested.line)
        lines.setdefault(f"{prefix}{label}[{seen.get(label, 0)}]", nested.line)
        seen[label] = seen.get(label, 0) + 1
        inner = next((b for b in nested.blocks if b.type == "content"), nested) if nested.type == "dynamic" else nested
        for key, value in _lines(inner, f"{prefix}{label}.").items():
            lines.setdefault(key, value)
    return lines
