"""Helm values a helm_release passes: `values` documents merged in order, then `set` entries on top."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.gate.hcl import Unknown, decoded
from harness.gate.model import HelmValues, Location, TfResource


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `extra` into `base` in place, as Helm merges values files: maps recursively, anything else replaced."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def set_path(name: str) -> tuple[str, ...]:
    """Helm --set key syntax: dots separate levels, `\\.` is a literal dot."""
    return tuple(part.replace("\0", ".") for part in name.replace("\\.", "\0").split("."))


def _walk_keys(value: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.extend(_walk_keys(item, (*prefix, str(key))))
    return paths


def helm_values(release: TfResource) -> HelmValues:
    values: dict[str, Any] = {}
    sources: dict[tuple[str, ...], Location] = {}
    documents = decoded(release.attrs.get("values"))
    values_location = Location(release.file, release.line_of("values"))
    for document in documents if isinstance(documents, list) else []:
        document = decoded(document)
        if isinstance(document, dict):
            deep_merge(values, document)
            for path in _walk_keys(document, ()):
                sources[path] = values_location
    for attribute in ("set", "set_sensitive", "set_list"):
        entries = decoded(release.attrs.get(attribute))
        location = Location(release.file, release.line_of(attribute))
        for entry in entries if isinstance(entries, list) else []:
            entry = decoded(entry)
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            path = set_path(entry["name"])
            target = values
            for part in path[:-1]:
                nested = target.get(part)
                target = target.setdefault(part, {}) if not isinstance(nested, dict) else nested
                if not isinstance(target, dict):
                    break
            value = entry.get("value", Unknown(entry["name"]))
            if attribute == "set_list":
                value = decoded(value)
            target[path[-1]] = value
            for end in range(1, len(path) + 1):
                sources[path[:end]] = location
    return HelmValues(values, sources)


def lookup(values: dict[str, Any], *path: str) -> Any:
    value: Any = values
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
