"""Container image references and what a registry says about them, judged by pure functions.

`harness.images.registry_client` asks the registry; this module parses references (for the gate too, which
must stay light) and judges the answers: media type, platforms, digest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.errors import InputError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRef:
    """`name[:tag][@digest]` split the way container runtimes split it."""

    name: str  # as written, without tag or digest
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def moving(self) -> bool:
        """No digest, and a tag that is missing (a runtime then pulls `latest`) or is `latest`."""
        return self.digest is None and self.tag in (None, "latest")

    def pinned(self, digest: str) -> str:
        """The reference with its tag kept for readers and the digest that decides what is pulled."""
        return f"{self.name}:{self.tag}@{digest}" if self.tag else f"{self.name}@{digest}"


def parse_reference(image: str) -> ImageRef:
    name, _, digest = image.strip().partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:  # a colon before the last slash is a registry port
        name, tag = name.rsplit(":", 1)
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name if slash else f"library/{name}"
    if registry == DOCKER_HUB and repository.startswith("docker.io/"):
        repository = repository.removeprefix("docker.io/")
    if not _REPOSITORY.fullmatch(repository):
        raise InputError(f"image {image!r}: {repository!r} is not a valid repository name")
    if tag is not None and not _TAG.fullmatch(tag):
        raise InputError(f"image {image!r}: {tag!r} is not a valid tag")
    if digest and not _DIGEST.fullmatch(digest):
        raise InputError(f"image {image!r}: {digest!r} is not a sha256 digest")
    return ImageRef(name, registry, repository, tag, digest or None)


def api_base(registry: str) -> str:
    """HTTPS always, except a registry on this machine's loopback (as Docker allows)."""
    host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
    hostname = urlsplit(f"//{host}").hostname or ""
    try:
        loopback = hostname == "localhost" or ipaddress.ip_address(hostname).is_loopback
    except ValueError:  # a DNS name other than localhost
        loopback = False
    return f"{'http' if loopback else 'https'}://{host}"


@dataclass(frozen=True)
class Resolved:
    """What a tag points at: its digest, the manifest kind and the platforms it can run on."""

    digest: str
    media_type: str
    platforms: frozenset[str]  # "linux/amd64", ...


def content_digest(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def judge_manifest(image: str, media_type: str, body: bytes, served_digest: str | None) -> dict[str, Any]:
    """The manifest as JSON, once it is one a node can pull and its bytes match the digest served."""
    kind = media_type.split(";")[0].strip()
    if kind in SCHEMA1_TYPES:
        raise InputError(
            f"image {image}: the registry serves a schema 1 manifest, which containerd 2 on EKS "
            f"nodes refuses to pull; choose an image pushed in the OCI or Docker v2 format"
        )
    if kind not in INDEX_TYPES + IMAGE_TYPES:
        raise InputError(f"image {image}: unexpected manifest media type {kind or '(none)'}")
    actual = content_digest(body)
    if served_digest and served_digest != actual:
        raise InputError(
            f"image {image}: registry says digest {served_digest} but the manifest hashes to "
            f"{actual}; not pinning to bytes that do not match"
        )
    try:
        manifest = json.loads(body)
    except ValueError:
        raise InputError(f"image {image}: the registry's manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise InputError(f"image {image}: the registry's manifest is not a JSON object")
    return manifest


def index_platforms(manifest: dict[str, Any]) -> frozenset[str]:
    platforms = set()
    for entry in manifest.get("manifests") or []:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and platform.get("os") and platform.get("architecture"):
            platforms.add(f"{platform['os']}/{platform['architecture']}")
    return frozenset(platforms)


def config_platform(config: dict[str, Any]) -> frozenset[str]:
    if config.get("os") and config.get("architecture"):
        return frozenset({f"{config['os']}/{config['architecture']}"})
    return frozenset()


def missing_platforms(resolved: Resolved, architectures: Iterable[str]) -> list[str]:
    """The linux architectures nodes may have that the image has no build for."""
    return sorted(f"linux/{arch}" for arch in set(architectures) if f"linux/{arch}" not in resolved.platforms)
