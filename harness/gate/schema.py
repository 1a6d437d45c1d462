"""Validate one manifest: core kinds against kubernetes-validate's strict schemas, CRs against pinned CRDs.

Reusable outside the gate (tests of the GitOps tree):

    validator = SchemaValidator.for_reference("1.36", reference_dir())
    problems = validator.problems(manifest_dict)   # [] when valid
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from kubernetes_validate.utils import all_versions, major_minor

from harness.errors import InputError

# The Kubernetes minor manifests are validated against when a repository pins none (versions.yaml `kubernetes`).
DEFAULT_KUBERNETES = "1.36"


@dataclass(frozen=True)
class SchemaProblem:
    path: tuple[Any, ...]  # field path inside the manifest ("spec", "template", ...)
    message: str


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


@cache
def _schema_dir(kubernetes_version: str) -> str:
    """The newest bundled schema set not newer than the requested Kubernetes minor."""
    wanted = _version_key(major_minor(kubernetes_version.lstrip("v")))
    candidates = [v for v in all_versions() if _version_key(major_minor(v)) <= wanted]
    if not candidates:
        raise InputError(f"Kubernetes {kubernetes_version}: no strict schemas bundled with kubernetes-validate")
    return f"v{candidates[-1]}-local-strict"


def _read_bundled(directory: str, name: str) -> Any:
    path = resources.files("kubernetes_validate") / "kubernetes-json-schema" / directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@cache
def _definitions(directory: str) -> Any:
    """The shared definitions every core kind's schema refers to: one large file, read once."""
    return _read_bundled(directory, "_definitions.json")


@cache
def _registry(directory: str) -> referencing.Registry[Any]:
    definitions = _definitions(directory)
    resource = referencing.Resource.from_contents(definitions)
    return resource @ referencing.Registry()


_DEFINITION_REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def _inline(node: Any, definitions: Mapping[str, Any], open_refs: tuple[str, ...] = ()) -> Any:
    """The schema with definition $refs replaced by their targets (recursive types keep their $ref):
    resolving references dominates validation time otherwise."""
    if isinstance(node, list):
        return [_inline(item, definitions, open_refs) for item in node]
    if not isinstance(node, dict):
        return node
    match = _DEFINITION_REF.match(str(node.get("$ref", "")))
    rest = {key: _inline(value, definitions, open_refs) for key, value in node.items() if key != "$ref"}
    if match is None:
        return {**rest, **({"$ref": node["$ref"]} if "$ref" in node else {})}
    name = match.group(1)
    if name in open_refs or name not in definitions:  # recursive: resolved at validation time, from the registry
        return {**rest, "$ref": f"/api/_definitions.json#/$defs/{name}"}
    return {**_inline(definitions[name], definitions, (*open_refs, name)), **rest}


@cache
def _core_validator(directory: str, kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = _read_bundled(directory, f"{kind.lower()}-{group_version}.json")
    if schema is None:
        return None
    definitions = (_definitions(directory) or {}).get("$defs", {})
    return jsonschema.Draft202012Validator(_inline(schema, definitions), registry=_registry(directory))


_draft7_properties = jsonschema.Draft7Validator.VALIDATORS["properties"]


def _strict_properties(
    validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """`properties`, and reject fields it does not list (the API server would silently prune them)."""
    yield from _draft7_properties(validator, properties, instance, schema)
    if (
        validator.is_type(instance, "object")
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        extra = sorted(set(instance) - set(properties))
        if extra:
            yield jsonschema.ValidationError(f"unknown field(s) {', '.join(map(repr, extra))}")


# CRD openAPIV3Schema with unknown fields rejected; `metadata` is ObjectMeta (SchemaValidator checks it apart).
StrictCrdValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"properties": _strict_properties})


class SchemaValidator:
    """Validates manifests for one Kubernetes version and one set of CRD schemas."""

    def __init__(
        self,
        kubernetes_version: str,
        crd_schemas: Mapping[tuple[str, str, str], Mapping[str, Any]],
        cache: dict[Any, Any] | None = None,
    ) -> None:
        self.kubernetes_version = kubernetes_version
        self.directory = _schema_dir(kubernetes_version)
        self.crd_schemas = crd_schemas
        # CRD validators are costly to build; a caller checking many times passes a cache that lives as long as
        # the schemas do.
        self._crd_validators: dict[Any, Any] = {} if cache is None else cache

    @classmethod
    def for_reference(cls, kubernetes_version: str, reference: Path) -> SchemaValidator:
        from harness.gate.loaders import load_reference

        loaded = load_reference(reference)
        return cls(kubernetes_version, loaded.crd_schemas, loaded.validators)

    def _validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        group, _, version = api_version.rpartition("/")
        key = (group, version, kind)
        if key in self.crd_schemas:
            if key not in self._crd_validators:
                self._crd_validators[key] = StrictCrdValidator(self.crd_schemas[key])
            validator: jsonschema.protocols.Validator = self._crd_validators[key]
            return validator
        return _core_validator(self.directory, kind, api_version)

    def problems(self, manifest: Mapping[str, Any]) -> list[SchemaProblem]:
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
            return [SchemaProblem((), "not a Kubernetes object (apiVersion and kind are required strings)")]
        validator = self._validator(api_version, kind)
        if validator is None:
            return [
                SchemaProblem(
                    ("kind",),
                    f"unknown kind {kind} in {api_version}: no schema in Kubernetes {self.kubernetes_version} "
                    "and no pinned CRD defines it",
                )
            ]
        errors = sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(map(str, e.absolute_path)))
        problems = [SchemaProblem(tuple(e.absolute_path), _message(e)) for e in errors]
        return problems + self._metadata_problems(api_version, kind, manifest.get("metadata"))

    def _metadata_problems(self, api_version: str, kind: str, metadata: Any) -> list[SchemaProblem]:
        """A CRD declares `metadata` as a bare object; the API server still reads it as ObjectMeta, so a custom
        resource's metadata is checked against ObjectMeta too (a `lables` typo would be pruned, unnoticed)."""
        group, _, version = api_version.rpartition("/")
        carrier_validator = _core_validator(self.directory, "ConfigMap", "v1")
        if (group, version, kind) not in self.crd_schemas or carrier_validator is None:
            return []
        carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata or {}}
        errors = sorted(carrier_validator.iter_errors(carrier), key=lambda e: list(map(str, e.absolute_path)))
        return [SchemaProblem(tuple(e.absolute_path), _message(e)) for e in errors if e.absolute_path]


def _message(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(document)"
    return f"{where}: {error.message}"
