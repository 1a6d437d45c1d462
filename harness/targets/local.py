"""The local target's Kubernetes side of a run: the control plane, the ops nodes, the Git endpoint, infra/addons'
releases and the controllers, all as processes on this machine that outlive the shell that started them.

Every process is recorded in the run's settings the moment it starts (harness.processes.ProcessRecord), so
`harness down` from any shell, an interrupted `up`, or a failed stage stops exactly what the run started.

infra/addons goes into the run's cluster as harness.targets.local_addons puts it (by Terraform where its providers
can be installed, else release by release)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.aws import authorization
from harness.aws.emulator import Emulator
from harness.errors import EnvironmentProblem
from harness.kube import rbac
from harness.processes import HOST, ProcessRecord, Supervisor, free_port, stop_recorded
from harness.project import local_target, repo_root, versions
from harness.results import Result, first_failure
from harness.run import Run
from harness.targets import containers, git_endpoint, kubelet, node_registrar, pod_identity, pod_images, pod_network
from harness.targets.controlplane import (
    SERVICE_CIDR,
    ControlPlane,
    answers,
    attach,
    replace_control_plane,
    start_control_plane,
)
from harness.targets.nodes import kubelet_version, ops_nodegroup, ops_nodes
from harness.toolchain.build import Entry, components_of, entry_for, missing
from harness.toolchain.components import CONTROL_PLANE, control_plane_build

PROCESSES = "processes"  # run settings: the records of every process the run started, in start order
CLUSTER = "cluster"  # run settings: {"server": the API server's URL, "etcd": its etcd's, "release": its release}
STARTING = "starting"  # under CLUSTER: [began, ready] of each API server that replaced another (UTC, ISO 8601)
LEADER_GRACE_S = 30  # after a new API server is ready: a leader lease renewal that failed before may still end one
GITOPS_URL = "gitops_repo_url"  # run settings: what the cluster secret points Argo CD at
ADDONS = "addons_installed"  # run settings: set before infra/addons goes in, by either way
ADDONS_BY_TERRAFORM = "addons_terraform_variables"  # run settings: what `terraform apply infra/addons` was given
POD_IDENTITY_AGENT = "pod_identity_agent"  # run settings: the agent's credentials URL
KUBELET = "kubelet"  # the run's folder of the ops nodes' kubelet: its pods, their logs and volumes
EXTERNAL_EMULATOR = "the emulator at AWS_ENDPOINT_URL is not the run's own: it enforces no IAM"
ASSOCIATIONS = "pod-identity-associations.json"  # under the run's identities/: ServiceAccount -> role
# Binaries the local target runs (harness.toolchain), checked before anything is created.
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    "helm",
    "kustomize",
    # what the ops nodes' images take (infra/targets.yaml local_target.pod_images; a unit test holds the two equal)
    "aws-load-balancer-controller",
    "argocd",
    "karpenter",
)


def unavailable() -> str | None:
    """Why this machine cannot run the local target (one line naming the fix), or None."""
    return missing(list(BINARIES)) or pod_network.unavailable()


def toolchain_entries() -> list[Entry]:
    """The cache entries of every toolchain component the local target runs (built or not)."""
    return [entry_for(component) for component in components_of(BINARIES)]


def supervisor(run: Run, watchdog: Callable[[], str | None] = lambda: None) -> Supervisor:
    """A Supervisor whose every start is recorded in the run (saved at once: a Ctrl-C may follow)."""

    def remember(record: ProcessRecord) -> None:
        run.settings.setdefault(PROCESSES, []).append(record.settings())
        run.save()

    return Supervisor(run.path("logs"), on_start=remember, watchdog=watchdog)


def records(run: Run) -> list[ProcessRecord]:
    return [ProcessRecord.from_settings(row) for row in run.settings.get(PROCESSES) or []]


def crashed(run: Run, *, current: bool = False) -> dict[str, str]:
    """Each process of the run that is no longer running, and each workload of the ops nodes whose container exited
    (the kubelet restarts it, as on EKS; `current`: only one in a crash loop, what the teardown cannot wait for) -> one
    line with its log's last words."""
    dead = {record.name: line for record in records(run) if (line := record.crashed())}
    with contextlib.suppress(FileNotFoundError):
        exits = json.loads(run.path(KUBELET, kubelet.CRASHES).read_text(encoding="utf-8"))
        replaced = api_server_replaced(run)
        dead.update(
            {
                name: exit["line"]
                for name, exit in exits.items()
                if (exit["crash_loop"] or not current) and not replaced(datetime.fromisoformat(exit["at"]))
            }
        )
    return dead


def api_server_replaced(run: Run) -> Callable[[datetime], bool]:
    """Whether a moment lies where the run's API server was being replaced (its STARTING windows), or within
    LEADER_GRACE_S after: the replacement shares the port before it is ready, and a lease renewal it refuses then
    may end a leader, where EKS's load balancer sends it nothing yet; the kubelet restarts that controller, and its
    exit is not the controller's failure."""
    grace = timedelta(seconds=LEADER_GRACE_S)
    windows = [(began, ready + grace) for began, ready in starting_windows(run)]
    return lambda moment: any(began <= moment <= until for began, until in windows)


def starting_windows(run: Run) -> list[tuple[datetime, datetime]]:
    """(began, ready) of each API server of the run that replaced another (its STARTING record)."""
    return [
        (datetime.fromisoformat(began), datetime.fromisoformat(ready))
        for began, ready in (run.settings.get(CLUSTER) or {}).get(STARTING, [])
    ]


def cluster(run: Run) -> ControlPlane | None:
    """The run's control plane, from any shell; None before it was started or after it was stopped."""
    recorded = run.settings.get(CLUSTER)
    return attach(run.path("cluster"), str(recorded["server"]), str(recorded.get("etcd", ""))) if recorded else None


def stop(run: Run) -> None:
    """Stop every process of the run, last started first; safe to repeat, from any shell."""
    stop_recorded(records(run))
    # What a kubelet killed before its own clean-up left: its containers, the pods' network.
    containers.stop_leftovers(run.path(KUBELET))
    pod_network.delete_network(run.id)
    for key in (PROCESSES, CLUSTER, GITOPS_URL, ADDONS, POD_IDENTITY_AGENT):
        run.settings.pop(key, None)
    run.save()


def start_cluster(run: Run, outputs: Mapping[str, Any], clients: Callable[[str], Any]) -> ControlPlane:
    """The API server and friends of the EKS cluster's minor (as Terraform set it in the emulator), the Nodes of the
    ops node group Terraform created there, and what EKS runs for them: the Pod Identity agent, the ops nodes'
    kubelet (their pods as processes) and the kubelets' registration of the nodes Karpenter launches."""
    eks, pins = clients("eks"), versions()
    release, suffix = control_plane_build(cluster_version(eks, outputs), pins)
    plane = start_control_plane(run.path("cluster"), supervisor(run), suffix=suffix)
    run.settings[CLUSTER] = {"server": plane.server, "etcd": plane.etcd, "release": release}
    run.save()
    nodes = ops_nodes(eks, clients("ec2"), outputs["cluster_name"], outputs["ops_node_group_name"], pins)
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))
    env = aws_environment(run)
    start_pod_identity_agent(run, plane, outputs, env)
    start_kubelet(run, plane, [str(node["metadata"]["name"]) for node in nodes], env)
    node_registrar.start(
        supervisor(run),
        plane.pki.path("admin.kubeconfig"),
        endpoint=env["AWS_ENDPOINT_URL"],
        region=env["AWS_REGION"],
        env=env,
    )
    return plane


def aws_environment(run: Run) -> dict[str, str]:
    """The harness's own AWS settings for the run's emulator (the agent's and the registrar's, never a pod's)."""
    emulator = Emulator.from_settings(run.settings["emulator"])
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": emulator.endpoint,
        "AWS_REGION": str(run.settings["region"]),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }


def start_kubelet(run: Run, plane: ControlPlane, nodes: list[str], env: Mapping[str, str]) -> None:
    """The ops nodes' kubelet (harness.targets.kubelet) with the images and environment infra/targets.yaml declares;
    the pods reach the API server, the emulator and the agent at their loopback ports."""
    declared = local_target()
    folder = run.path(KUBELET)
    folder.mkdir(parents=True, exist_ok=True)
    endpoint = env["AWS_ENDPOINT_URL"]
    agent = str(run.settings[POD_IDENTITY_AGENT])
    api_port = int(urlsplit(plane.server).port or 443)
    config = kubelet.Config(
        nodes=nodes,
        folder=folder,
        run_id=run.id,
        kubeconfig=str(plane.pki.path("admin.kubeconfig")),
        api_port=api_port,
        forward=[api_port, *(int(urlsplit(url).port or 80) for url in (endpoint, agent))],
        services=SERVICE_CIDR,
        images=pod_images.resolve(declared.pod_images),
        env={name: entry["value"].format(emulator=endpoint) for name, entry in declared.pod_environment.items()},
        credentials_url=agent,
        ready_file=folder / "kubelet.ready",
    )
    kubelet.start(supervisor(run), config)


def cluster_version(eks: Any, outputs: Mapping[str, Any]) -> str:
    return str(eks.describe_cluster(name=outputs["cluster_name"])["cluster"]["version"])


def follow_cluster_version(run: Run, outputs: Mapping[str, Any], clients: Callable[[str], Any]) -> list[str]:
    """What EKS does once Terraform moved the cluster and its node group to another minor (on `local` the emulator
    only records the versions): the control plane of the cluster's minor replaces the running one on the same etcd
    data, and the ops Nodes report the kubelet of the node group's minor. What changed, one line each."""
    eks, pins = clients("eks"), versions()
    plane = cluster(run)
    if plane is None:
        raise EnvironmentProblem(f"run {run.id} has no local cluster")
    changed = []
    recorded = run.settings[CLUSTER]
    release, suffix = control_plane_build(cluster_version(eks, outputs), pins)
    if recorded.get("release") != release:
        began = datetime.now(timezone.utc).isoformat()
        old = [r for r in records(run) if r.name in CONTROL_PLANE]

        def stop_old() -> None:
            stop_recorded(old)
            run.settings[PROCESSES] = [r.settings() for r in records(run) if r not in old]
            run.save()

        replace_control_plane(plane, supervisor(run), stop_old, release=release, suffix=suffix)
        recorded.setdefault(STARTING, []).append([began, datetime.now(timezone.utc).isoformat()])
        changed.append(f"control plane v{recorded.get('release')} -> v{release} on the same etcd data")
        recorded["release"] = release
        run.save()
    group = ops_nodegroup(eks, str(outputs["cluster_name"]), str(outputs["ops_node_group_name"]))
    kubelet = kubelet_version(group, pins)
    selector = f"eks.amazonaws.com/nodegroup={group['nodegroupName']}"
    nodes = json.loads(plane.kubectl("get", "nodes", "-l", selector, "-o", "json"))["items"]
    for node in nodes:
        if (node.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion") != kubelet:
            status = {"status": {"nodeInfo": {"kubeletVersion": kubelet, "kubeProxyVersion": kubelet}}}
            name = node["metadata"]["name"]
            plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
            changed.append(f"node {name}: kubelet {kubelet}")
    return changed


def start_git_endpoint(run: Run, plane: ControlPlane) -> git_endpoint.GitEndpoint:
    """Snapshot this working tree and serve it to Argo CD (harness.targets.git_endpoint): its URL and commit."""
    folder = run.path("git")
    _bare, commit = git_endpoint.snapshot(repo_root(), folder)
    port = free_port()
    url = git_endpoint.url(port)
    probe = f"{url}/info/refs?service=git-upload-pack"
    supervisor(run).start(
        "git-endpoint",
        git_endpoint.command(folder, plane.pki.path("apiserver.crt"), plane.pki.path("apiserver.key"), port),
        ready=lambda: answers(probe, verify=str(plane.pki.path("ca.crt"))),
        timeout_s=30.0,
    )
    run.settings[GITOPS_URL] = url
    run.save()
    kubelet.forward_port(run.path(KUBELET), port)  # Argo CD's repo-server clones from it
    return git_endpoint.GitEndpoint(url, commit)


def watched(run: Run, plane: ControlPlane) -> str | None:
    """While a release waits: the first refused identity (a controller refused often exits for it), else the first
    crashed process or pod of the run."""
    if refused := refusal(run, plane):
        return refused
    dead = crashed(run)
    return next(iter(dead.values()), None)


def callers_of(run: Run) -> dict[str, str]:
    """Each ServiceAccount user the ops nodes' pods call as -> the workload they belong to (the kubelet's record)."""
    try:
        return dict(json.loads(run.path(KUBELET, kubelet.CALLERS).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def start_pod_identity_agent(run: Run, plane: ControlPlane, outputs: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """What EKS Pod Identity is for the controllers' pods (harness.targets.pod_identity), with infra/platform's
    associations; it reaches the emulator's STS with `env` (the harness's credentials, never a controller's)."""
    folder = run.path("identities")
    folder.mkdir(parents=True, exist_ok=True)
    associations = folder / ASSOCIATIONS
    associations.write_text(json.dumps(pod_identity.associations(outputs), indent=2), encoding="utf-8")
    port = free_port()
    pki = plane.pki
    flags = {
        "port": str(port),
        "folder": str(folder),
        "associations": str(associations),
        "server": plane.server,
        "ca": str(pki.path("ca.crt")),
        "cert": str(pki.path("admin.crt")),
        "key": str(pki.path("admin.key")),
        "endpoint": env["AWS_ENDPOINT_URL"],
        "region": env["AWS_REGION"],
        "cluster-name": str(outputs["cluster_name"]),
        "cluster-arn": str(outputs["cluster_arn"]),
    }
    supervisor(run).start(
        pod_identity.PROCESS,
        [sys.executable, "-m", "harness.targets.pod_identity", *(f"--{key}={value}" for key, value in flags.items())],
        ready=lambda: answers(f"http://{HOST}:{port}/healthz"),
        timeout_s=30.0,
        env=env,
    )
    run.settings[POD_IDENTITY_AGENT] = f"http://{HOST}:{port}{pod_identity.CREDENTIALS_PATH}"
    run.save()


def identities_honoured(run: Run, plane: ControlPlane) -> list[Result]:
    """Whether the API server refused a call of the run's controllers (its audit log, by their ServiceAccounts),
    whether the Pod Identity agent refused one its credentials (no association for its account), and whether IAM
    would deny one of their AWS calls (the run's emulator authorizes them: harness.aws.authorization)."""
    callers = callers_of(run)
    found = rbac.refusals(plane.audit_events(f'"code":{rbac.FORBIDDEN}'), callers, starting_windows(run))
    refused = pod_identity.read_refusals(run.path("identities"))
    return [rbac.judge_refusals(found, callers), pod_identity.judge_credentials(refused, callers), iam(run, callers)]


def iam(run: Run, callers: Mapping[str, str]) -> Result:
    """IAM's decisions on the controllers' calls, as the run's own emulator recorded them."""
    if not Emulator.from_settings(run.settings.get("emulator") or {"endpoint": ""}).owned:
        return Result.not_applicable(authorization.IAM_CHECK, run.target, EXTERNAL_EMULATOR)
    decisions = authorization.read_decisions(run.path(authorization.DECISIONS_FILE))
    return authorization.judge_decisions(decisions, roles(run, callers))


def roles(run: Run, callers: Mapping[str, str]) -> dict[str, str]:
    """Each Pod Identity role of the run -> the process that gets its credentials (by its ServiceAccount)."""
    try:
        associated = json.loads(run.path("identities", ASSOCIATIONS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    found = {}
    for account, role in associated.items():
        namespace, _, name = str(account).partition("/")
        found[str(role)] = callers.get(f"system:serviceaccount:{namespace}:{name}", account)
    return found


def refusal(run: Run, plane: ControlPlane) -> str | None:
    """The first refusal of a controller's identity so far (identities_honoured), or None."""
    return first_failure(identities_honoured(run, plane))


def require_running(run: Run) -> None:
    """Refuse to go on with a run whose processes died: name the first and its log's last words."""
    if dead := crashed(run):
        raise EnvironmentProblem(f"{next(iter(dead.values()))}; `harness down --run-id {run.id}` stops the rest")
