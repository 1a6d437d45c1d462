"""The local target's Git endpoint: a snapshot of the working tree, served over HTTPS on loopback.

What Argo CD syncs on `local` is the working tree as it is now (tracked files and untracked ones git does not
ignore), committed into a throwaway bare repository in the run's directory: a local run tests your edits
without a commit, and never touches your branch, index or remote. The snapshot is served by `git http-backend`
(Git's own smart-HTTP server) behind a loopback HTTPS listener on the run's certificate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from harness.git import git
from harness.processes import HOST

BRANCH = "main"
REPOSITORY = "eks-platform.git"


def snapshot(checkout: Path, folder: Path) -> tuple[Path, str]:
    """Commit the working tree of `checkout` into a new bare repository under `folder`; (repository, commit)."""
    folder.mkdir(parents=True, exist_ok=True)
    bare = folder / REPOSITORY
    git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(bare), cwd=folder)
    index = folder / "snapshot.index"
    # A private index: the user's index and branch are untouched; `add -A` honours .gitignore.
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    git("add", "--all", cwd=checkout, env=env)
    tree = git("write-tree", cwd=checkout, env=env)
    identity = {"GIT_AUTHOR_NAME": "harness", "GIT_AUTHOR_EMAIL": "harness@localhost"}
    identity |= {"GIT_COMMITTER_NAME": "harness", "GIT_COMMITTER_EMAIL": "harness@localhost"}
    commit = git(
        "commit-tree", tree, "-m", "working tree snapshot for a local run", cwd=checkout, env={**env, **identity}
    )
    git("push", "--quiet", str(bare), f"{commit}:refs/heads/{BRANCH}", cwd=checkout)
    index.unlink(missing_ok=True)
    return bare, commit


def _handler(project_root: Path) -> type[BaseHTTPRequestHandler]:
    git_binary = shutil.which("git") or "git"

    class GitHttpBackend(BaseHTTPRequestHandler):
        """Runs `git http-backend` (CGI) for each request: clone and fetch, read-only."""

        def _cgi(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", ""),
                "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": url.path,
                "QUERY_STRING": url.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_ADDR": self.client_address[0],
            }
            done = subprocess.run([git_binary, "http-backend"], input=body, env=env, capture_output=True, check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _cgi
        do_POST = _cgi

        def log_message(self, format: str, *args: object) -> None:
            return  # the run's log is Argo CD's; a line per fetch would drown it

    return GitHttpBackend


@dataclass(frozen=True)
class GitEndpoint:
    url: str  # https://127.0.0.1:PORT/eks-platform.git
    commit: str


def _server(project_root: Path, certificate: Path, key: Path, port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((HOST, port), _handler(project_root))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def url(port: int) -> str:
    return f"https://{HOST}:{port}/{REPOSITORY}"


@contextmanager
def serve(checkout: Path, folder: Path, certificate: Path, key: Path) -> Iterator[GitEndpoint]:
    """Snapshot `checkout` and serve it over HTTPS on loopback for the duration of the block."""
    bare, commit = snapshot(checkout, folder)
    server = _server(bare.parent, certificate, key)
    thread = threading.Thread(target=server.serve_forever, name="git-endpoint", daemon=True)
    thread.start()
    try:
        yield GitEndpoint(url(server.server_address[1]), commit)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def command(folder: Path, certificate: Path, key: Path, port: int) -> list[str]:
    """The endpoint as a process of its own (the local target's runs outlive the shell that started them)."""
    return [
        sys.executable, "-m", "harness.targets.git_endpoint",
        "--folder", str(folder), "--certificate", str(certificate), "--key", str(key), "--port", str(port),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve a snapshot made by `snapshot` over HTTPS on loopback")
    parser.add_argument("--folder", type=Path, required=True, help=f"folder holding {REPOSITORY}")
    parser.add_argument("--certificate", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = _server(args.folder, args.certificate, args.key, args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
