"""`harness pin-image`: turn the images pinned in versions.yaml from tags into digests, everywhere at once.

The registry is asked what each tag points at now; the answer is checked (a manifest format EKS nodes can
pull, a build for every architecture the NodePools allow, bytes that match the digest) before versions.yaml
and the manifests that use the image are rewritten together. Nothing is written unless every image
resolves.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.errors import InputError
from harness.gate.loaders import yaml_documents, yaml_files
from harness.images.reference import Resolved, missing_platforms, parse_reference
from harness.images.registry_client import RegistryClient
from harness.project import read_yaml, repo_root

ARCH_LABEL = "kubernetes.io/arch"
DEFAULT_ARCHITECTURES = ("amd64",)  # what EKS nodes are when no NodePool narrows it


@dataclass
class Pin:
    key: str
    old: str
    new: str
    resolved: Resolved
    files: list[Path] = field(default_factory=list)


def node_architectures(documents: Iterable[Any]) -> set[str]:
    """Every CPU architecture a NodePool may launch (its `kubernetes.io/arch In [...]` requirements)."""
    found: set[str] = set()
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") != "NodePool":
            continue
        requirements = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("requirements")
        for requirement in requirements or []:
            if (
                isinstance(requirement, dict)
                and requirement.get("key") == ARCH_LABEL
                and requirement.get("operator") == "In"
            ):
                found.update(str(value) for value in requirement.get("values") or [])
    return found


def replace_value(text: str, keys: Sequence[str], old: str, new: str) -> tuple[str, int]:
    """Replace `key: old` (optionally quoted, optionally a list item, comments kept) on every line."""
    pattern = re.compile(
        rf"^(?P<lead>[ \t]*(?:-[ \t]+)?(?:{'|'.join(re.escape(k) for k in keys)}):[ \t]*)"
        rf"(?P<quote>[\"']?){re.escape(old)}(?P=quote)(?P<tail>[ \t]*(?:#.*)?)$",
        re.MULTILINE,
    )
    return pattern.subn(lambda m: f"{m['lead']}{m['quote']}{new}{m['quote']}{m['tail']}", text)


def _documents(path: Path, text: str) -> list[Any]:
    """The gate's YAML reading: file:line errors, duplicate keys and alias bombs refused alike."""
    return [document for document, _line, _lines in yaml_documents(path, text)]


def write_files(contents: dict[Path, str]) -> None:
    """Each file is replaced whole (temp file + rename), after every new text has been made."""
    staged: list[tuple[Path, str]] = []
    try:
        for path, text in contents.items():
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temp, path.stat().st_mode & 0o777)
            staged.append((path, temp))
        for path, temp in staged:
            os.replace(temp, path)
    finally:
        for _path, temp in staged:
            if os.path.exists(temp):
                os.unlink(temp)


def plan_pins(root: Path, keys: Sequence[str] | None, registry: RegistryClient) -> tuple[list[Pin], dict[Path, str]]:
    """What to pin and the new text of every file that changes; asks the registry, writes nothing."""
    versions_file = root / "versions.yaml"
    pins_in_file = read_yaml(versions_file)
    if not isinstance(pins_in_file, dict):
        raise InputError(f"{versions_file}: expected a mapping of name: version")
    image_keys = [k for k in pins_in_file if str(k).endswith("_image")]
    for key in keys or ():
        if key not in image_keys:
            raise InputError(f"{versions_file}: no image pin named {key!r} (image pins: {', '.join(image_keys)})")
    chosen = list(keys) if keys else image_keys
    if not chosen:
        raise InputError(f"{versions_file}: no *_image entries to pin")

    gitops = root / "gitops"
    manifests = {path: path.read_text(encoding="utf-8") for path in yaml_files(gitops)} if gitops.is_dir() else {}
    architectures = node_architectures(doc for path, text in manifests.items() for doc in _documents(path, text))
    architectures = architectures or set(DEFAULT_ARCHITECTURES)

    pins: list[Pin] = []
    for key in chosen:
        old = pins_in_file[key]
        if not isinstance(old, str):
            raise InputError(f"{versions_file}: {key} must be an image reference string")
        ref = parse_reference(old)
        resolved = registry.resolve(ref, old)
        if missing := missing_platforms(resolved, architectures):
            have = ", ".join(sorted(resolved.platforms)) or "none recorded"
            raise InputError(
                f"image {old}: no build for {', '.join(missing)}, which the NodePools under "
                f"{gitops} may launch (image has: {have})"
            )
        pins.append(Pin(key, old, ref.pinned(resolved.digest), resolved))

    contents: dict[Path, str] = {}
    versions_text = versions_file.read_text(encoding="utf-8")
    for pin in pins:
        if pin.new == pin.old:
            continue
        versions_text, count = replace_value(versions_text, [pin.key], pin.old, pin.new)
        if count != 1:
            raise InputError(f"{versions_file}: cannot find the line `{pin.key}: {pin.old}` to rewrite")
        pin.files.append(versions_file)
        for path, text in manifests.items():
            text, count = replace_value(contents.get(path, text), ["image"], pin.old, pin.new)
            if count:
                contents[path] = text
                pin.files.append(path)
    if any(pin.new != pin.old for pin in pins):
        contents[versions_file] = versions_text
    for path, text in contents.items():  # the rewrite must leave every file valid YAML
        _documents(path, text)
    return pins, contents


def run(args: argparse.Namespace) -> int:
    root = repo_root()
    pins, contents = plan_pins(root, args.key, RegistryClient())
    console = Console(highlight=False, soft_wrap=True)
    for pin in pins:  # one line each, so the digest can be copied whole
        where = ", ".join(str(path.relative_to(root)) for path in pin.files) or "unchanged"
        platforms = ", ".join(sorted(pin.resolved.platforms))
        console.print(f"{pin.key}: {pin.new} ({platforms}; {where})", markup=False)
        if pin.new != pin.old and pin.files == [root / "versions.yaml"]:
            console.print(
                f"note: no manifest under gitops/ uses {pin.old}; `harness check` (EKS016) compares them", markup=False
            )
    if args.dry_run:
        console.print("dry run: nothing written")
        return 0
    write_files(contents)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pin-image",
        help="pin versions.yaml images (and the manifests using them) to registry digests",
        description="Ask each image's registry for the digest its tag points at, check nodes can run it, and "
        "write name:tag@digest into versions.yaml and every gitops/ manifest using it. Needs "
        "access to the registry; writes nothing unless every image resolves.",
    )
    parser.add_argument(
        "--key",
        action="append",
        metavar="KEY",
        help="only this versions.yaml entry (repeatable; default: every *_image)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.set_defaults(func=run)
