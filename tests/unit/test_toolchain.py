"""The toolchain builder, on this repo's wrapper modules and on a real `go build` of a small module served
by a file:// module proxy made in the test (so cache, lock, atomicity and stamps are exercised for real)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from go_proxy import HELLO, needs_go

from harness.cli import main
from harness.errors import EnvironmentProblem, InputError
from harness.processes import free_port
from harness.project import repo_root, versions
from harness.toolchain import build
from harness.toolchain.components import (
    COMPONENTS,
    KUBERNETES,
    BuildFacts,
    Component,
    check_pins,
    select,
    wrapper_pins,
)

# --- this repository's wrappers ---------------------------------------------------------------------------


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_every_wrapper_requires_the_version_pinned_in_versions_yaml(component: Component) -> None:
    version = check_pins(component, repo_root() / "toolchain", versions())
    assert version == versions()[component.version_key]
    assert (repo_root() / "toolchain" / component.name / "go.sum").is_file()


def test_a_wrapper_that_disagrees_with_versions_yaml_is_one_line_naming_both(tmp_path: Path) -> None:
    wrapper = tmp_path / "kubernetes"
    wrapper.mkdir()
    text = (repo_root() / "toolchain" / "kubernetes" / "go.mod").read_text(encoding="utf-8")
    pinned = versions()["kubernetes_release"]
    (wrapper / "go.mod").write_text(text.replace(f"k8s.io/kubernetes v{pinned}", "k8s.io/kubernetes v1.30.0"))
    with pytest.raises(InputError, match=r"go.mod: requires k8s.io/kubernetes v1.30.0, versions.yaml pins "):
        check_pins(KUBERNETES, tmp_path, versions())


def test_a_wrapper_without_a_tool_line_for_a_binary_is_refused(tmp_path: Path) -> None:
    wrapper = tmp_path / "kubernetes"
    wrapper.mkdir()
    text = (repo_root() / "toolchain" / "kubernetes" / "go.mod").read_text(encoding="utf-8")
    (wrapper / "go.mod").write_text(text.replace("\tk8s.io/kubernetes/cmd/kubectl\n", ""))
    with pytest.raises(InputError, match=r"no `tool` line for k8s\.io/kubernetes/cmd/kubectl"):
        check_pins(KUBERNETES, tmp_path, versions())


def test_wrapper_pins_reads_blocks_single_lines_and_indirect_requirements() -> None:
    requires, tools = wrapper_pins(
        "module m\n\ngo 1.26\n\ntool a.test/x/cmd/one\n\ntool (\n\ta.test/x/cmd/two\n)\n\n"
        "require b.test/y v1.2.3\n\nrequire (\n\tc.test/z v0.1.0 // indirect\n)\n\n"
        "replace c.test/z => c.test/z v0.1.1\n"
    )
    assert requires == {"b.test/y": "v1.2.3", "c.test/z": "v0.1.0"}
    assert tools == ["a.test/x/cmd/one", "a.test/x/cmd/two"]


def test_select_refuses_an_unknown_component() -> None:
    assert [c.name for c in select(["etcd", "kubernetes"])] == ["kubernetes", "etcd"]
    with pytest.raises(
        InputError, match=r"unknown toolchain component nope \(known: kubernetes, kubernetes-upgrade-from, etcd"
    ):
        select(["nope"])


# --- stamps -------------------------------------------------------------------------------------------------


def test_kubernetes_is_stamped_on_both_version_packages() -> None:
    flags = KUBERNETES.ldflags(BuildFacts("1.35.4", "2026-04-15T00:00:00Z", {}))
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.35.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=35" in flags
    assert flags.startswith("-s -w ")


def test_helm_capabilities_follow_the_client_go_it_is_built_with() -> None:
    helm = select(["helm"])[0]
    flags = helm.ldflags(BuildFacts("3.19.4", "", {"k8s.io/client-go": "v0.34.2"}))
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34" in flags
    assert "-X helm.sh/helm/v3/internal/version.version=v3.19.4" in flags
    with pytest.raises(InputError, match=r"no k8s\.io/client-go version"):
        helm.ldflags(BuildFacts("3.19.4", "", {}))


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("go.etcd.io/etcd/server/v3", "server"),
        ("k8s.io/kubernetes/cmd/kubectl", "kubectl"),
        ("sigs.k8s.io/kustomize/kustomize/v5", "kustomize"),
        ("sigs.k8s.io/aws-load-balancer-controller", "aws-load-balancer-controller"),
    ],
)
def test_default_output_name_matches_go_build(package: str, name: str) -> None:
    assert build.default_output_name(package) == name


# --- Go itself -----------------------------------------------------------------------------------------------


def test_missing_go_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=r"go: not found on PATH; .* install Go 1\.26\+"):
        build.find_go((1, 26, 0), env={"PATH": str(tmp_path)})


def test_too_old_go_is_refused_with_the_version_needed(tmp_path: Path) -> None:
    # A fake: this machine's Go cannot be made old. It answers `go env GOVERSION` as Go 1.20 would.
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho go1.20.14\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(EnvironmentProblem, match=r"is go1\.20\.14; the toolchain needs Go 1\.26\.6 or newer"):
        build.find_go((1, 26, 6), env={"PATH": str(tmp_path)})


@needs_go
def test_this_machines_go_is_accepted() -> None:
    assert build.find_go((1, 0, 0)).version >= (1, 0, 0)


# --- a real build through a file:// module proxy --------------------------------------------------------------


def _entry(repo: Path, cache: Path, component: Component = HELLO) -> build.Entry:
    return build.entry_for(component, repo, cache)


def test_build_stamps_verifies_and_records_the_binary(hello_repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    entry = _entry(hello_repo, cache)
    assert build.entry_problem(entry) == "not built"
    manifest = build.ensure_built(build.find_go((1, 22, 0)), entry)
    assert manifest is not None
    facts = manifest["binaries"]["hello"]  # type: ignore[index]
    assert facts["reported_version"] == "1.0.0"
    assert facts["sha256"] == build.sha256_file(entry.binary("hello"))
    assert build.entry_problem(entry, deep=True) is None
    assert subprocess.run([entry.binary("hello"), "--version"], capture_output=True, text=True).stdout.strip() == (
        "hello version 1.0.0"
    )
    assert not list(entry.path.parent.glob(".building-*"))
    # Idempotent: a current entry is not rebuilt.
    assert build.ensure_built(build.find_go((1, 22, 0)), entry) is None


def test_the_cache_key_follows_go_sum(hello_repo: Path, tmp_path: Path) -> None:
    before = _entry(hello_repo, tmp_path / "cache")
    go_sum = hello_repo / "toolchain" / "hello" / "go.sum"
    go_sum.write_text(go_sum.read_text() + "\n")
    assert _entry(hello_repo, tmp_path / "cache").path != before.path


def test_a_stamp_that_does_not_apply_leaves_nothing_behind(hello_repo: Path, tmp_path: Path) -> None:
    unstamped = replace(HELLO, stamps=lambda facts: {"main.nosuchvar": facts.version})
    entry = _entry(hello_repo, tmp_path / "cache", unstamped)
    with pytest.raises(EnvironmentProblem, match=r"hello reports version dev, pinned 1\.0\.0"):
        build.ensure_built(build.find_go((1, 22, 0)), entry)
    assert not entry.path.exists()
    assert not list(entry.path.parent.glob(".building-*"))


def test_an_interrupted_build_leaves_no_binary_a_later_run_trusts(
    hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _entry(hello_repo, tmp_path / "cache")
    go = build.find_go((1, 22, 0))

    def interrupted(*args: object) -> str:
        raise KeyboardInterrupt  # Ctrl-C after the binary was linked, before it was verified

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(build, "reported_version", interrupted)
        build.ensure_built(go, entry)
    assert not entry.path.exists()
    # A build killed outright (no finally) leaves its staging folder: the next run removes it, never uses it.
    killed = entry.path.parent / f".building-{entry.path.name}-999999"
    killed.mkdir(parents=True)
    (killed / "hello").write_text("half-written")
    with pytest.raises(EnvironmentProblem, match="not built"):
        build.require_built(entry)
    assert build.ensure_built(go, entry) is not None
    assert not killed.exists()


def test_a_corrupt_binary_is_found_and_rebuilt(hello_repo: Path, tmp_path: Path) -> None:
    entry = _entry(hello_repo, tmp_path / "cache")
    go = build.find_go((1, 22, 0))
    build.ensure_built(go, entry)
    binary = entry.binary("hello")
    # Same size and time, one byte flipped: only the deep check (harness toolchain --check) sees it.
    times = binary.stat()
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    os.utime(binary, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert build.entry_problem(entry) is None
    assert "does not match the sha256" in str(build.entry_problem(entry, deep=True))
    # Truncated: the quick check sees it, locate refuses it with the fix, and a build replaces it.
    binary.write_bytes(b"")
    with pytest.raises(EnvironmentProblem, match=r"changed since it was built.*run `make toolchain`"):
        build.require_built(entry)
    assert build.ensure_built(go, entry) is not None
    assert build.entry_problem(entry, deep=True) is None


def test_two_builds_at_once_build_once(hello_repo: Path, tmp_path: Path) -> None:
    entry = _entry(hello_repo, tmp_path / "cache")
    go = build.find_go((1, 22, 0))
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(build.ensure_built(go, entry))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is None for r in results) == [False, True]
    assert build.entry_problem(entry, deep=True) is None


def test_an_unreachable_module_proxy_is_one_line_naming_the_module(
    hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-modcache"))
    entry = _entry(hello_repo, tmp_path / "cache")
    with pytest.raises(EnvironmentProblem) as caught:
        build.ensure_built(build.find_go((1, 22, 0)), entry)
    message = str(caught.value)
    assert message.startswith("toolchain/hello: the Go module proxy could not serve example.test/hello@v1.0.0 (")
    assert "connection refused" in message
    assert "\n" not in message
    assert not entry.path.exists()


def test_cli_check_and_build_on_a_checkout(
    hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("harness.toolchain.cli.select", lambda names: [HELLO])
    monkeypatch.setenv("HARNESS_REPO", str(hello_repo))
    repo_root.cache_clear()
    cache = tmp_path / "cache"
    try:
        assert main(["toolchain", "--check", "--cache", str(cache)]) == 1
        assert "not built" in capsys.readouterr().out
        assert main(["toolchain", "--cache", str(cache)]) == 0
        out = capsys.readouterr().out
        assert "building hello 1.0.0" in out and "one-time cost about 1 min" in out
        assert main(["toolchain", "--cache", str(cache)]) == 0
        assert "all 1 components current" in capsys.readouterr().out
        assert main(["toolchain", "--check", "--cache", str(cache)]) == 0
        assert "current" in capsys.readouterr().out
    finally:
        repo_root.cache_clear()


def test_bench_refuses_an_unbuilt_toolchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "empty-cache"))
    assert main(["bench", "toolchain"]) == 2
    assert "not built: run `make toolchain` first" in capsys.readouterr().err


def test_missing_names_every_unbuilt_component_and_the_total_cost(tmp_path: Path) -> None:
    reason = build.missing(["kube-apiserver", "kubectl", "etcd"], cache=tmp_path / "empty")
    assert reason == (
        "toolchain not built: kubernetes, etcd; run `make toolchain` "
        f"(one-time, about {KUBERNETES.cold_minutes + select(['etcd'])[0].cold_minutes} min on 2 cores)"
    )
    with pytest.raises(InputError, match="unknown toolchain binary nope"):
        build.missing(["nope"])


def test_missing_is_none_once_built(hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(build.BINARIES, "hello", HELLO)
    cache = tmp_path / "cache"
    assert build.missing(["hello"], hello_repo, cache) is not None
    build.ensure_built(build.find_go((1, 22, 0)), build.entry_for(HELLO, hello_repo, cache))
    assert build.missing(["hello"], hello_repo, cache) is None


def test_terraform_status_says_what_is_missing_instead_of_building_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.toolchain.cli import terraform_status

    monkeypatch.setenv("HARNESS_TERRAFORM", "no-such-terraform")
    cli, aws, addons = terraform_status()
    assert cli.startswith("Terraform CLI: HARNESS_TERRAFORM=no-such-terraform: no such executable")
    assert "cannot be built from the Go module proxy" in cli
    assert aws.startswith(f"hashicorp/aws {versions()['aws_provider']}: ")
    assert addons.startswith(f"hashicorp/helm {versions()['helm_provider']}, hashicorp/kubernetes ")
    monkeypatch.delenv("HARNESS_TERRAFORM")
    if shutil.which("terraform"):
        assert terraform_status()[0] == f"Terraform CLI: {shutil.which('terraform')}"


def test_the_pinned_go_toolchain_is_used_unless_the_user_chose_one() -> None:
    pins = {"go_toolchain": "1.27.3"}
    assert build.with_pinned_go({"PATH": "/bin"}, pins)["GOTOOLCHAIN"] == "go1.27.3"
    assert build.with_pinned_go({"GOTOOLCHAIN": "local"}, pins)["GOTOOLCHAIN"] == "local"
    assert "GOTOOLCHAIN" not in build.with_pinned_go({}, {})


def test_versions_yaml_pins_a_go_toolchain_that_every_wrapper_accepts() -> None:
    pinned = versions(repo_root())
    toolchain = build.parse_go_version("go" + pinned["go_toolchain"])
    for component in COMPONENTS:
        go_mod = (build.toolchain_dir(repo_root()) / component.name / "go.mod").read_text(encoding="utf-8")
        assert build.required_go(go_mod) <= toolchain, component.name


def test_the_module_time_comes_from_the_info_file_when_go_does_not_print_it(tmp_path: Path) -> None:
    info = tmp_path / "v1.0.0.info"
    info.write_text('{"Version":"v1.0.0","Time":"2026-09-23T18:59:36Z"}')
    assert build._module_time({"Time": "2026-01-01T00:00:00Z", "Info": str(info)}) == "2026-01-01T00:00:00Z"
    assert build._module_time({"Info": str(info)}) == "2026-09-23T18:59:36Z"
    assert build._module_time({"Info": str(tmp_path / "missing.info")}) == ""


def test_the_docs_name_the_pinned_go_toolchain_to_export() -> None:
    export = f"export GOTOOLCHAIN=go{versions(repo_root())['go_toolchain']}"
    for doc in ("README.md", "docs/toolchain.md"):
        assert export in (repo_root() / doc).read_text(encoding="utf-8"), doc


# --- stale builds -----------------------------------------------------------------------------------------------


def test_check_reports_stale_builds_and_prune_removes_only_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    (kustomize,) = select(["kustomize"])
    current = build.entry_for(kustomize, cache=cache).path
    current.mkdir(parents=True)
    (current / "kustomize").write_bytes(b"current build")
    stale = current.parent / "0.0.1-000000000000"
    stale.mkdir()
    (stale / "kustomize").write_bytes(b"x" * 2_000_000)
    in_progress = current.parent / ".building-1234"  # another process's build: never a stale entry
    in_progress.mkdir()

    assert main(["toolchain", "--check", "--only", "kustomize", "--cache", str(cache)]) == 1  # not built: a stub
    assert "1 stale build(s) of other pins, 2 MB: `harness toolchain --prune` removes them" in capsys.readouterr().out

    assert main(["toolchain", "--prune", "--only", "kustomize", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "removed 1 stale build(s), 2 MB" in out and str(stale) in out
    assert not stale.exists() and current.is_dir() and in_progress.is_dir()
    assert build.stale_entries([build.entry_for(kustomize, cache=cache)]) == []
