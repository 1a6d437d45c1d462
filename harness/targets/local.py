"""The local target's Kubernetes side of a run: the control plane, the ops nodes, the Git endpoint, infra/addons'
releases and the controllers, all as processes on this machine that outlive the shell that started them.

Every process is recorded in the run's settings the moment it starts (harness.processes.ProcessRecord), so
`harness down` from any shell, an interrupted `up`, or a failed stage stops exactly what the run started.

The add-ons are installed release by release, in the order infra/addons declares them (its depends_on order),
with the helm CLI from that root's own definitions (harness.targets.releases): each controller must be running
as a host process before the next chart goes in (the LB controller's webhooks must answer before any chart
creates a Service), which one `terraform apply` of every release cannot interleave. infra/targets.yaml
declares this difference (`addons_by_terraform`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from harness.aws import authorization
from harness.aws.emulator import Emulator
from harness.errors import EnvironmentProblem, InputError
from harness.gate.api import build_model
from harness.gate.model import Model
from harness.kube import rbac
from harness.processes import HOST, ProcessRecord, Supervisor, free_port, stop_recorded
from harness.project import local_target, reference_dir, repo_root, versions
from harness.results import Result, first_failure
from harness.run import Run
from harness.targets import argo_cd, git_endpoint, karpenter, lb_controller, node_registrar, pod_identity
from harness.targets.controlplane import (
    ControlPlane,
    PodIdentities,
    answers,
    attach,
    replace_control_plane,
    start_control_plane,
)
from harness.targets.nodes import kubelet_version, ops_nodegroup, ops_nodes
from harness.targets.releases import Release, chart_folder, install, release, secret, upstream_file
from harness.toolchain.build import Entry, components_of, entry_for, locate, missing, shipped_data
from harness.toolchain.components import BY_NAME, CONTROL_PLANE, control_plane_build

PROCESSES = "processes"  # run settings: the records of every process the run started, in start order
CLUSTER = "cluster"  # run settings: {"server": the API server's URL, "etcd": its etcd's, "release": its release}
STARTING = "starting"  # under CLUSTER: [began, ready] of each API server that replaced another (UTC, ISO 8601)
GITOPS_URL = "gitops_repo_url"  # run settings: what the cluster secret points Argo CD at
ADDONS = "addons_installed"  # run settings: set before the first release goes in
POD_IDENTITY_AGENT = "pod_identity_agent"  # run settings: the agent's credentials URL
EXTERNAL_EMULATOR = "the emulator at AWS_ENDPOINT_URL is not the run's own: it enforces no IAM"
ASSOCIATIONS = "pod-identity-associations.json"  # under the run's identities/: ServiceAccount -> role
ADDONS_ROOT = ("infra", "addons")
TOKEN_LIFETIME_S = 3600  # a projected ServiceAccount token's hour; renewed at 80 % of it
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
    "aws-load-balancer-controller",
    "argocd",
    "karpenter",
)


def unavailable() -> str | None:
    """Why this machine cannot run the local target (one line naming the fix), or None."""
    return missing(list(BINARIES))


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


def crashed(run: Run) -> dict[str, str]:
    """Each process of the run that is no longer running -> one line with its log's last words."""
    return {record.name: line for record in records(run) if (line := record.crashed())}


def cluster(run: Run) -> ControlPlane | None:
    """The run's control plane, from any shell; None before it was started or after it was stopped."""
    recorded = run.settings.get(CLUSTER)
    return attach(run.path("cluster"), str(recorded["server"]), str(recorded.get("etcd", ""))) if recorded else None


def stop(run: Run) -> None:
    """Stop every process of the run, last started first; safe to repeat, from any shell."""
    stop_recorded(records(run))
    for key in (PROCESSES, CLUSTER, GITOPS_URL, ADDONS, POD_IDENTITY_AGENT):
        run.settings.pop(key, None)
    run.save()


def start_cluster(run: Run, outputs: Mapping[str, Any], clients: Callable[[str], Any]) -> ControlPlane:
    """The API server and friends of the EKS cluster's minor (as Terraform set it in the emulator), then the Nodes
    of the ops node group Terraform created there."""
    eks, pins = clients("eks"), versions()
    release, suffix = control_plane_build(cluster_version(eks, outputs), pins)
    plane = start_control_plane(run.path("cluster"), supervisor(run), suffix=suffix)
    run.settings[CLUSTER] = {"server": plane.server, "etcd": plane.etcd, "release": release}
    run.save()
    nodes = ops_nodes(eks, clients("ec2"), outputs["cluster_name"], outputs["ops_node_group_name"], pins)
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))
    return plane


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
        running = records(run)
        stop_recorded([r for r in running if r.name in CONTROL_PLANE])
        run.settings[PROCESSES] = [r.settings() for r in running if r.name not in CONTROL_PLANE]
        run.save()
        replace_control_plane(plane, supervisor(run), suffix=suffix)
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
    return git_endpoint.GitEndpoint(url, commit)


def addon_addresses(root: Path) -> list[str]:
    """infra/addons' in-cluster resources in declaration order, which is their depends_on order
    (tests/unit/test_local_target.py holds every depends_on to it)."""
    model = build_model([root], [], reference_dir())
    kinds = ("helm_release", "kubernetes_secret_v1", "kubernetes_manifest")
    resources = sorted((r for r in model.terraform.resources if r.type in kinds), key=lambda r: (str(r.file), r.line))
    return [r.address for r in resources]


def chart_dir(chosen: Release, root: Path) -> Path:
    """A release's chart: a folder of infra/addons itself, else the pinned chart folder (its controller module's,
    else the reference data's)."""
    local = Path(chosen.chart)
    if local.is_absolute() or (root / local).is_dir():
        return root / local
    return chart_folder(reference_dir(), chosen.chart, chosen.version, shipped_data())


def apply_upstream_file(plane: ControlPlane, model: Model, address: str) -> None:
    """A resource Terraform would fill from an upstream tag over HTTP, applied from the pinned module's copy."""
    declared = next((u for u in local_target().upstream_files if address.startswith(u.resource + "[")), None)
    if declared is None:
        raise InputError(
            f"infra/addons: {address} is not declared in infra/targets.yaml local_target.upstream_files: "
            "the local target cannot tell what it holds"
        )
    version = entry_for(BY_NAME[declared.component]).version
    path = upstream_file(model, declared, address, version, shipped_data())
    plane.kubectl("apply", "--server-side", "-f", str(path))
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    if manifest.get("kind") == "CustomResourceDefinition":  # what comes next creates objects of its kind
        plane.crd_established(manifest["metadata"]["name"])


def install_addons(
    run: Run, plane: ControlPlane, outputs: Mapping[str, Any], variables: Mapping[str, Any], aws_env: Mapping[str, str]
) -> list[str]:
    """infra/addons' releases and secret, each controller started right after its release; returns what went in."""
    root = repo_root().joinpath(*ADDONS_ROOT)
    # The run's input values, as `terraform apply -var` would give them (run id and expiry tag what the
    # controllers create; without them the defaults, empty, would stand).
    model = build_model([root], [], reference_dir(), variables=variables)
    work = run.path("addons")
    work.mkdir(parents=True, exist_ok=True)
    run.settings[ADDONS] = True
    run.save()
    start_pod_identity_agent(run, plane, outputs, aws_env)
    installed = []
    for address in addon_addresses(root):
        if address.startswith("kubernetes_secret_v1."):
            plane.kubectl("apply", "-f", "-", stdin=json.dumps(secret(model, address, outputs, variables)))
        elif address.startswith("kubernetes_manifest."):
            apply_upstream_file(plane, model, address)
        else:
            chosen = release(model, address, outputs, variables)
            install(locate("helm"), plane.kubeconfig, chart_dir(chosen, root), chosen, work)
            start_controller(run, plane, chosen, aws_env)
        installed.append(address)
    return installed


def identities(run: Run, plane: ControlPlane) -> PodIdentities:
    """The controllers' ServiceAccount credentials: tokens of a projected volume's life, which the run's Pod
    Identity agent renews before they expire (controlplane.refresh_tokens)."""
    return PodIdentities(plane, run.path("identities"), TOKEN_LIFETIME_S, str(run.settings.get(POD_IDENTITY_AGENT, "")))


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
    callers = identities(run, plane).callers()
    starting = [
        (datetime.fromisoformat(began), datetime.fromisoformat(ready))
        for began, ready in (run.settings.get(CLUSTER) or {}).get(STARTING, [])
    ]
    found = rbac.refusals(plane.audit_events(f'"code":{rbac.FORBIDDEN}'), callers, starting)
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


def start_controller(run: Run, plane: ControlPlane, chosen: Release, aws_env: Mapping[str, str]) -> None:
    """The host process(es) standing in for a release's workloads, if it has any. A controller whose identity is
    refused while it comes up (a call by its RBAC, its credentials for want of an association, an AWS call by its
    IAM policy) is named by that refusal at once, instead of when its readiness times out."""
    started = supervisor(run, watchdog=lambda: refusal(run, plane))
    pods = identities(run, plane)
    if chosen.chart == "aws-load-balancer-controller":
        lb_controller.start(
            started, plane, namespace=chosen.namespace, release=chosen.name, aws_env=aws_env, identities=pods
        )
    elif chosen.chart == "karpenter":
        karpenter.start(
            started, plane, namespace=chosen.namespace, release=chosen.name, aws_env=aws_env, identities=pods
        )
        # The kubelets' part: a Node for each NodeClaim Karpenter launched (harness.targets.node_registrar).
        node_registrar.start(
            started,
            plane.pki.path("admin.kubeconfig"),
            endpoint=aws_env["AWS_ENDPOINT_URL"],
            region=aws_env["AWS_REGION"],
            env=aws_env,
        )
    elif chosen.chart == "argo-cd":
        argo_cd.start(
            started,
            plane,
            namespace=chosen.namespace,
            work=run.path("argocd"),
            git_ca=plane.pki.path("ca.crt"),
            base_env=os.environ,
            identities=pods,
        )


def refusal(run: Run, plane: ControlPlane) -> str | None:
    """The first refusal of a controller's identity so far (identities_honoured), or None."""
    return first_failure(identities_honoured(run, plane))


def require_running(run: Run) -> None:
    """Refuse to go on with a run whose processes died: name the first and its log's last words."""
    if dead := crashed(run):
        raise EnvironmentProblem(f"{next(iter(dead.values()))}; `harness down --run-id {run.id}` stops the rest")
