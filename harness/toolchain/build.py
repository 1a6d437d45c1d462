"""Build the toolchain's binaries into a per-user cache, keyed by version and the wrapper's go.mod/go.sum.

A cache entry is `<cache>/<component>/<version>-<key>/` with the binaries and a manifest.json (binary,
version it reports, sha256, size). Builds are idempotent (a current entry is not rebuilt), serialized
per component by a lock, and atomic: binaries are built into a temporary folder that is renamed into
place only once every binary runs and reports the pinned version.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentProblem, InputError
from harness.project import repo_root, versions
from harness.toolchain.components import BINARIES, COMPONENTS, Binary, BuildFacts, Component, check_pins

CACHE_ENV = "HARNESS_TOOLCHAIN_CACHE"
MANIFEST = "manifest.json"
DATA_DIR = "data"
BUILD_LOG = "build.log"
VERSION_TIMEOUT_S = 30

# What `go` prints when the module proxy (or the network to it) cannot serve a module: module@version, reason.
_PROXY_FAILURE = re.compile(
    r"(?P<module>[\w.\-~/]+)@(?P<version>v[\w.+\-]+): (?:reading|verifying|Get|invalid version|unrecognized)[^\n]*?"
    r"(?P<reason>\d{3} [A-Za-z ]+|connection refused|no such host|i/o timeout|network is unreachable"
    r"|module lookup disabled|not found|checksum mismatch|dial tcp[^\n]*)",
)
_GO_VERSION = re.compile(r"go(\d+)\.(\d+)(?:\.(\d+))?")


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """$HARNESS_TOOLCHAIN_CACHE, else $XDG_CACHE_HOME/eks-platform/toolchain, else ~/.cache/...: never the checkout."""
    env = os.environ if env is None else env
    if explicit := env.get(CACHE_ENV):
        return Path(explicit)
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path(env.get("HOME", Path.home())) / ".cache"
    return base / "eks-platform" / "toolchain"


def toolchain_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "toolchain"


def parse_go_version(text: str) -> tuple[int, int, int]:
    match = _GO_VERSION.search(text)
    if not match:
        raise EnvironmentProblem(f"cannot read the Go version from {text.strip()!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def required_go(go_mod: str) -> tuple[int, int, int]:
    match = re.search(r"^go (\d+)\.(\d+)(?:\.(\d+))?\s*$", go_mod, re.MULTILINE)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else (1, 0, 0)


def proxy_failure(output: str) -> str | None:
    """One line naming the module the Go module proxy could not serve, or None when that is not the failure."""
    match = _PROXY_FAILURE.search(output)
    if not match:
        return None
    return f"the Go module proxy could not serve {match['module']}@{match['version']} ({match['reason'].strip()})"


@dataclass(frozen=True)
class Go:
    path: str
    version: tuple[int, int, int]

    @property
    def label(self) -> str:
        return "go" + ".".join(map(str, self.version))


def with_pinned_go(env: Mapping[str, str], pins: Mapping[str, str]) -> dict[str, str]:
    """`env` with GOTOOLCHAIN set to versions.yaml `go_toolchain`, unless the user chose one: the go command then
    fetches that approved release from the module proxy when the installed Go is older than a wrapper needs."""
    chosen = dict(env)
    if pins.get("go_toolchain") and not chosen.get("GOTOOLCHAIN"):
        chosen["GOTOOLCHAIN"] = f"go{pins['go_toolchain']}"
    return chosen


def find_go(required: tuple[int, int, int], env: Mapping[str, str] | None = None) -> Go:
    """The `go` command on PATH, refusing a missing or too old one with the fix in one line."""
    env = dict(os.environ if env is None else env)
    want = ".".join(map(str, required[:2] if required[2] == 0 else required))
    path = shutil.which("go", path=env.get("PATH"))
    if path is None:
        raise EnvironmentProblem(f"go: not found on PATH; the toolchain is built from Go modules: install Go {want}+")
    try:
        out = subprocess.run(
            [path, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, env=env, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"{path}: cannot run ({exc})") from None
    version = parse_go_version(out)
    if version < required:
        raise EnvironmentProblem(
            f"{path} is go{'.'.join(map(str, version))}; the toolchain needs Go {want} or newer "
            "(or set GOTOOLCHAIN so go fetches it)"
        )
    return Go(path, version)


def go_for(entries: list[Entry]) -> Go:
    """The Go that can build every one of `entries` (the newest `go` line of their wrappers; see find_go), with
    GOTOOLCHAIN pinned in this process's environment for every go command of the build, stamps included."""
    os.environ.update(with_pinned_go(os.environ, versions()))
    return find_go(max(required_go((e.wrapper / "go.mod").read_text(encoding="utf-8")) for e in entries))


@dataclass(frozen=True)
class Entry:
    """One component's cache entry for the pinned version and the wrapper's current go.mod/go.sum."""

    component: Component
    version: str
    key: str
    path: Path
    wrapper: Path  # toolchain/<component>: the Go module it is built from

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def binary(self, name: str) -> Path:
        return self.path / name

    def data(self, relative: str) -> Path:
        return self.path / DATA_DIR / relative


def entry_for(component: Component, root: Path | None = None, cache: Path | None = None) -> Entry:
    """Where the pinned build of `component` lives (whether or not it is built yet)."""
    tc = toolchain_dir(root)
    version = check_pins(component, tc, versions(root))
    # What is built and copied is part of the key; the stamps are checked after every build instead.
    digest = hashlib.sha256(repr((component.name, component.packages(), component.copied)).encode())
    for name in ("go.mod", "go.sum"):
        path = tc / component.name / name
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror}); run `go mod tidy` in {path.parent.name}") from None
    key = digest.hexdigest()[:12]
    folder = (cache or cache_root()) / component.name / f"{version}-{key}"
    return Entry(component, version, key, folder, tc / component.name)


def read_manifest(entry: Entry) -> dict[str, object] | None:
    try:
        data = json.loads(entry.manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_data(path: Path) -> str:
    """A data file's sha256; for a folder (a chart, a CRD set), the sha256 of its files' paths and sha256s."""
    if not path.is_dir():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("".join(f"{p.relative_to(path)}\0{sha256_file(p)}\n" for p in files).encode()).hexdigest()


def entry_problem(entry: Entry, *, deep: bool = False) -> str | None:
    """Why `entry` cannot be trusted ('not built', a corrupt binary), or None when it is complete.

    The quick check compares size and mtime with the manifest; `deep` re-hashes every binary.
    """
    manifest = read_manifest(entry)
    if manifest is None:
        return "not built" if not entry.path.exists() else f"no readable {MANIFEST} in {entry.path}"
    recorded = manifest.get("binaries")
    if not isinstance(recorded, dict) or set(recorded) != {b.name for b in entry.component.binaries}:
        return f"{entry.manifest_path} does not list this component's binaries"
    for name, facts in recorded.items():
        path = entry.binary(name)
        try:
            stat = path.stat()
        except OSError:
            return f"{path} is missing"
        if stat.st_size != facts.get("size") or stat.st_mtime_ns != facts.get("mtime_ns"):
            return f"{path} changed since it was built (size or time differs from {MANIFEST})"
        if deep and sha256_file(path) != facts.get("sha256"):
            return f"{path} does not match the sha256 in {MANIFEST}"
    data = manifest.get("data") or {}
    if not isinstance(data, dict) or set(data) != set(entry.component.copied):
        return f"{entry.manifest_path} does not list this component's data files"
    for relative, digest in data.items():
        path = entry.data(relative)
        if not path.exists() or (deep and sha256_data(path) != digest):
            return f"{path} is missing or does not match the sha256 in {MANIFEST}"
    return None


@contextmanager
def component_lock(folder: Path) -> Iterator[None]:
    """Serialize builds of one component across processes: a second builder waits, then finds it built."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stale_entries(entries: Sequence[Entry]) -> list[Path]:
    """Cached builds of these components other than their current entry: older pins or wrappers, which nothing of
    this checkout runs (a build in progress and the lock are dot-files, never listed)."""
    current = {entry.path for entry in entries}
    folders = {entry.path.parent for entry in entries}
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path not in current
    )


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def prune(entries: Sequence[Entry]) -> list[tuple[Path, int]]:
    """Remove the stale builds of these components (each under its component's build lock): (path, bytes) each."""
    removed = []
    for folder in sorted({entry.path.parent for entry in entries}):
        with component_lock(folder):
            for path in stale_entries([e for e in entries if e.path.parent == folder]):
                size = folder_bytes(path)
                shutil.rmtree(path)
                removed.append((path, size))
    return removed


def _go_env(go: Go) -> dict[str, str]:
    env = dict(os.environ)
    # -mod=readonly: the committed go.mod/go.sum are the whole truth, a build never resolves anything new.
    env["GOFLAGS"] = " ".join(filter(None, (env.get("GOFLAGS", ""), "-mod=readonly")))
    env["CGO_ENABLED"] = "0"  # static binaries, as upstream releases them; no C toolchain needed
    env["PATH"] = os.pathsep.join((str(Path(go.path).parent), env.get("PATH", "")))
    return env


def _run_go(go: Go, args: list[str], cwd: Path, log: Path | None = None) -> str:
    """Run go; on failure one line naming the module the proxy could not serve, or the log to read."""
    try:
        proc = subprocess.run([go.path, *args], cwd=cwd, env=_go_env(go), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise EnvironmentProblem(f"{go.path}: cannot run ({exc})") from None
    if log is not None:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ go {' '.join(args)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode == 0:
        return proc.stdout
    where = f"toolchain/{cwd.name}"
    output = proc.stderr + proc.stdout  # `go mod download -json` reports its errors in the JSON on stdout
    if reason := proxy_failure(output):
        raise EnvironmentProblem(f"{where}: {reason}; check GOPROXY and the network, then run `make toolchain` again")
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
    more = f"; full log: {log}" if log is not None else ""
    raise EnvironmentProblem(f"{where}: go {args[0]} failed: {last.strip()}{more}")


def build_facts(go: Go, entry: Entry, log: Path) -> BuildFacts:
    module = f"{entry.component.module}@v{entry.version}"
    info = json.loads(_run_go(go, ["mod", "download", "-json", module], entry.wrapper, log))
    listed = _run_go(go, ["list", "-m", "-f", "{{.Path}} {{.Version}}", "all"], entry.wrapper, log)
    dependencies = dict(line.split(" ", 1) for line in listed.splitlines() if " " in line)
    return BuildFacts(entry.version, _module_time(info), dependencies, Path(str(info.get("Dir", ""))))


def _module_time(download: Mapping[str, object]) -> str:
    """The pinned module's commit time: `go mod download -json` prints it only when it fetched the module, so a
    module already in the cache is read from its .info file."""
    if download.get("Time"):
        return str(download["Time"])
    try:
        return str(json.loads(Path(str(download.get("Info", ""))).read_text(encoding="utf-8")).get("Time", ""))
    except (OSError, ValueError):
        return ""


def reported_version(go: Go, binary: Binary, path: Path) -> str:
    """The version `path` reports: its own version command, or the stamp in its Go build info."""
    command = [str(path), *binary.version_args] if binary.version_args else [go.path, "version", "-m", str(path)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"{path}: does not run ({exc})") from None
    match = re.search(binary.version_pattern, proc.stdout + proc.stderr)
    if not match:
        raise EnvironmentProblem(f"{path}: reports no version (`{' '.join(command[1:])}` printed nothing that matches)")
    return match.group(1)


def default_output_name(package: str) -> str:
    """The file name `go build -o DIR/` gives a main package: its last path element, less a /vN suffix."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def build_entry(go: Go, entry: Entry) -> dict[str, object]:
    """Build `entry` into a temporary folder beside it, verify, write its manifest, then rename it into place."""
    component = entry.component
    staging = entry.path.parent / f".building-{entry.path.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    try:
        log = staging / BUILD_LOG
        facts = build_facts(go, entry, log)
        args = ["build", "-trimpath", "-ldflags", component.ldflags(facts), "-o", f"{staging}{os.sep}"]
        _run_go(go, [*args, *component.packages()], entry.wrapper, log)
        binaries: dict[str, dict[str, object]] = {}
        main = component.binaries[0]
        for binary in component.binaries:
            target = staging / binary.name
            if binary.package:
                (staging / default_output_name(binary.package)).rename(target)
            else:  # an alias: the binary dispatches on the name it is started under (Argo CD)
                target.symlink_to(main.name)
        data: dict[str, str] = {}
        for relative in component.copied:
            source, copy = facts.module_dir / relative, staging / DATA_DIR / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                if source.is_dir():
                    shutil.copytree(source, copy)
                else:
                    shutil.copyfile(source, copy)
                    if source.read_bytes().startswith(b"#!"):  # module zips keep no file modes: a script the
                        copy.chmod(0o755)  # binary runs needs the x bit it has in upstream's image
            except OSError as exc:
                raise EnvironmentProblem(
                    f"{component.module}@v{entry.version} has no {relative} ({exc.strerror})"
                ) from None
            data[relative] = sha256_data(copy)
        main_reports = reported_version(go, main, staging / main.name)
        for binary in component.binaries:
            target = staging / binary.name
            stat = target.stat()
            reported = main_reports if binary is main or not binary.package else reported_version(go, binary, target)
            if reported != entry.version:
                raise EnvironmentProblem(
                    f"{target.name} reports version {reported}, pinned {entry.version}: its version stamp did not apply"
                )
            binaries[binary.name] = {
                "sha256": sha256_file(target),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "reported_version": reported,
                "alias_of": "" if binary.package else main.name,
            }
        manifest: dict[str, object] = {
            "component": component.name,
            "module": component.module,
            "version": entry.version,
            "key": entry.key,
            "go": go.label,
            "build_seconds": round(time.monotonic() - started, 1),
            "binaries": binaries,
            "data": data,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(entry.path, ignore_errors=True)  # a corrupt or half-written entry of the same key
        staging.rename(entry.path)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_built(go: Go, entry: Entry) -> dict[str, object] | None:
    """Build `entry` unless it is current; None when it was (or another process built it meanwhile)."""
    with component_lock(entry.path.parent):
        for leftover in entry.path.parent.glob(".building-*"):  # an interrupted build's; never trusted
            shutil.rmtree(leftover, ignore_errors=True)
        if entry_problem(entry) is None:
            return None
        return build_entry(go, entry)


def require_built(entry: Entry) -> Entry:
    """`entry` when it is complete, else one line saying how to build it and what that costs."""
    problem = entry_problem(entry)
    if problem is not None:
        component = entry.component
        raise EnvironmentProblem(
            f"{component.name} {entry.version}: {problem}; run `make toolchain` "
            f"(one-time, about {component.cold_minutes} min on 2 cores for this component)"
        )
    return entry


def shipped_data(root: Path | None = None, cache: Path | None = None) -> dict[str, Path]:
    """Component name -> the data folder of its current build, for the components whose pinned module ships a
    chart, IAM policy or CRDs (`Component.ships`); a component not built yet is left out."""
    found = {}
    for component in COMPONENTS:
        entry = entry_for(component, root, cache)
        if component.ships and entry_problem(entry) is None:
            found[component.name] = entry.path / DATA_DIR
    return found


def locate(name: str, root: Path | None = None, cache: Path | None = None) -> Path:
    """The built binary `name` for the pinned versions (see require_built for what a missing one says)."""
    if name not in BINARIES:
        raise InputError(f"unknown toolchain binary {name!r} (known: {', '.join(sorted(BINARIES))})")
    return require_built(entry_for(BINARIES[name], root, cache)).binary(name)


def components_of(names: Sequence[str]) -> list[Component]:
    """The components that build the binaries `names`, each once, in the order first named."""
    return list(dict.fromkeys(BINARIES[name] for name in names))


def missing(names: list[str], root: Path | None = None, cache: Path | None = None) -> str | None:
    """A one-line reason when any of `names` is not built (for a skip): which, and the one-time cost; else None."""
    unknown = [name for name in names if name not in BINARIES]
    if unknown:
        raise InputError(f"unknown toolchain binary {', '.join(unknown)} (known: {', '.join(sorted(BINARIES))})")
    unbuilt = [c for c in components_of(names) if entry_problem(entry_for(c, root, cache)) is not None]
    if not unbuilt:
        return None
    minutes = sum(c.cold_minutes for c in unbuilt)
    return (
        f"toolchain not built: {', '.join(c.name for c in unbuilt)}; run `make toolchain` "
        f"(one-time, about {minutes} min on 2 cores)"
    )
