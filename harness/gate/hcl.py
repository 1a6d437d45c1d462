"""Terraform configuration: parse with python-hcl2 (raw tree, with positions) and evaluate what is static.

python-hcl2 turns expressions into strings such as "${merge(local.tags, {...})}"; the gate needs their
values, so it walks the parse tree itself. Whatever depends on apply-time data (ARNs, IDs) stays an
`Unknown` carrying its source text, so rules can skip it instead of guessing.

Over 600 lines on purpose: it is one small interpreter (parse-tree walk, expression evaluator, the Terraform
functions the gate supports), whose parts share the Unknown/Encoded value model and private helpers; split, each
part would import the others' internals.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import lark
import yaml
from hcl2.utils import process_escape_sequences
from hcl2.version import version as HCL2_VERSION
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from harness.errors import InputError
from harness.gate.text import read_text

Node = Tree[Token]
_SKIPPED = ("new_line_or_comment",)


class Unknown:
    """A value only known after apply (or not statically resolvable): keeps the expression's text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<unknown {self.text}>"


@dataclass(frozen=True)
class Encoded:
    """The result of yamlencode()/jsonencode(): rules want the structure, not the text."""

    value: Any
    format: str  # "yaml" or "json"


def is_known(value: Any) -> bool:
    """True when the value and everything inside it is static."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, Encoded):
        return is_known(value.value)
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list):
        return all(is_known(v) for v in value)
    return True


def decoded(value: Any) -> Any:
    """Unwrap yamlencode/jsonencode results so callers see plain structures."""
    return value.value if isinstance(value, Encoded) else value


@dataclass
class Block:
    """One HCL block (resource, module, variable, ...): attribute expressions plus nested blocks."""

    type: str
    labels: list[str]
    attrs: dict[str, Node]
    attr_lines: dict[str, int]
    blocks: list[Block]
    file: Path
    line: int
    source: str = field(repr=False)


def _children(node: Node) -> list[Any]:
    return [c for c in node.children if not (isinstance(c, Tree) and c.data in _SKIPPED)]


def _trees(node: Node) -> list[Node]:
    return [c for c in _children(node) if isinstance(c, Tree)]


def _name(node: Any) -> str:
    """Text of an identifier/keyword/literal_value/string label."""
    if isinstance(node, Token):
        return str(node)
    if node.data == "string":
        return "".join(str(c.children[0]) for c in node.children if isinstance(c, Tree))
    return str(node.children[0])


def string_literals(node: Any) -> set[str]:
    """The quoted strings written as they are (no interpolation) anywhere in an expression or block body."""
    found: set[str] = set()
    if not isinstance(node, Tree):
        return found
    if node.data == "string":
        parts = _trees(node)
        if all(not _trees(part) for part in parts):
            found.add(_name(node))
            return found
    for child in _trees(node):
        found |= string_literals(child)
    return found


def parse_file(path: Path) -> list[Block]:
    """Top-level blocks of one .tf file; malformed HCL raises InputError naming file and line."""
    text = read_text(path)
    try:
        tree = parse_text(text)
    except UnexpectedInput as exc:
        raise InputError(f"{path}:{exc.line}: invalid HCL (unexpected input)") from None
    except (LarkError, RecursionError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: invalid HCL ({exc.__class__.__name__})") from None
    body = tree.children[0]
    if not isinstance(body, Tree):
        return []
    return [_block(child, path, text) for child in _trees(body) if child.data == "block"]


def parse_json_file(path: Path) -> list[Block]:
    """Blocks of a Terraform JSON-syntax file (*.tf.json), by rewriting it as native syntax.

    Object values become object attributes (JSON syntax cannot tell them from nested blocks without the
    provider schema), except `dynamic` blocks. Lines point at each key in the JSON file.
    """
    text = read_text(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}:{getattr(exc, 'lineno', 1)}: invalid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: a Terraform JSON file must hold an object")
    writer = _JsonToHcl(text)
    for block_type, content in data.items():
        writer.top_level(str(block_type), content)
    try:
        tree = parse_text(writer.source())
    except (LarkError, RecursionError, ValueError, RuntimeError):
        raise InputError(f"{path}:1: Terraform JSON that is not valid configuration") from None
    body = tree.children[0]
    blocks = [_block(child, path, writer.source()) for child in _trees(body)] if isinstance(body, Tree) else []
    for block in blocks:
        writer.relocate(block)
    return blocks


_LABELS = {"resource": 2, "data": 2, "module": 1, "variable": 1, "output": 1, "provider": 1}


class _JsonToHcl:
    """Writes native HCL for a JSON configuration, remembering the JSON line of every written line."""

    def __init__(self, json_text: str) -> None:
        self.json_text = json_text
        self.position = 0
        self.lines: list[str] = []
        self.json_lines: list[int] = []

    def _json_line(self, key: str) -> int:
        found = self.json_text.find(json.dumps(key), self.position)
        if found < 0:
            return self.json_text.count("\n", 0, self.position) + 1
        self.position = found + 1
        return self.json_text.count("\n", 0, found) + 1

    def _emit(self, text: str, line: int) -> None:
        self.lines.append(text)
        self.json_lines.append(line)

    def top_level(self, block_type: str, content: Any) -> None:
        depth = _LABELS.get(block_type, 0)
        self._labelled(block_type, [], content, depth)

    def _labelled(self, block_type: str, labels: list[str], content: Any, depth: int) -> None:
        if depth and isinstance(content, dict):
            for label, inner in content.items():
                self._labelled(block_type, [*labels, str(label)], inner, depth - 1)
            return
        for body in content if isinstance(content, list) else [content]:
            if isinstance(body, dict):
                line = self._json_line(labels[-1]) if labels else self._json_line(block_type)
                self._body(" ".join([block_type, *(json.dumps(label) for label in labels)]), body, line)

    def _body(self, header: str, body: dict[str, Any], line: int) -> None:
        self._emit(header + " {", line)
        for key, value in body.items():
            if key == "//":
                continue
            key_line = self._json_line(key)
            if key == "dynamic" and isinstance(value, dict):
                for label, dynamic in value.items():
                    if isinstance(dynamic, dict):
                        content = dynamic.get("content")
                        rest = {k: v for k, v in dynamic.items() if k != "content"}
                        self._emit(f"dynamic {json.dumps(str(label))} {{", key_line)
                        for inner_key, inner_value in rest.items():
                            self._emit(f"{_identifier(inner_key)} = {_expression(inner_value)}", key_line)
                        if isinstance(content, dict):
                            self._body("content", content, key_line)
                        self._emit("}", key_line)
                continue
            self._emit(f"{_identifier(key)} = {_expression(value)}", key_line)
        self._emit("}", line)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def relocate(self, block: Block) -> None:
        block.line = self.json_lines[block.line - 1]
        block.attr_lines = {k: self.json_lines[v - 1] for k, v in block.attr_lines.items()}
        for nested in block.blocks:
            self.relocate(nested)


def _identifier(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else json.dumps(key)


def _expression(value: Any) -> str:
    """JSON syntax values as native expressions: strings stay templates (`${...}` is interpolated)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_expression(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_expression(v)}" for k, v in value.items()) + "}"
    return "null"


@functools.lru_cache(maxsize=512)
def parse_text(text: str) -> Node:
    """The parse tree of HCL text. Parsing dominates a check and most files are unchanged between checks, so
    trees are kept in memory and in the user's cache directory (by content hash and python-hcl2 version)."""
    cache = _tree_cache_file(text)
    try:
        with cache.open("rb") as stream:
            cached = pickle.load(stream)  # written by this function only, in the user's own cache directory
        if isinstance(cached, Tree):
            return cached
    except Exception:  # a missing or damaged cache entry only costs a parse
        pass
    tree: Node = hcl2.parses_to_tree(text)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(cache)
    except (OSError, pickle.PicklingError, RecursionError):
        pass
    return tree


def _tree_cache_file(text: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return base / "harness" / f"hcl-{HCL2_VERSION}-lark-{lark.__version__}" / digest[:2] / f"{digest}.pickle"


def _block(node: Node, path: Path, text: str) -> Block:
    parts = _children(node)
    body_index = next(i for i, c in enumerate(parts) if isinstance(c, Tree) and c.data == "body")
    names = [_name(c) for c in parts[:body_index] if isinstance(c, Tree)]
    attrs: dict[str, Node] = {}
    lines: dict[str, int] = {}
    blocks: list[Block] = []
    for child in _trees(parts[body_index]):
        if child.data == "attribute":
            key_node, _eq, expr = child.children
            key = _name(key_node)
            if isinstance(expr, Tree):
                attrs[key] = expr
            lines[key] = child.meta.line
        elif child.data == "block":
            blocks.append(_block(child, path, text))
    return Block(names[0], names[1:], attrs, lines, blocks, path, node.meta.line, text)


class Namespace:
    """A lazily evaluated object (var, local, module.x, a resource, ...)."""

    def attr(self, name: str) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class MapNamespace(Namespace):
    def __init__(self, label: str, lookup: Callable[[str], Any]) -> None:
        self.label = label
        self.lookup = lookup

    def attr(self, name: str) -> Any:
        return self.lookup(name)

    def describe(self) -> str:
        return self.label


@dataclass
class Env:
    """Where an expression is evaluated: the scope that resolves root names, and its source text."""

    resolve: Callable[[str], Any]
    source: str
    base_dir: Path
    names: dict[str, Any] = field(default_factory=dict)
    # heredoc text keeps a marker where an interpolation is unknown, so YAML/JSON inside it still parses
    markers: dict[str, str] = field(default_factory=dict)

    def child(self, **names: Any) -> Env:
        return Env(self.resolve, self.source, self.base_dir, {**self.names, **names}, self.markers)


class _Failed(Exception):
    """An expression that cannot be evaluated statically; becomes Unknown at the nearest boundary."""


def node_text(node: Any, source: str) -> str:
    meta = getattr(node, "meta", None)
    if meta is not None and not meta.empty:
        return " ".join(source[meta.start_pos : meta.end_pos].split())
    return str(node)


def evaluate(node: Node, env: Env, parse_documents: bool = False, lazy: bool = False) -> Any:
    """Value of an expression; Unknown (with its text) where static evaluation is impossible.

    With parse_documents, strings (heredoc YAML/JSON such as Helm values or IAM policies) are parsed
    into structures before unknown interpolations are marked. With lazy, namespaces (a module, remote
    state outputs) stay navigable, for locals and variables that other expressions dereference.
    """
    try:
        value = _eval(node, env)
        if not lazy:
            value = concrete(value, node_text(node, env.source))
        if parse_documents:
            value = _parse_documents(value)
        return unmark(value, env.markers)
    except (_Failed, TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError, RecursionError):
        return Unknown(node_text(node, env.source))


def concrete(value: Any, text: str) -> Any:
    """Replace lazy namespaces inside a value by Unknowns (rules see data only)."""
    if isinstance(value, Namespace):
        return Unknown(value.describe() if text == "" else text)
    if isinstance(value, list):
        return [concrete(v, "") for v in value]
    if isinstance(value, dict):
        return {k: concrete(v, "") for k, v in value.items()}
    return value


_MARKER = re.compile("⟦unknown[0-9]+⟧")


def unmark(value: Any, markers: Mapping[str, str]) -> Any:
    """Turn strings holding unknown-interpolation markers into Unknowns (after any YAML/JSON parsing)."""
    if isinstance(value, str) and "⟦unknown" in value:
        return Unknown(_MARKER.sub(lambda m: "${" + markers.get(m.group(0), "?") + "}", value))
    if isinstance(value, list):
        return [unmark(v, markers) for v in value]
    if isinstance(value, dict):
        return {k: unmark(v, markers) for k, v in value.items()}
    if isinstance(value, Encoded):
        return Encoded(unmark(value.value, markers), value.format)
    return value


def _parse_documents(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Encoded(yaml.safe_load(value), "yaml")
        except yaml.YAMLError:
            return value
    if isinstance(value, list):
        return [_parse_documents(v) for v in value]
    return value


def _no_root_names(name: str) -> Any:
    """A template file sees only the variables passed to templatefile()."""
    raise _Failed(name)


def _unknown(*values: Any) -> bool:
    return any(isinstance(v, Unknown | Namespace) for v in values)


def _eval(node: Any, env: Env) -> Any:
    if isinstance(node, Token):
        raise _Failed(str(node))
    kind = node.data
    parts = _children(node)
    if kind == "expr_term":
        inner = [p for p in parts if isinstance(p, Tree)]
        return _eval(inner[0], env)
    if kind == "int_lit":
        return int(str(parts[0]))
    if kind == "float_lit":
        return float(str(parts[0]))
    if kind == "literal_value":
        return {"true": True, "false": False, "null": None}[str(parts[0])]
    if kind == "string":
        return _string(parts, env)
    if kind in ("heredoc_template", "heredoc_template_trim"):
        return _heredoc(str(parts[0]), kind.endswith("trim"), env)
    if kind == "template_string":
        return _Failed("template")
    if kind == "tuple":
        return [_element(p, env) for p in parts if isinstance(p, Tree)]
    if kind == "object":
        return _object(parts, env)
    if kind == "identifier":
        name = str(parts[0])
        if name in env.names:
            return env.names[name]
        return env.resolve(name)
    if kind == "get_attr_expr_term":
        base = _eval(parts[0], env)
        return get_attr(base, _name(_trees(parts[1])[0]))
    if kind == "index_expr_term":
        base = _eval(parts[0], env)
        index_node = parts[1]
        if index_node.data == "short_index":
            key: Any = int(str(index_node.children[1]))
        else:
            key = _eval(_trees(index_node)[0], env)
        return get_index(base, key)
    if kind in ("attr_splat_expr_term", "full_splat_expr_term"):
        base = _eval(parts[0], env)
        if _unknown(base):
            return base
        items = base if isinstance(base, list) else ([] if base is None else [base])
        steps = _trees(parts[1])
        out = []
        for item in items:
            value = item
            for step in steps:
                if step.data == "get_attr":
                    value = get_attr(value, _name(_trees(step)[0]))
                elif step.data == "short_index":
                    value = get_index(value, int(str(step.children[1])))
                else:
                    value = get_index(value, _eval(_trees(step)[0], env))
            out.append(value)
        return out
    if kind == "function_call":
        return _call(parts, env)
    if kind == "conditional":
        cond, yes, no = (p for p in parts if isinstance(p, Tree))
        test = _eval(cond, env)
        if _unknown(test):
            raise _Failed("condition")
        return _eval(yes if test else no, env)
    if kind == "binary_op":
        left = _eval(parts[0], env)
        term = _trees(parts[1])
        operator = str(term[0].children[0])
        if operator == "&&" and left is False:
            return False
        if operator == "||" and left is True:
            return True
        right = _eval(term[1], env)
        if _unknown(left, right):
            raise _Failed(operator)
        return _BINARY[operator](left, right)
    if kind == "unary_op":
        operator, operand = str(parts[0]), _eval(parts[1], env)
        if _unknown(operand):
            raise _Failed(operator)
        return (not operand) if operator == "!" else -operand
    if kind == "for_tuple_expr":
        return _for(parts, env, as_object=False)
    if kind == "for_object_expr":
        return _for(parts, env, as_object=True)
    raise _Failed(kind)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "&&": lambda a, b: bool(a and b),
    "||": lambda a, b: bool(a or b),
}


def get_attr(base: Any, name: str) -> Any:
    if isinstance(base, Namespace):
        return base.attr(name)
    if isinstance(base, Unknown):
        return Unknown(f"{base.text}.{name}")
    if isinstance(base, Encoded):
        base = base.value
    if isinstance(base, dict):
        if name not in base:
            raise _Failed(name)
        return base[name]
    raise _Failed(name)


def get_index(base: Any, key: Any) -> Any:
    if isinstance(base, Unknown) or isinstance(key, Unknown):
        raise _Failed("index")
    if isinstance(base, Namespace):
        return base.attr(str(key))
    if isinstance(base, list):
        return base[int(key)]
    if isinstance(base, dict):
        return base[str(key)] if str(key) in base else base[key]
    raise _Failed("index")


def _to_text(value: Any) -> str:
    if _unknown(value):
        raise _Failed("interpolation")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Encoded):
        return _encode(value)
    if isinstance(value, dict | list) or value is None:
        raise _Failed("interpolation of a collection")
    return str(value)


def _string(parts: list[Any], env: Env) -> str:
    out = []
    for part in parts:
        if not isinstance(part, Tree):
            continue
        piece = part.children[0]
        if isinstance(piece, Token):
            if piece.type == "ESCAPED_INTERPOLATION" or piece.type == "ESCAPED_DIRECTIVE":
                out.append(str(piece)[1:])
            else:
                out.append(process_escape_sequences(str(piece)))
        elif piece.data == "interpolation":
            out.append(_to_text(_eval(_trees(piece)[0], env)))
        else:
            raise _Failed("template directive")
    return "".join(out)


_HEREDOC = re.compile(r"<<-?([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*?)[ \t]*\1\r?\n?\Z", re.S)


def _heredoc(raw: str, trim: bool, env: Env) -> str:
    match = _HEREDOC.match(raw)
    if match is None:
        raise _Failed("heredoc")
    body = match.group(2)
    if trim:
        lines = body.split("\n")
        indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
        cut = min(indents, default=0)
        body = "\n".join(line[cut:] for line in lines)
    return interpolate_template(body, env)


def interpolate_template(body: str, env: Env) -> str:
    """Resolve ${...} inside heredoc text by parsing each interpolation as an HCL expression."""
    if "%{" in body.replace("%%{", ""):
        raise _Failed("template directive")
    out: list[str] = []
    i = 0
    while i < len(body):
        start = body.find("${", i)
        if start < 0:
            out.append(body[i:])
            break
        if start > 0 and body[start - 1] == "$":
            out.append(body[i : start - 1] + "${")
            i = start + 2
            continue
        out.append(body[i:start])
        end, depth = start + 2, 1
        while end < len(body) and depth:
            depth += {"{": 1, "}": -1}.get(body[end], 0)
            end += 1
        if depth:
            raise _Failed("unterminated interpolation")
        expression = body[start + 2 : end - 1]
        try:
            out.append(_to_text(_eval(parse_expression(expression), env.child())))
        except _Failed:
            marker = f"⟦unknown{len(env.markers)}⟧"
            env.markers[marker] = " ".join(expression.split())
            out.append(marker)
        i = end
    return "".join(out).replace("%%{", "%{")


def parse_expression(text: str) -> Node:
    try:
        tree = hcl2.parses_to_tree(f"x = {text}\n")
    except (LarkError, ValueError, RuntimeError):
        raise _Failed(text) from None
    attribute = _trees(tree.children[0])[0]
    expr = attribute.children[2]
    if not isinstance(expr, Tree):
        raise _Failed(text)
    return expr


def _object(parts: list[Any], env: Env) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for elem in parts:
        if not isinstance(elem, Tree) or elem.data != "object_elem":
            continue
        key_node, _sep, value_node = elem.children
        result[_object_key(key_node, env)] = _element(value_node, env)
    return result


def _element(node: Node, env: Env) -> Any:
    """One member of an object or tuple: an unknown member does not make its siblings unknown."""
    try:
        return _eval(node, env)
    except (_Failed, TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError):
        return Unknown(node_text(node, env.source))


def _object_key(key_node: Node, env: Env) -> str:
    inner = _trees(key_node)[0]
    if inner.data == "keyword":
        return _name(inner)
    terms = _trees(inner) if inner.data == "expr_term" else []
    if len(terms) == 1 and terms[0].data == "identifier" and len(_children(inner)) == 1:
        return _name(terms[0])  # a bare word key is a literal name, not a reference
    key = _eval(inner, env)
    if _unknown(key):
        raise _Failed("object key")
    return _to_text(key)


def _for(parts: list[Any], env: Env, as_object: bool) -> Any:
    trees = [p for p in parts if isinstance(p, Tree)]
    intro = trees[0]
    intro_trees = _trees(intro)
    names = [_name(t) for t in intro_trees if t.data == "identifier"]
    collection = _eval(intro_trees[-1], env)
    if _unknown(collection):
        raise _Failed("for collection")
    collection = decoded(collection)
    pairs: list[tuple[Any, Any]] = (
        list(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
    )
    condition = trees[-1] if trees[-1].data == "for_cond" else None
    grouping = any(isinstance(p, Token) and p.type == "ELLIPSIS" for p in parts)
    body = trees[1:-1] if condition is not None else trees[1:]
    out_list: list[Any] = []
    out_map: dict[Any, Any] = {}
    for key, value in pairs:
        scope = env.child(**({names[0]: key, names[1]: value} if len(names) == 2 else {names[0]: value}))
        if condition is not None:
            test = _eval(_trees(condition)[0], scope)
            if _unknown(test):
                raise _Failed("for condition")
            if not test:
                continue
        if as_object:
            k = _to_text(_eval(body[0], scope))
            v = _eval(body[1], scope)
            if grouping:
                out_map.setdefault(k, []).append(v)
            else:
                out_map[k] = v
        else:
            out_list.append(_eval(body[0], scope))
    return out_map if as_object else out_list


def _call(parts: list[Any], env: Env) -> Any:
    trees = [p for p in parts if isinstance(p, Tree)]
    name = _name(trees[0])
    arg_nodes = _trees(trees[1]) if len(trees) > 1 else []
    expand = len(trees) > 1 and any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in trees[1].children)
    if name == "try":
        for arg in arg_nodes:
            value = evaluate(arg, env)
            if is_known(value):
                return value
        raise _Failed("try")
    if name == "can":
        return is_known(evaluate(arg_nodes[0], env))
    if name == "templatefile" and len(arg_nodes) == 2:
        path, variables = _eval(arg_nodes[0], env), decoded(_eval(arg_nodes[1], env))
        if not isinstance(path, str) or not isinstance(variables, dict):
            raise _Failed("templatefile")
        template_env = Env(_no_root_names, "", env.base_dir, dict(variables), env.markers)
        return interpolate_template(_read(env.base_dir, path), template_env)
    args = [_eval(a, env) for a in arg_nodes]
    if expand and args:
        last = decoded(args.pop())
        if _unknown(last):
            raise _Failed("expansion")
        args.extend(last)
    function = FUNCTIONS.get(name)
    if function is None:
        raise _Failed(name)
    if name in ("file", "fileexists"):
        args = [env.base_dir, *args]
    if name not in _ACCEPT_UNKNOWN and any(_unknown(a) for a in args):
        raise _Failed(name)
    if name in _ACCEPT_UNKNOWN and any(isinstance(a, Namespace) for a in args):
        raise _Failed(name)
    return function(*args)


def _encode(value: Encoded) -> str:
    if not is_known(value.value):
        raise _Failed("encode")
    if value.format == "json":
        return json.dumps(_plain(value.value), separators=(",", ":"), sort_keys=True)
    return yaml.safe_dump(_plain(value.value), sort_keys=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Encoded):
        return _encode(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _read(base: Path, name: str) -> str:
    path = Path(name)
    path = path if path.is_absolute() else base / path
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise _Failed(f"file({name})") from None


def _yamldecode(text: Any) -> Any:
    try:
        return yaml.safe_load(str(text))
    except yaml.YAMLError:
        raise _Failed("yamldecode") from None


def _jsondecode(text: Any) -> Any:
    try:
        return json.loads(str(text))
    except ValueError:
        raise _Failed("jsondecode") from None


def _merge(*maps: Any) -> Any:
    result: dict[Any, Any] = {}
    for item in maps:
        if item is None:
            continue
        item = decoded(item)
        if not isinstance(item, dict):
            raise _Failed("merge")
        result.update(item)
    return result


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    mapping = decoded(mapping)
    if _unknown(mapping, key):
        raise _Failed("lookup")
    if key in mapping:
        return mapping[key]
    if default:
        return default[0]
    raise _Failed("lookup")


def _coalesce(*values: Any) -> Any:
    for value in values:
        if _unknown(value):
            raise _Failed("coalesce")
        if value not in (None, ""):
            return value
    raise _Failed("coalesce")


def _format(spec: str, *args: Any) -> str:
    values = iter(args)

    def substitute(match: re.Match[str]) -> str:
        spec_text = match.group(0)
        if spec_text == "%%":
            return "%"
        value = next(values)
        verb = spec_text[-1]
        if verb in "dxXob":
            return (spec_text[:-1] + ("d" if verb == "b" else verb)) % int(value)
        if verb in "feg":
            return spec_text % float(value)
        if verb == "q":
            return json.dumps(_to_text(value))
        return (spec_text[:-1] + "s") % _to_text(value)

    return re.sub(r"%%|%[-+ #0-9.]*[a-zA-Z]", substitute, spec)


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _cidrsubnet(prefix: str, newbits: int, netnum: int) -> str:
    network = ipaddress.ip_network(prefix, strict=False)
    return str(list(network.subnets(prefixlen_diff=int(newbits)))[int(netnum)])


def _distinct(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _keys(mapping: Any) -> list[Any]:
    return sorted(decoded(mapping))


def _values(mapping: Any) -> list[Any]:
    mapping = decoded(mapping)
    return [mapping[k] for k in sorted(mapping)]


def _tostring(value: Any) -> str:
    return _to_text(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "merge": _merge,
    "concat": lambda *lists: [x for item in lists for x in decoded(item)],
    "lookup": _lookup,
    "format": _format,
    "join": lambda sep, items: sep.join(_to_text(i) for i in items),
    "split": lambda sep, text: text.split(sep),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "title": lambda s: s.title(),
    "replace": lambda s, old, new: s.replace(old, new),
    "trimspace": lambda s: s.strip(),
    "trimprefix": lambda s, p: s[len(p) :] if s.startswith(p) else s,
    "trimsuffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
    "substr": lambda s, offset, length: s[offset : (None if length < 0 else offset + length)],
    "length": lambda v: len(decoded(v)),
    "keys": _keys,
    "values": _values,
    "element": lambda items, i: items[i % len(items)],
    "index": lambda items, v: items.index(v),
    "slice": lambda items, a, b: _slice(items, a, b),
    "tolist": lambda v: list(v),
    "toset": lambda v: _distinct(list(v)),
    "tomap": lambda v: dict(decoded(v)),
    "tostring": _tostring,
    "tonumber": lambda v: float(v) if "." in str(v) else int(v),
    "tobool": lambda v: v if isinstance(v, bool) else {"true": True, "false": False}[v],
    "distinct": _distinct,
    "flatten": _flatten,
    "compact": lambda items: [i for i in items if i not in (None, "")],
    "contains": lambda items, v: v in decoded(items),
    "startswith": lambda s, p: s.startswith(p),
    "endswith": lambda s, p: s.endswith(p),
    "coalesce": _coalesce,
    "zipmap": lambda ks, vs: dict(zip(ks, vs, strict=True)),
    "sort": lambda items: sorted(items),
    "range": lambda *a: list(range(*a)),
    "min": lambda *a: min(a),
    "max": lambda *a: max(a),
    "abs": abs,
    "jsonencode": lambda v: Encoded(v, "json"),
    "yamlencode": lambda v: Encoded(v, "yaml"),
    "jsondecode": _jsondecode,
    "yamldecode": _yamldecode,
    "file": _read,
    "fileexists": lambda base, name: (Path(name) if Path(name).is_absolute() else base / name).is_file(),
    "basename": lambda p: Path(p).name,
    "dirname": lambda p: str(Path(p).parent),
    "cidrsubnet": _cidrsubnet,
    "regex": lambda pattern, s: _regex(pattern, s),
    "one": lambda items: (items[0] if items else None) if len(items) <= 1 else _fail("one"),
}
# Functions that look inside collections themselves (an unknown element need not spoil the result).
_ACCEPT_UNKNOWN = frozenset(
    {
        "merge",
        "concat",
        "lookup",
        "coalesce",
        "jsonencode",
        "yamlencode",
        "tolist",
        "toset",
        "tomap",
        "length",
        "compact",
        "flatten",
        "distinct",
        "one",
        "element",
        "slice",
    }
)


def _slice(items: Any, start: int, end: int) -> list[Any]:
    """A slice of an apply-time list still has a static length (e.g. the first N availability zones)."""
    if isinstance(items, Unknown) and isinstance(start, int) and isinstance(end, int):
        return [Unknown(f"{items.text}[{i}]") for i in range(start, end)]
    return list(decoded(items)[start:end])


def _fail(what: str) -> Any:
    raise _Failed(what)


def _regex(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    if match is None:
        raise _Failed("regex")
    if match.groupdict():
        return match.groupdict()
    return list(match.groups()) if match.groups() else match.group(0)


def as_mapping(value: Any) -> Mapping[str, Any]:
    value = decoded(value)
    return value if isinstance(value, dict) else {}
