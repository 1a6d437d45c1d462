"""The pods' network on the local target, as a CNI plugin makes it on a node: a bridge per run, and per pod a
network namespace with its own loopback and an address on that bridge (a veth pair), so every pod binds the ports
its spec names, on every interface, beside any other pod, and is reached at its pod IP from this machine (the API
server calling a webhook, a readiness probe) and from the other pods.

What the pods reach on this machine's loopback (the API server, the emulator, the Pod Identity agent, the Git
endpoint) is forwarded from the same port of the pod's own loopback (`Forwarders`): their URLs are the same inside
a pod as outside. The same forwarders are kube-proxy in its userspace mode: every pod routes the Service range to the
run's proxy namespace (`create_service_proxy`), where that range is local and each Service's ClusterIP and port is
forwarded to one of its ready endpoints. (Not inside the pods: a pod listening on every interface would hold the
ClusterIPs' ports there.)

Names and addresses are the run's: the bridge `ekp<8 hex of the run id>`, its pods' namespaces `<bridge>-<n>`, a
/24 of 10.250.0.0/16 that no interface of this machine holds yet.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentProblem

POD_RANGE = ipaddress.ip_network("10.250.0.0/16")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
PROXY_INDEX = 252  # the Service proxy's place on the bridge (.254); pods count up from 1


def unavailable() -> str | None:
    """Why this machine cannot make pod networks (one line naming the fix), or None."""
    if os.geteuid() != 0:
        return (
            "the local target runs the ops nodes' pods in network and mount namespaces of their own, which takes "
            "root: run it as root (a CI runner or a VM), or use --target emulator"
        )
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux"), ("unshare", "util-linux")):
        if not shutil.which(tool):
            return f"the local target's pods need {package}'s `{tool}` (Debian: apt-get install {package})"
    return None


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvironmentProblem(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def bridge_name(run_id: str) -> str:
    return "ekp" + hashlib.sha1(run_id.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Bridge:
    name: str
    network: str  # "10.250.N.0/24"

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.network).hosts()))

    def address(self, index: int) -> str:
        """The pod IP of the bridge's `index`th sandbox (1, 2, ...)."""
        return str(ipaddress.ip_network(self.network).network_address + 1 + index)

    def namespace(self, index: int) -> str:
        return f"{self.name}-{index}"


def taken_networks() -> set[ipaddress.IPv4Network]:
    found: set[ipaddress.IPv4Network] = set()
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        for info in link.get("addr_info") or []:
            found.add(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return found


def create_bridge(run_id: str) -> Bridge:
    """The run's bridge on the first /24 of POD_RANGE no interface holds, counting from the run id's hash."""
    name = bridge_name(run_id)
    subnets = [ipaddress.IPv4Network(net) for net in POD_RANGE.subnets(new_prefix=24)]
    start = int(hashlib.sha1(run_id.encode()).hexdigest(), 16) % len(subnets)
    taken = taken_networks()
    for offset in range(len(subnets)):
        network = subnets[(start + offset) % len(subnets)]
        if any(network.overlaps(other) for other in taken):
            continue
        bridge = Bridge(name, str(network))
        ip("link", "add", name, "type", "bridge")
        ip("addr", "add", f"{bridge.gateway}/24", "dev", name)
        ip("link", "set", name, "up")
        return bridge
    raise EnvironmentProblem(f"no free /24 left in {POD_RANGE} for the run's pods")


def create_sandbox(bridge: Bridge, index: int, services: str) -> str:
    """The network namespace of a pod: loopback up, eth0 on the bridge at its pod IP, the bridge as its route out,
    the Service range `services` through the run's proxy namespace. Returns the namespace's name."""
    namespace = bridge.namespace(index)
    _network_namespace(bridge, namespace, f"{bridge.name}v{index}", bridge.address(index))
    ip("-n", namespace, "route", "add", services, "via", bridge.address(PROXY_INDEX))
    return namespace


def create_service_proxy(bridge: Bridge, services: str) -> str:
    """The namespace of the run's Service proxy, on the bridge like a pod: the Service range `services` is local
    there, so its forwarders listen at any ClusterIP, and any other address of the range refuses. Returns its name."""
    namespace = f"{bridge.name}-proxy"
    _network_namespace(bridge, namespace, f"{bridge.name}vp", bridge.address(PROXY_INDEX))
    ip("-n", namespace, "route", "add", "local", services, "dev", "lo")
    return namespace


def _network_namespace(bridge: Bridge, namespace: str, host_end: str, address: str) -> None:
    ip("netns", "add", namespace)
    ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    ip("link", "set", host_end, "master", bridge.name, "up")
    ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", namespace, "link", "set", "lo", "up")
    ip("-n", namespace, "link", "set", "eth0", "up")
    ip("-n", namespace, "route", "add", "default", "via", bridge.gateway)


def delete_sandbox(namespace: str) -> None:
    """The namespace and, with it, its end of the veth pair (the kernel removes the other)."""
    if (NETNS_DIR / namespace).exists():
        ip("netns", "delete", namespace)


def delete_network(run_id: str) -> list[str]:
    """Every pod namespace and the bridge of the run, whatever a crashed kubelet left; what it removed."""
    name = bridge_name(run_id)
    removed = []
    for entry in sorted(NETNS_DIR.glob(f"{name}-*")) if NETNS_DIR.is_dir() else []:
        delete_sandbox(entry.name)
        removed.append(f"network namespace {entry.name}")
    # A namespace the kernel has not finished taking down still holds its veth's host end: removed by name.
    for link in json.loads(ip("-j", "link", "show") or "[]"):
        if str(link.get("ifname", "")).startswith(name):
            subprocess.run(["ip", "link", "delete", link["ifname"]], capture_output=True, check=False)
            removed.append(f"{'bridge' if link['ifname'] == name else 'veth'} {link['ifname']}")
    return removed


def listening_socket_in(namespace: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket that lives in `namespace` (the thread that makes it enters the namespace and leaves;
    the socket stays there)."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / namespace, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {namespace}")
            try:
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind((host, port))
                server.listen(128)
                server.setblocking(False)
                made.append(server)
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if failed:
        raise EnvironmentProblem(f"a listening socket in {namespace} at {host}:{port}: {failed[0]}")
    return made[0]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


Address = tuple[str, int]


class Forwarders:
    """Per pod, listening sockets in its network namespace, each forwarding a connection to where `target` says for
    its address at that moment (run on the caller's event loop; closed with the pod). Without a target the
    connection is reset, as kube-proxy rejects one to a Service without a ready endpoint."""

    def __init__(self, target: Callable[[Address], Address | None]) -> None:
        self.target = target
        self.servers: dict[str, dict[Address, asyncio.Server]] = {}

    async def open(self, namespace: str, addresses: Iterable[Address]) -> None:
        """Listen at each of `addresses` not listened at yet, and no longer at those `addresses` leaves out."""
        servers = self.servers.setdefault(namespace, {})
        wanted = set(addresses)
        for address in sorted(wanted - set(servers)):
            listening = listening_socket_in(namespace, *address)
            servers[address] = await asyncio.start_server(self._forward(address), sock=listening)
        for address in set(servers) - wanted:
            servers.pop(address).close()

    def _forward(self, address: Address):  # type: ignore[no-untyped-def]
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            target = self.target(address)
            try:
                if target is None:
                    raise ConnectionRefusedError
                upstream_reader, upstream_writer = await asyncio.open_connection(*target)
            except OSError:
                reset(writer)
                return
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

        return handle

    def close(self, namespace: str) -> None:
        for server in self.servers.pop(namespace, {}).values():
            server.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0): the client sees its connection refused, not an answer that ended."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
