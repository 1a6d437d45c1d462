"""What a kubelet makes of a pod's spec, as pure functions of API objects: the container's environment (literal
values, `$(VAR)` references, the downward API, ConfigMap and Secret keys, `envFrom`), its command line (`command`
and `args`, references expanded), and the files of each volume it mounts (Secret, ConfigMap, projected
ServiceAccount token, downward API, emptyDir); what EKS adds to a pod (the Pod Identity webhook's mutation), the
names a pod resolves Services by, and the kubelet's token renewal and crash-loop back-off.

The reads (ConfigMaps, Secrets, the node's allocatable, a token) come in through `PodSources`; what cannot be made
(a missing key that is not optional, a volume kind the local target does not serve) is a `ContainerConfigError`,
the kubelet's CreateContainerConfigError, naming the pod and what it refers to.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity as _parse_quantity

from harness.errors import HarnessError

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"  # EKS Pod Identity's token audience
POD_IDENTITY_MOUNT = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
POD_IDENTITY_VOLUME = "eks-pod-identity-token"
CLUSTER_DOMAIN = "cluster.local"
RENEW_AT = 0.8  # of a projected token's life
BACKOFF_FIRST_S, BACKOFF_CAP_S = 10.0, 300.0  # the crash-loop back-off
# A C identifier, what a kubelet accepts as an environment variable name from envFrom (others are skipped).
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
FIELD_LABEL = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "1Gi") as a number (the client library's parser, untyped upstream)."""
    return Decimal(_parse_quantity(text))  # type: ignore[no-untyped-call]


class ContainerConfigError(HarnessError):
    """The pod refers to something that does not exist (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodSources:
    """What a pod's spec refers to, read by the caller: its namespace's ConfigMaps and Secrets by name (as API
    objects), its node's allocatable (the default of an unset limit), and `token(audience, seconds)`: a token of
    the pod's ServiceAccount, bound to the pod."""

    config_maps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    node_allocatable: Mapping[str, str] = field(default_factory=dict)
    token: Callable[[str, int], str] = lambda audience, seconds: ""


@dataclass(frozen=True)
class Mount:
    path: str  # in the container
    volume: str
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Container:
    """One container of a pod as its process starts: `command` None means the image's entrypoint."""

    name: str
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    working_dir: str = ""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined reference is replaced, an undefined one stays as written,
    `$$` is one `$`."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def pod_field(pod: Mapping[str, Any], path: str) -> str:
    """A downward API fieldRef's value."""
    metadata, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):  # a downward API volume's file: key="value" lines
        found = metadata.get(path.split(".")[1]) or {}
        return "\n".join(f'{key}="{value}"' for key, value in sorted(found.items()))
    if match := FIELD_LABEL.fullmatch(path):
        return str((metadata.get(match[1]) or {}).get(match[2], ""))
    raise ContainerConfigError(f"pod {name_of(pod)}: fieldRef {path} is not one the downward API serves")


def resource_field(pod: Mapping[str, Any], ref: Mapping[str, Any], default_container: str, sources: PodSources) -> str:
    """A resourceFieldRef's value: the container's request or limit (an unset limit is the node's allocatable),
    divided by the divisor and rounded up, as the kubelet does."""
    container_name = ref.get("containerName") or default_container
    container = next((c for c in pod["spec"]["containers"] if c["name"] == container_name), None)
    if container is None:
        raise ContainerConfigError(f"pod {name_of(pod)}: resourceFieldRef names no container {container_name}")
    kind, _, resource = str(ref["resource"]).partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)  # a request defaults to its limit
    if value is None:
        value = sources.node_allocatable.get(resource)
    if value is None:
        return "0"
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        divisor = Decimal(1)
    return str(math.ceil(parse_quantity(str(value)) / divisor))


def _data(obj: Mapping[str, Any], secret: bool) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys as bytes."""
    found: dict[str, bytes] = {}
    if secret:
        found.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        found.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        found.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        found.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return found


def _lookup(pod: Mapping[str, Any], sources: PodSources, secret: bool, name: str) -> dict[str, bytes] | None:
    found = (sources.secrets if secret else sources.config_maps).get(name)
    return None if found is None else _data(found, secret)


def key_ref(pod: Mapping[str, Any], sources: PodSources, ref: Mapping[str, Any], secret: bool) -> str | None:
    """A configMapKeyRef's or secretKeyRef's value; None when it is optional and absent."""
    kind = "Secret" if secret else "ConfigMap"
    data = _lookup(pod, sources, secret, str(ref.get("name")))
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        missing = f"{kind} {ref.get('name')}" if data is None else f"key {ref['key']} of {kind} {ref.get('name')}"
        raise ContainerConfigError(f"pod {name_of(pod)}: {missing} not found")
    return data[ref["key"]].decode()


def environment(pod: Mapping[str, Any], container: Mapping[str, Any], sources: PodSources) -> dict[str, str]:
    """The container's environment: envFrom's keys first, then env in order, each value expanded against the
    variables before it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        secret = "secretRef" in source
        ref = source.get("secretRef") or source.get("configMapRef") or {}
        data = _lookup(pod, sources, secret, str(ref.get("name")))
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(
                f"pod {name_of(pod)}: {'Secret' if secret else 'ConfigMap'} {ref.get('name')} not found"
            )
        prefix = str(source.get("prefix") or "")
        env.update({prefix + k: v.decode() for k, v in data.items() if ENV_NAME.fullmatch(prefix + k)})
    for entry in container.get("env") or []:
        name, source = str(entry["name"]), entry.get("valueFrom")
        if source is None:
            env[name] = expand(str(entry.get("value") or ""), env)
            continue
        value: str | None
        if "fieldRef" in source:
            value = pod_field(pod, str(source["fieldRef"]["fieldPath"]))
        elif "resourceFieldRef" in source:
            value = resource_field(pod, source["resourceFieldRef"], str(container["name"]), sources)
        elif "configMapKeyRef" in source:
            value = key_ref(pod, sources, source["configMapKeyRef"], secret=False)
        elif "secretKeyRef" in source:
            value = key_ref(pod, sources, source["secretKeyRef"], secret=True)
        else:
            raise ContainerConfigError(f"pod {name_of(pod)}: env {name} takes its value from {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def container(pod: Mapping[str, Any], name: str, sources: PodSources) -> Container:
    """The container `name` (or init container) of `pod` as its process starts."""
    spec = pod["spec"]
    found = next((c for c in [*(spec.get("initContainers") or []), *spec["containers"]] if c["name"] == name), None)
    if found is None:
        raise ContainerConfigError(f"pod {name_of(pod)} has no container {name}")
    env = environment(pod, found, sources)
    command = found.get("command")
    return Container(
        name=name,
        image=str(found.get("image", "")),
        command=None if not command else tuple(expand(str(part), env) for part in command),
        args=tuple(expand(str(part), env) for part in found.get("args") or []),
        env=env,
        mounts=tuple(
            Mount(str(m["mountPath"]), str(m["name"]), str(m.get("subPath") or ""), bool(m.get("readOnly")))
            for m in found.get("volumeMounts") or []
        ),
        working_dir=str(found.get("workingDir") or ""),
    )


def _selected(
    pod: Mapping[str, Any], data: Mapping[str, bytes] | None, source: Mapping[str, Any], kind: str
) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys as a volume holds them: every key, or only `items` (key -> path)."""
    if data is None:
        if source.get("optional"):
            return {}
        name = source.get("name") or source.get("secretName")
        raise ContainerConfigError(f"pod {name_of(pod)}: {kind} {name} not found")
    items = source.get("items")
    if not items:
        return dict(data)
    files = {}
    for item in items:
        if item["key"] in data:
            files[str(item["path"])] = data[item["key"]]
        elif not source.get("optional"):
            name = source.get("name") or source.get("secretName")
            raise ContainerConfigError(f"pod {name_of(pod)}: key {item['key']} of {kind} {name} not found")
    return files


def _downward(pod: Mapping[str, Any], items: Sequence[Mapping[str, Any]], sources: PodSources) -> dict[str, bytes]:
    files = {}
    first = str(pod["spec"]["containers"][0]["name"])
    for item in items:
        if "fieldRef" in item:
            value = pod_field(pod, str(item["fieldRef"]["fieldPath"]))
        else:
            value = resource_field(pod, item["resourceFieldRef"], first, sources)
        files[str(item["path"])] = value.encode()
    return files


def volume_files(pod: Mapping[str, Any], volume: Mapping[str, Any], sources: PodSources) -> dict[str, bytes] | None:
    """The files of one volume (relative path -> content); None for an emptyDir (a folder the container owns)."""
    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        source = volume["configMap"]
        return _selected(pod, _lookup(pod, sources, False, str(source.get("name"))), source, "ConfigMap")
    if "secret" in volume:
        source = volume["secret"]
        return _selected(pod, _lookup(pod, sources, True, str(source.get("secretName"))), source, "Secret")
    if "downwardAPI" in volume:
        return _downward(pod, volume["downwardAPI"].get("items") or [], sources)
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for part in volume["projected"].get("sources") or []:
            if "serviceAccountToken" in part:
                token = part["serviceAccountToken"]
                seconds = int(token.get("expirationSeconds") or 3600)
                files[str(token["path"])] = sources.token(str(token.get("audience") or ""), seconds).encode()
            elif "configMap" in part:
                data = _lookup(pod, sources, False, str(part["configMap"].get("name")))
                files.update(_selected(pod, data, part["configMap"], "ConfigMap"))
            elif "secret" in part:
                data = _lookup(pod, sources, True, str(part["secret"].get("name")))
                files.update(_selected(pod, data, part["secret"], "Secret"))
            elif "downwardAPI" in part:
                files.update(_downward(pod, part["downwardAPI"].get("items") or [], sources))
            else:
                raise ContainerConfigError(f"pod {name_of(pod)}: projected source {sorted(part)} is not served here")
        return files
    kind = sorted(k for k in volume if k != "name")
    raise ContainerConfigError(f"pod {name_of(pod)}: volume {volume.get('name')} is of a kind not served here: {kind}")


def token_sources(pod: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(volume, audience, seconds) of each projected ServiceAccount token the pod mounts: what to renew."""
    found = []
    for volume in pod["spec"].get("volumes") or []:
        for part in (volume.get("projected") or {}).get("sources") or []:
            if token := part.get("serviceAccountToken"):
                found.append(
                    (str(volume["name"]), str(token.get("audience") or ""), int(token.get("expirationSeconds") or 3600))
                )
    return found


def referenced(pod: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The names of the ConfigMaps and of the Secrets the pod's containers and volumes refer to."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    spec = pod["spec"]
    for container_spec in [*(spec.get("initContainers") or []), *spec["containers"]]:
        for source in container_spec.get("envFrom") or []:
            if "configMapRef" in source:
                config_maps.add(str(source["configMapRef"].get("name")))
            if "secretRef" in source:
                secrets.add(str(source["secretRef"].get("name")))
        for entry in container_spec.get("env") or []:
            value_from = entry.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                config_maps.add(str(value_from["configMapKeyRef"].get("name")))
            if "secretKeyRef" in value_from:
                secrets.add(str(value_from["secretKeyRef"].get("name")))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            config_maps.add(str(volume["configMap"].get("name")))
        if "secret" in volume:
            secrets.add(str(volume["secret"].get("secretName")))
        for part in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in part:
                config_maps.add(str(part["configMap"].get("name")))
            if "secret" in part:
                secrets.add(str(part["secret"].get("name")))
    return config_maps, secrets


def name_of(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def repository(image: str) -> str:
    """An image reference without its digest and tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def workload(pod: Mapping[str, Any]) -> str:
    """The name a pod's controller is known by in the run's messages."""
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return str(labels.get("app.kubernetes.io/name") or labels.get("app") or metadata["name"])


def with_pod_identity(pod: Mapping[str, Any], credentials_url: str) -> dict[str, Any]:
    """The pod as EKS's Pod Identity webhook leaves it: the agent's credentials URL and a token of audience
    pods.eks.amazonaws.com in every container (on EKS the URL is the node's 169.254.170.23; here the run's agent)."""
    mutated = copy.deepcopy(dict(pod))
    spec = mutated["spec"]
    spec.setdefault("volumes", []).append(
        {
            "name": POD_IDENTITY_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": POD_IDENTITY_AUDIENCE,
                            "expirationSeconds": 86400,
                            "path": POD_IDENTITY_VOLUME,
                        }
                    }
                ]
            },
        }
    )
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        container.setdefault("env", []).extend(
            [
                {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": credentials_url},
                {
                    "name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    "value": f"{POD_IDENTITY_MOUNT}/{POD_IDENTITY_VOLUME}",
                },
            ]
        )
        container.setdefault("volumeMounts", []).append(
            {"name": POD_IDENTITY_VOLUME, "mountPath": POD_IDENTITY_MOUNT, "readOnly": True}
        )
    return mutated


def service_names(service: Mapping[str, Any]) -> list[str]:
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"]


Route = tuple[str, int]  # an address and a TCP port


def ready_endpoints(slices: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[tuple[str, dict[str, int]]]]:
    """(namespace, Service) -> its ready endpoints' addresses, each with its TCP ports by port name, in a stable
    order."""
    ready: dict[tuple[str, str], list[tuple[str, dict[str, int]]]] = {}
    for endpoint_slice in slices:
        metadata = endpoint_slice["metadata"]
        service = (metadata.get("labels") or {}).get("kubernetes.io/service-name")
        ports = {
            str(port.get("name") or ""): int(port["port"])
            for port in endpoint_slice.get("ports") or []
            if port.get("port") is not None and port.get("protocol", "TCP") == "TCP"
        }
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") and service:
                found = ready.setdefault((metadata["namespace"], service), [])
                found.extend((address, ports) for address in endpoint.get("addresses") or [])
    return {key: sorted(found, key=lambda endpoint: endpoint[0]) for key, found in ready.items()}


def cluster_ip(service: Mapping[str, Any]) -> str | None:
    address = (service.get("spec") or {}).get("clusterIP")
    return None if not address or address == "None" else str(address)


Ready = Mapping[tuple[str, str], list[tuple[str, dict[str, int]]]]  # what ready_endpoints returns


def service_addresses(services: Sequence[Mapping[str, Any]], ready: Ready) -> dict[str, str]:
    """Each Service's DNS names -> what cluster DNS answers: its ClusterIP, or for a headless Service the address of
    one of its `ready` endpoints (the first, in a stable order; none without one)."""
    found = {}
    for service in services:
        key = (service["metadata"]["namespace"], service["metadata"]["name"])
        address = cluster_ip(service) or next((endpoint for endpoint, _ports in ready.get(key, [])), None)
        if address:
            found.update({name: address for name in service_names(service)})
    return found


def service_routes(services: Sequence[Mapping[str, Any]], ready: Ready) -> dict[Route, Route | None]:
    """Each ClusterIP Service's (ClusterIP, port) -> the (address, target port) of one of its `ready` endpoints (the
    first, in a stable order), None without one: what kube-proxy programs for it. TCP only."""
    routes: dict[Route, Route | None] = {}
    for service in services:
        address = cluster_ip(service)
        if address is None:
            continue
        endpoints = ready.get((service["metadata"]["namespace"], service["metadata"]["name"]), [])
        for port in (service.get("spec") or {}).get("ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            name = str(port.get("name") or "")
            routes[(address, int(port["port"]))] = next(
                ((endpoint, ports[name]) for endpoint, ports in endpoints if name in ports), None
            )
    return routes


def hosts_file(pod_ip: str, hostname: str, addresses: Mapping[str, str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{hostname}"]
    by_address: dict[str, list[str]] = {}
    for name, address in sorted(addresses.items()):
        by_address.setdefault(address, []).append(name)
    lines += [f"{address}\t{' '.join(names)}" for address, names in sorted(by_address.items())]
    return "\n".join(lines) + "\n"


def resolv_conf(namespace: str) -> str:
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"search {search}\nnameserver 127.0.0.1\noptions ndots:5\n"


def token_due(issued: float, lifetime: float, now: float) -> bool:
    """Whether a projected token is renewed: once 80 % of its life has passed, as the kubelet does."""
    return now - issued >= lifetime * RENEW_AT


def backoff(restarts: int) -> float:
    """The kubelet's crash-loop back-off before the `restarts`th restart: 10 s, doubled each time, at most 5 min."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(restarts - 1, 0), BACKOFF_CAP_S))


def restarts_after(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


@dataclass(frozen=True)
class PodPlace:
    """Where a pod runs: its node's address, its own, since when, and whether its sandbox is made."""

    host_ip: str
    pod_ip: str
    started: str
    sandbox: bool


def pod_status(
    spec: Mapping[str, Any], containers: Mapping[str, dict[str, Any]], config_error: str, where: PodPlace, stamp: str
) -> dict[str, Any]:
    """The status a kubelet reports for a pod from its containers' statuses (by name, as the API has them): its
    phase by the restart policy, its conditions, its addresses; a ContainerConfigError holds every container."""
    inits = [containers[c["name"]] for c in spec.get("initContainers") or [] if c["name"] in containers]
    mains = [containers[c["name"]] for c in spec["containers"] if c["name"] in containers]
    if config_error:
        waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": config_error}}
        mains = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "started": False}
            | {"restartCount": 0, "state": waiting}
            for c in spec["containers"]
        ]
    initialized = len(inits) == len(spec.get("initContainers") or []) and all(
        (s["state"].get("terminated") or {}).get("exitCode") == 0 for s in inits
    )
    ready = bool(mains) and len(mains) == len(spec["containers"]) and all(s["ready"] for s in mains)
    policy = spec.get("restartPolicy") or "Always"
    finished = [s["state"].get("terminated") for s in mains]
    phase = "Running" if any(s["started"] for s in mains) else "Pending"
    if mains and all(finished) and policy != "Always":
        phase = "Succeeded" if all(t["exitCode"] == 0 for t in finished if t) else "Failed"
    if phase == "Failed" and policy == "OnFailure":
        phase = "Running"
    conditions = [
        ("PodReadyToStartContainers", where.sandbox),
        ("Initialized", initialized),
        ("ContainersReady", ready),
        ("Ready", ready),
    ]
    return {
        "phase": phase,
        "hostIP": where.host_ip,
        "hostIPs": [{"ip": where.host_ip}],
        "podIP": where.pod_ip,
        "podIPs": [{"ip": where.pod_ip}],
        "startTime": where.started,
        "conditions": [{"type": kind, "status": str(value), "lastTransitionTime": stamp} for kind, value in conditions],
        "containerStatuses": mains,
        **({"initContainerStatuses": inits} if spec.get("initContainers") else {}),
    }
