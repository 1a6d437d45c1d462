from __future__ import annotations

import socket

import pytest
from fake_registry import SCHEMA1, FakeRegistry, digest_of, serve

from harness.errors import EnvironmentProblem, InputError
from harness.images.reference import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    Resolved,
    api_base,
    judge_manifest,
    missing_platforms,
    parse_reference,
)
from harness.images.registry_client import RegistryClient

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag", "digest"),
    [
        ("public.ecr.aws/l6m2t8p7/docker-2048:latest", "public.ecr.aws", "l6m2t8p7/docker-2048", "latest", None),
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.27.3", "docker.io", "library/nginx", "1.27.3", None),
        ("docker.io/alexwhen/docker-2048", "docker.io", "alexwhen/docker-2048", None, None),
        (f"alexwhen/docker-2048@{DIGEST}", "docker.io", "alexwhen/docker-2048", None, DIGEST),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        (f"127.0.0.1:5000/team/app:1.0@{DIGEST}", "127.0.0.1:5000", "team/app", "1.0", DIGEST),
    ],
)
def test_parse_reference_splits_like_a_container_runtime(
    image: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.moving is (digest is None and tag in (None, "latest"))


@pytest.mark.parametrize("image", ["Team/App:1.0", "app:bad tag", "app@sha256:zz", "app:"])
def test_parse_reference_rejects_what_a_runtime_would(image: str) -> None:
    with pytest.raises(InputError, match="image"):
        parse_reference(image)


def test_pinned_keeps_the_tag_for_readers() -> None:
    assert parse_reference("public.ecr.aws/a/b:latest").pinned(DIGEST) == f"public.ecr.aws/a/b:latest@{DIGEST}"
    assert parse_reference(f"a/b@{DIGEST}").pinned(DIGEST) == f"a/b@{DIGEST}"


@pytest.mark.parametrize(
    ("registry", "base"),
    [
        ("public.ecr.aws", "https://public.ecr.aws"),
        ("docker.io", "https://registry-1.docker.io"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("10.0.0.1:5000", "https://10.0.0.1:5000"),
    ],
)
def test_plain_http_only_for_a_registry_on_loopback(registry: str, base: str) -> None:
    assert api_base(registry) == base


def test_judge_manifest_refuses_schema1_which_containerd_2_cannot_pull() -> None:
    with pytest.raises(InputError, match="schema 1 manifest"):
        judge_manifest("x", SCHEMA1, b"{}", None)


def test_judge_manifest_refuses_bytes_that_do_not_match_the_served_digest() -> None:
    with pytest.raises(InputError, match="hashes to"):
        judge_manifest("x", DOCKER_MANIFEST, b"{}", DIGEST)
    assert judge_manifest("x", f"{DOCKER_MANIFEST}; charset=utf-8", b"{}", digest_of(b"{}")) == {}


def test_judge_manifest_refuses_unknown_media_types() -> None:
    with pytest.raises(InputError, match="unexpected manifest media type text/html"):
        judge_manifest("x", "text/html", b"{}", None)


def test_missing_platforms_names_each_architecture_without_a_build() -> None:
    resolved = Resolved(DIGEST, OCI_INDEX, frozenset({"linux/amd64"}))
    assert missing_platforms(resolved, ["amd64"]) == []
    assert missing_platforms(resolved, ["amd64", "arm64"]) == ["linux/arm64"]


def _no_sleep(_seconds: float) -> None:
    pass


def test_resolve_a_multi_arch_index_through_the_bearer_token_flow() -> None:
    with serve() as registry:
        expected = registry.add_index("l6m2t8p7/docker-2048", "latest", [("linux", "amd64"), ("linux", "arm64")])
        image = f"{registry.host}/l6m2t8p7/docker-2048:latest"
        resolved = RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)
    assert resolved == Resolved(expected, OCI_INDEX, frozenset({"linux/amd64", "linux/arm64"}))
    paths = [path for path, _ in registry.requests]
    assert paths[0] == "/v2/l6m2t8p7/docker-2048/manifests/latest"  # anonymous first, answered 401
    assert paths[1].startswith("/token?") and "scope=repository%3Al6m2t8p7%2Fdocker-2048%3Apull" in paths[1]
    assert registry.requests[2][1]["Authorization"] == "Bearer t-l6m2t8p7/docker-2048"
    assert "application/vnd.oci.image.index.v1+json" in registry.requests[2][1]["Accept"]


def test_resolve_a_single_arch_image_reads_its_platform_from_the_config_blob() -> None:
    with serve(FakeRegistry(require_token=False)) as registry:
        expected = registry.add_image("game/2048", "1.0", arch="arm64")
        image = f"{registry.host}/game/2048:1.0"
        resolved = RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)
    assert resolved == Resolved(expected, DOCKER_MANIFEST, frozenset({"linux/arm64"}))
    assert registry.requests[-1][0].startswith("/v2/game/2048/blobs/sha256:")


def test_resolve_refuses_a_schema1_image() -> None:
    with serve() as registry:
        registry.add_schema1("old/2048", "latest")
        image = f"{registry.host}/old/2048:latest"
        with pytest.raises(InputError, match="containerd 2"):
            RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)


def test_resolve_refuses_a_digest_that_does_not_match_the_bytes() -> None:
    with serve(FakeRegistry(lie_about_digest=True)) as registry:
        registry.add_image("game/2048", "latest")
        image = f"{registry.host}/game/2048:latest"
        with pytest.raises(InputError, match="not pinning"):
            RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)


def test_a_missing_tag_is_named() -> None:
    with serve() as registry:
        image = f"{registry.host}/game/2048:nope"
        with pytest.raises(InputError, match=r"manifests nope not found in .*/game/2048"):
            RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)


def test_transient_failures_are_retried_with_backoff() -> None:
    slept: list[float] = []
    with serve(FakeRegistry(failures=[503, 429])) as registry:
        expected = registry.add_image("game/2048", "latest")
        image = f"{registry.host}/game/2048:latest"
        resolved = RegistryClient(sleep=slept.append).resolve(parse_reference(image), image)
    assert resolved.digest == expected
    assert len(slept) == 2 and all(seconds > 0 for seconds in slept)


def test_a_registry_that_keeps_failing_is_one_line_after_the_last_try() -> None:
    slept: list[float] = []
    with serve(FakeRegistry(failures=[503] * 10)) as registry:
        image = f"{registry.host}/game/2048:latest"
        with pytest.raises(EnvironmentProblem, match=r"after 3 tries \(HTTP 503") as error:
            RegistryClient(attempts=3, sleep=slept.append).resolve(parse_reference(image), image)
    assert "\n" not in str(error.value)
    assert len(slept) == 2


def test_an_unreachable_registry_says_pinning_needs_access() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image = f"127.0.0.1:{port}/game/2048:latest"
    with pytest.raises(EnvironmentProblem, match="pinning needs access to the registry"):
        RegistryClient(attempts=2, timeout=2, sleep=_no_sleep).resolve(parse_reference(image), image)


def test_a_401_without_a_bearer_challenge_is_a_credentials_problem() -> None:
    with serve(FakeRegistry(failures=[401])) as registry:
        image = f"{registry.host}/private/app:1.0"
        with pytest.raises(EnvironmentProblem, match="asks for credentials"):
            RegistryClient(sleep=_no_sleep).resolve(parse_reference(image), image)
