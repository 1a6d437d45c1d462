"""infra/addons on the local tier. The AWS Load Balancer Controller for real: its chart installed from
infra/addons' release (values from the platform's real outputs), the controller process configured from that
chart's Deployment and pointed at the emulator, its webhooks served on loopback. The game's Ingress, as the gate
renders gitops/ for the cluster secret infra/addons creates, becomes an internet-facing ALB in the emulator,
judged by the same judges the AWS run uses; deleting the Ingress makes the controller delete what it created.
Then the other releases: every add-on workload must be placed on the ops nodes by the real scheduler. Skips with
one line when the toolchain is not built (`make toolchain`) or Terraform/its provider is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.config import new_client_from_config

from harness.e2e.orchestration import expected_applications
from harness.errors import EnvironmentProblem
from harness.gate.api import build_model
from harness.kube import core, ingress
from harness.kube.client import KubernetesApiClient
from harness.project import reference_dir, repo_root
from harness.results import Result, Status
from harness.targets import argo_cd, lb_controller
from harness.targets.controlplane import ControlPlane, control_plane
from harness.targets.git_endpoint import serve as serve_git
from harness.targets.local import addon_addresses, apply_upstream_file
from harness.targets.nodes import ops_nodes
from harness.targets.releases import chart_folder, install, release, secret
from harness.targets.teardown import KUBERNETES_STEPS, Teardown, TeardownFacts, plan_teardown, teardown_ok
from harness.toolchain.build import locate, missing, shipped_data
from harness.waits import wait_for

BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm"]
UNBUILT = missing([*BINARIES, "aws-load-balancer-controller"])  # decided before any fixture applies the platform
pytestmark = [pytest.mark.integration, pytest.mark.skipif(UNBUILT is not None, reason=str(UNBUILT))]
ADDRESS = "helm_release.aws_load_balancer_controller"
GAME_KINDS = ("Namespace", "Service", "Ingress")


@pytest.fixture(scope="module")
def cluster_with_lb_controller(
    tmp_path_factory: pytest.TempPathFactory,
    harness_platform: Any,
    harness_platform_outputs: dict[str, Any],
    harness_aws_clients: Callable[[str], Any],
    harness_aws_target: Any,
) -> Iterator[ControlPlane]:
    outputs = harness_platform_outputs
    work = tmp_path_factory.mktemp("local-lbc")
    with control_plane(work) as cluster:
        nodes = ops_nodes(
            harness_aws_clients("eks"),
            harness_aws_clients("ec2"),
            outputs["cluster_name"],
            outputs["ops_node_group_name"],
        )
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))
        model = build_model([repo_root() / "infra" / "addons"], [], reference_dir())
        chosen = release(model, ADDRESS, outputs)
        install(
            locate("helm"),
            cluster.kubeconfig,
            chart_folder(reference_dir(), chosen.chart, chosen.version, shipped_data()),
            chosen,
            work,
        )
        env = lb_controller.aws_environment(harness_aws_target.endpoint_url, outputs["region"], os.environ)
        lb_controller.start(cluster.supervisor, cluster, namespace=chosen.namespace, release=chosen.name, aws_env=env)
        try:
            yield cluster
        finally:
            # The AWS run's controller-aware teardown, while the controllers still run: Argo CD's Applications,
            # then the Ingresses, and wait until the LB controller has deleted their ALBs (else they leak).
            kube = KubernetesApiClient(new_client_from_config(config_file=str(cluster.kubeconfig)))
            teardown = Teardown(harness_platform.run, harness_aws_clients, lambda: kube, lambda root: None)
            facts = TeardownFacts("", "local", addons_applied=True, platform_applied=True)
            results = teardown.execute([s for s in plan_teardown(facts) if s.name in KUBERNETES_STEPS])
            assert teardown_ok(results), [(r.name, r.status.value, r.why) for r in results]


def game_objects() -> list[dict[str, Any]]:
    """The game's Namespace, Service and Ingress as Argo CD would apply them for the in-cluster secret."""
    model = build_model(
        [repo_root() / "infra" / "addons", repo_root() / "infra" / "platform"],
        [repo_root() / "gitops"],
        reference_dir(),
    )
    return [
        o.doc
        for o in model.effective
        if o.namespace in ("game-2048", "") and o.kind in GAME_KINDS and o.name == "game-2048"
    ]


def test_the_game_ingress_becomes_an_internet_facing_alb(
    cluster_with_lb_controller: ControlPlane,
    harness_platform_outputs: dict[str, Any],
    harness_aws_clients: Callable[[str], Any],
) -> None:
    cluster = cluster_with_lb_controller
    objects = game_objects()
    assert sorted(o["kind"] for o in objects) == sorted(GAME_KINDS)
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    def read_ingress() -> dict[str, Any]:
        return dict(json.loads(cluster.kubectl("-n", "game-2048", "get", "ingress", "game-2048", "-o", "json")))

    address = wait_for(read_ingress, ingress.judge_ingress_address, timeout=90, interval=2)
    assert address.status is Status.PASS, address.why
    hostname = ingress.ingress_hostname(read_ingress())
    assert hostname
    facts = ingress.fetch_load_balancer(harness_aws_clients("elbv2"), harness_aws_clients("ec2"), hostname)
    judged = ingress.judge_load_balancer(facts)
    assert judged.status is Status.PASS, judged.why
    elbv2 = harness_aws_clients("elbv2")
    (balancer,) = elbv2.describe_load_balancers(Names=[hostname.split(".")[0].rsplit("-", 1)[0]])["LoadBalancers"]
    assert balancer["Scheme"] == "internet-facing"
    assert {z["SubnetId"] for z in balancer["AvailabilityZones"]} == set(harness_platform_outputs["public_subnet_ids"])
    tags = {
        t["Key"]: t["Value"]
        for t in elbv2.describe_tags(ResourceArns=[balancer["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    }
    assert tags["run-id"] == harness_platform_outputs["tags"]["run-id"]
    groups = elbv2.describe_target_groups(LoadBalancerArn=balancer["LoadBalancerArn"])["TargetGroups"]
    assert [g["TargetType"] for g in groups] == ["ip"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [listener["Port"] for listener in listeners] == [80]
    assert not cluster.supervisor.crashed()


def test_deleting_the_ingress_makes_the_controller_delete_the_alb(
    cluster_with_lb_controller: ControlPlane, harness_aws_clients: Callable[[str], Any]
) -> None:
    cluster = cluster_with_lb_controller
    elbv2 = harness_aws_clients("elbv2")
    before = elbv2.describe_load_balancers()["LoadBalancers"]
    assert before, "the previous test left no ALB to delete"
    cluster.kubectl("-n", "game-2048", "delete", "ingress", "game-2048", "--wait=true", "--timeout=90s")
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []


# infra/addons' releases after the LB controller, in its depends_on order (the bootstrap release needs Argo CD's
# processes and the Git endpoint, which come next).
LATER_RELEASES = ("helm_release.karpenter_crd", "helm_release.karpenter", "helm_release.argocd")


def test_every_add_on_workload_is_placed_on_the_ops_nodes_by_the_real_scheduler(
    cluster_with_lb_controller: ControlPlane, harness_platform_outputs: dict[str, Any], tmp_path: Path
) -> None:
    """The charts' nodeSelectors and tolerations (from infra/addons) against the node group's labels and taint
    (from infra/platform), decided by kube-scheduler itself; KWOK runs the pods it places."""
    cluster = cluster_with_lb_controller
    root = repo_root() / "infra" / "addons"
    model = build_model([root], [], reference_dir())
    for address in addon_addresses(root):  # Argo CD's CRDs, which its release leaves to infra/addons
        if address.startswith("kubernetes_manifest."):
            apply_upstream_file(cluster, model, address)
    for address in LATER_RELEASES:
        chosen = release(model, address, harness_platform_outputs)
        install(
            locate("helm"),
            cluster.kubeconfig,
            chart_folder(reference_dir(), chosen.chart, chosen.version, shipped_data()),
            chosen,
            tmp_path,
        )

    def read() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        pods = {
            group.name: json.loads(
                cluster.kubectl("-n", group.namespace, "get", "pods", "-l", group.label_selector, "-o", "json")
            )["items"]
            for group in core.CONTROLLER_PODS
        }
        return pods, json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]

    placed = wait_for(read, lambda state: core.judge_controllers_on_ops(*state), timeout=180, interval=3)
    assert placed.status is Status.PASS, f"{placed.why}: {placed.evidence}"
    assert not cluster.supervisor.crashed()


def test_argo_cd_syncs_gitops_from_the_local_git_endpoint(
    cluster_with_lb_controller: ControlPlane, harness_platform_outputs: dict[str, Any], tmp_path: Path
) -> None:
    """Argo CD's own processes, configured by its chart (installed above), sync this working tree: the root
    Application creates the ApplicationSets, and their Applications sync gitops/ into the cluster."""
    try:
        argo_cd.redis_server()
    except EnvironmentProblem as exc:
        pytest.skip(str(exc))
    cluster = cluster_with_lb_controller
    with serve_git(
        repo_root(), tmp_path / "git", cluster.pki.path("apiserver.crt"), cluster.pki.path("apiserver.key")
    ) as git:
        model = build_model([repo_root() / "infra" / "addons"], [], reference_dir())
        variables = {"gitops_repo_url": git.url}
        namespace = release(model, "helm_release.argocd", harness_platform_outputs).namespace
        argo_cd.start(
            cluster.supervisor,
            cluster,
            namespace=namespace,
            work=tmp_path / "argocd",
            git_ca=cluster.pki.path("ca.crt"),
            base_env=os.environ,
        )
        manifest = secret(model, "kubernetes_secret_v1.in_cluster", harness_platform_outputs, variables)
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        bootstrap = release(model, "helm_release.bootstrap", harness_platform_outputs, variables)
        install(
            locate("helm"),
            cluster.kubeconfig,
            repo_root() / "infra" / "addons" / "charts" / "bootstrap",
            bootstrap,
            tmp_path,
        )

        def applications() -> list[dict[str, Any]]:
            return list(json.loads(cluster.kubectl("-n", namespace, "get", "applications", "-o", "json"))["items"])

        expected = expected_applications()
        synced = wait_for(applications, lambda apps: judge_synced(apps, expected), timeout=240, interval=5)
        assert synced.status is Status.PASS, f"{synced.why}: {synced.evidence}"
        # What Argo CD synced is real: the Karpenter objects exist, and the game's Ingress (Argo CD's, this
        # time) gets its ALB from the LB controller.
        assert json.loads(cluster.kubectl("get", "nodepools", "-o", "json"))["items"]
        assert json.loads(cluster.kubectl("get", "ec2nodeclasses", "-o", "json"))["items"]

        def read_ingress() -> dict[str, Any]:
            return dict(json.loads(cluster.kubectl("-n", "game-2048", "get", "ingress", "game-2048", "-o", "json")))

        address = wait_for(read_ingress, ingress.judge_ingress_address, timeout=120, interval=3)
        assert address.status is Status.PASS, address.why
        assert not cluster.supervisor.crashed()


def judge_synced(apps: list[dict[str, Any]], expected: tuple[str, ...]) -> Result:
    """Every expected Application exists and is Synced (Healthy needs Karpenter's nodes for the game: #11)."""
    state = {a["metadata"]["name"]: (a.get("status") or {}).get("sync", {}).get("status") for a in apps}
    missing = sorted(set(expected) - set(state))
    unsynced = {name: status for name, status in state.items() if status != "Synced"}
    if missing or unsynced:
        return Result.pending("applications synced", f"missing {missing}, not synced {unsynced}", state=state)
    return Result.passed("applications synced", f"{len(state)} Synced", state=state)
