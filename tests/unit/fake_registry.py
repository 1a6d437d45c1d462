"""A small OCI distribution registry on loopback: real HTTP, bearer-token auth, scripted failures.

It serves what the tests put in it, the way ECR Public and Docker Hub answer: a 401 with a bearer
challenge, a token endpoint, manifests with Content-Type and Docker-Content-Digest, config blobs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def digest_of(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


@dataclass
class FakeRegistry:
    host: str = ""
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)  # (repo, ref) -> type, body
    blobs: dict[str, bytes] = field(default_factory=dict)
    require_token: bool = True
    failures: list[int] = field(default_factory=list)  # statuses answered first, one per request
    lie_about_digest: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add_index(self, repo: str, tag: str, platforms: list[tuple[str, str]]) -> str:
        children = []
        for os_name, arch in platforms:
            child = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"digest": digest_of(arch.encode())},
                    "layers": [],
                }
            ).encode()
            self.manifests[(repo, digest_of(child))] = ("application/vnd.oci.image.manifest.v1+json", child)
            children.append(
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest_of(child),
                    "size": len(child),
                    "platform": {"os": os_name, "architecture": arch},
                }
            )
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
        self.manifests[(repo, tag)] = (OCI_INDEX, body)
        return digest_of(body)

    def add_image(self, repo: str, tag: str, arch: str = "amd64", media_type: str = DOCKER_MANIFEST) -> str:
        config = json.dumps({"architecture": arch, "os": "linux", "config": {}}).encode()
        self.blobs[digest_of(config)] = config
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        self.manifests[(repo, tag)] = (media_type, body)
        return digest_of(body)

    def add_schema1(self, repo: str, tag: str) -> None:
        self.manifests[(repo, tag)] = (SCHEMA1, json.dumps({"schemaVersion": 1, "name": repo}).encode())


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            registry.requests.append((self.path, dict(self.headers)))
            if registry.failures:
                self._send(registry.failures.pop(0), b"{}")
                return
            url = urlsplit(self.path)
            if url.path == "/token":
                scope = parse_qs(url.query).get("scope", [""])[0]
                repo = scope.removeprefix("repository:").removesuffix(":pull")
                self._send(200, json.dumps({"token": f"t-{repo}"}).encode())
                return
            parts = url.path.split("/")  # /v2/<repo...>/(manifests|blobs)/<ref>
            if len(parts) < 5 or parts[1] != "v2":
                self._send(404)
                return
            repo, kind, ref = "/".join(parts[2:-2]), parts[-2], parts[-1]
            if registry.require_token and self.headers.get("Authorization") != f"Bearer t-{repo}":
                realm = f"http://{registry.host}/token"
                self._send(
                    401,
                    b"{}",
                    {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="repository:{repo}:pull"'},
                )
                return
            if kind == "blobs" and ref in registry.blobs:
                self._send(200, registry.blobs[ref], {"Content-Type": "application/octet-stream"})
            elif kind == "manifests" and (repo, ref) in registry.manifests:
                media_type, body = registry.manifests[(repo, ref)]
                digest = digest_of(b"tampered" if registry.lie_about_digest else body)
                self._send(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})
            else:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    return Handler


@contextmanager
def serve(registry: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    registry = registry or FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    registry.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
