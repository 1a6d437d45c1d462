"""The last step of a pod's container start on the local target, run inside the pod's fresh mount and UTS
namespaces (`unshare`, in the pod's network namespace): the container's root filesystem, its mounts, its hostname,
then the container's own command in place of this process (same pid, so the kubelet's signals reach it).

The root is this machine's root seen through an overlay (what the container writes stays in the pod's layer), with
its own /tmp, /run and empty home folders (an image has none of the host's), the image's files (the toolchain's
build of the image's binary, at the image's path) and the pod's volumes at their mount paths.

`python -m harness.targets.pod_enter SPEC` (SPEC: the JSON that harness.targets.kubelet writes).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# Folders of this machine a container does not see as they are: each gets an empty one of its own.
PRIVATE = ("tmp", "run", "root", "home")
# Kernel file systems the container sees as this machine's (no pid namespace: its /proc is the host's).
SHARED = ("dev", "proc", "sys")
STAGING = ".kubelet"  # where the mounts wait between the host's view and the container's


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {done.stderr.strip()}")


def build_root(root: Path, layer: Path) -> None:
    layer.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "tmpfs", str(layer))
    for part in ("upper", "work"):
        (layer / part).mkdir()
    mount(
        "-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={layer / 'upper'},workdir={layer / 'work'}", str(root)
    )
    for name in SHARED:
        mount("--rbind", f"/{name}", str(root / name))
    for name in PRIVATE:
        if (root / name).is_dir() and not (root / name).is_symlink():
            mount("-t", "tmpfs", "tmpfs", str(root / name))


def stage(root: Path, mounts: list[dict[str, Any]]) -> None:
    """Each mount's host source bound under the root's staging folder (a plain path: no symlink of the image's
    can lead it out of the root)."""
    staging = root / STAGING
    staging.mkdir()
    for index, spec in enumerate(mounts):
        target = staging / str(index)
        if Path(spec["source"]).is_dir():
            target.mkdir()
        else:
            target.touch()
        mount("--bind", spec["source"], str(target))


def place(mounts: list[dict[str, Any]]) -> None:
    """Inside the root: each staged mount moved to its path (created as the container runtime would)."""
    for index, spec in enumerate(mounts):
        staged, target = Path("/", STAGING, str(index)), Path(spec["target"])
        if staged.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.touch()
        mount("--move", str(staged), str(target))
        if spec.get("read_only"):
            mount("-o", "remount,bind,ro", str(target))


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    root, mounts = Path(spec["root"]), spec["mounts"]
    try:
        mount("--make-rprivate", "/")
        build_root(root, Path(spec["layer"]))
        stage(root, mounts)
        os.chroot(root)
        os.chdir("/")
        place(mounts)
        socket.sethostname(spec["hostname"])
        os.chdir(spec.get("working_dir") or "/")
    except OSError as exc:
        print(f"pod sandbox: {exc}", file=sys.stderr)
        return 128
    env = dict(spec["env"])
    try:
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except OSError as exc:  # what a runtime reports as the container's start error
        print(f"exec {spec['argv'][0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
