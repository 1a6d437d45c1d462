"""Karpenter on the local tier, for real: the AWS provider (the toolchain's build) as a host process against the
local API server and the moto server (with the emulator gaps infra/targets.yaml declares patched), configured
from its chart as infra/addons installs it; the node registrar plays the kubelets. gitops/'s NodePool and
EC2NodeClass (the EC2NodeClass with the local overlay) and the game make Karpenter launch spot instances in the
emulator for pending pods, join them as Nodes, drain them on a spot interruption warning and consolidate them
away, judged by the same judges the AWS run uses. Skips with one line when the toolchain is not built.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.aws import leaks
from harness.gate.api import build_model
from harness.keys import NODEPOOL_LABEL
from harness.kube import karpenter as judges
from harness.kube import spot
from harness.kube.consolidation import judge_scale_in
from harness.kube.core import Before, cpu_request, labels_of
from harness.project import local_target, reference_dir, repo_root
from harness.results import Result, Status
from harness.targets import karpenter, lb_controller, node_registrar
from harness.targets.controlplane import ControlPlane, control_plane
from harness.targets.nodes import ops_nodes
from harness.targets.releases import chart_folder, install, release, secret
from harness.toolchain.build import locate, missing, shipped_data
from harness.waits import wait_for

BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm"]
UNBUILT = missing([*BINARIES, "karpenter"])
pytestmark = [pytest.mark.integration, pytest.mark.skipif(UNBUILT is not None, reason=str(UNBUILT))]
RELEASES = ("helm_release.karpenter_crd", "helm_release.karpenter")
POOL = "apps"
GAME = "game-2048"
KARPENTER_KINDS = ("NodePool", "EC2NodeClass")
GAME_KINDS = ("Namespace", "Deployment", "Service", "PodDisruptionBudget")


@dataclass
class Local:
    cluster: ControlPlane
    outputs: dict[str, Any]
    aws: Callable[[str], Any]
    measured: dict[str, Any]
    platform_resources: dict[str, list[str]]

    def json(self, *args: str) -> Any:
        return json.loads(self.cluster.kubectl(*args, "-o", "json"))

    def state(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Pods of the game, NodeClaims, Nodes, events: what the judges read."""
        pods = self.json("-n", GAME, "get", "pods", "-l", f"app.kubernetes.io/name={GAME}")["items"]
        claims = self.json("get", "nodeclaims")["items"]
        nodes = self.json("get", "nodes")["items"]
        events = self.json("get", "events", "-A")["items"]
        return pods, claims, nodes, events

    def run_instances(self) -> list[dict[str, Any]]:
        """The emulator's live instances tagged with the run id and launched by Karpenter for the pool."""
        reservations = self.aws("ec2").describe_instances(
            Filters=[
                {"Name": "tag:run-id", "Values": [self.outputs["tags"]["run-id"]]},
                {"Name": f"tag:{NODEPOOL_LABEL}", "Values": [POOL]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
        return [i for r in reservations for i in r["Instances"]]


def rendered(kinds: tuple[str, ...], namespace: str, outputs: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """gitops/ objects of `kinds` as Argo CD applies them for the cluster secret infra/addons writes (the
    platform's real outputs, the run's id and expiry as `harness up` passes them): the gate renders them."""
    tags = outputs["tags"]
    variables = {"run_id": tags["run-id"], "expires_at": tags["expires-at"], "gitops_repo_url": ""}
    addons = build_model([repo_root() / "infra" / "addons"], [], reference_dir(), variables=variables)
    folder = work / "cluster-secret"
    folder.mkdir(exist_ok=True)
    manifest = secret(addons, "kubernetes_secret_v1.in_cluster", outputs, variables)
    (folder / "in-cluster.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    model = build_model([], [repo_root() / "gitops", folder], reference_dir())
    return [o.doc for o in model.effective if o.kind in kinds and o.namespace in (namespace, "")]


@pytest.fixture(scope="module")
def local(
    tmp_path_factory: pytest.TempPathFactory,
    harness_platform: Any,
    harness_platform_outputs: dict[str, Any],
    harness_aws_clients: Callable[[str], Any],
    harness_aws_target: Any,
) -> Iterator[Local]:
    outputs = harness_platform_outputs
    work = tmp_path_factory.mktemp("local-karpenter")
    with control_plane(work) as cluster:
        nodes = ops_nodes(
            harness_aws_clients("eks"),
            harness_aws_clients("ec2"),
            outputs["cluster_name"],
            outputs["ops_node_group_name"],
        )
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))
        model = build_model([repo_root() / "infra" / "addons"], [], reference_dir())
        for address in RELEASES:
            chosen = release(model, address, outputs)
            install(
                locate("helm"),
                cluster.kubeconfig,
                chart_folder(reference_dir(), chosen.chart, chosen.version, shipped_data()),
                chosen,
                work,
            )
        before = run_leftovers(harness_aws_clients, outputs["tags"]["run-id"])  # the platform's own
        env = lb_controller.aws_environment(harness_aws_target.endpoint_url, outputs["region"], os.environ)
        karpenter.start(cluster.supervisor, cluster, namespace=chosen.namespace, release=chosen.name, aws_env=env)
        node_registrar.start(
            cluster.supervisor,
            cluster.pki.path("admin.kubeconfig"),
            endpoint=harness_aws_target.endpoint_url,
            region=outputs["region"],
            env=env,
        )
        target = local_target()
        pool_objects = [target.overlaid(doc) for doc in rendered(KARPENTER_KINDS, "", outputs, work)]
        assert sorted(o["kind"] for o in pool_objects) == sorted(KARPENTER_KINDS)
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(pool_objects))
        game = [o for o in rendered(GAME_KINDS, GAME, outputs, work) if o["metadata"]["name"] == GAME]
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(game))
        state = Local(cluster, outputs, harness_aws_clients, {}, before)
        try:
            yield state
        finally:
            print(f"\nkarpenter on the local tier, measured: {json.dumps(state.measured)}")
            teardown(state)


def teardown(state: Local) -> None:
    """What the AWS teardown does for Karpenter: delete the NodePools and the EC2NodeClasses while Karpenter
    runs, and wait until it has terminated their instances and deleted launch templates and instance profiles."""
    cluster = state.cluster
    # The game first, as Argo CD's Application deletion does: its PodDisruptionBudget would hold the last drain.
    cluster.kubectl("delete", "namespace", GAME, "--wait=true", "--timeout=60s")
    cluster.kubectl("delete", "nodepools", "--all", "--wait=true", "--timeout=120s")
    cluster.kubectl("delete", "ec2nodeclasses", "--all", "--wait=true", "--timeout=120s")

    def judge(found: dict[str, list[str]]) -> Result:
        name = "karpenter leaves nothing of the run"
        left = {kind: sorted(set(refs) - set(state.platform_resources[kind])) for kind, refs in found.items()}
        if any(left.values()):
            return Result.pending(name, "Karpenter's resources remain", **left)
        return Result.passed(name, "no instance, launch template or instance profile beyond the platform's", **left)

    done = wait_for(lambda: run_leftovers(state.aws, state.outputs["tags"]["run-id"]), judge, timeout=60, interval=2)
    assert done.status is Status.PASS, done.evidence


def run_leftovers(clients: Callable[[str], Any], run_id: str) -> dict[str, list[str]]:
    """The run's instances, launch templates and instance profiles, found as the sweep finds leaks."""
    finders = {
        "instances": leaks.find_instances,
        "launch_templates": leaks.find_launch_templates,
        "instance_profiles": leaks.find_instance_profiles,
    }
    return {kind: [leak.ref for leak in find(clients, run_id)] for kind, find in finders.items()}


def read_nodeclass(state: Local) -> dict[str, Any] | None:
    found = state.json("get", "ec2nodeclasses")["items"]
    return found[0] if found else None


def test_the_ec2nodeclass_discovers_the_platforms_subnets_security_group_and_ami(local: Local) -> None:
    pool = wait_for(
        lambda: (local.json("get", "nodepool", POOL), read_nodeclass(local)),
        lambda objs: judges.judge_pool_ready(*objs),
        timeout=90,
        interval=2,
    )
    assert pool.status is Status.PASS, f"{pool.why}: {pool.evidence}"
    discovered = judges.judge_node_class_discovery(
        read_nodeclass(local),
        subnets=local.outputs["private_subnet_ids"],
        security_groups=[local.outputs["discovery_security_group_id"]],
        amis=[image["ami_id"] for image in local_target().emulator_images],
    )
    assert discovered.status is Status.PASS, f"{discovered.why}: {discovered.evidence}"
    assert not local.cluster.supervisor.crashed()


def test_pending_game_pods_become_spot_instances_and_nodes(local: Local) -> None:
    deployment = local.json("-n", GAME, "get", "deployment", GAME)
    replicas = judges.scale_out_replicas(deployment, 16)
    nodepool = local.json("get", "nodepool", POOL)
    before = Before.of(*local.state()[:2])  # the baseline: judged and timed apart from the scale-out
    request = cpu_request(deployment)
    scaled_at = time.monotonic()
    local.cluster.kubectl("-n", GAME, "scale", "deployment", GAME, f"--replicas={replicas}")

    def judge(state: tuple[Any, ...]) -> Result:
        pods, claims, nodes, events = state
        return judges.judge_scale_out(
            pods,
            claims,
            nodes,
            replicas=replicas,
            nodepool=POOL,
            before=before,
            request=request,
            node_labels=judges.nodepool_template_labels(nodepool),
            events=events,
        )

    out = wait_for(local.state, judge, timeout=180, interval=2)
    assert out.status is Status.PASS, f"{out.why}: {json.dumps(out.evidence, default=str)[:3000]}"
    local.measured["scale_out_s"] = round(time.monotonic() - scaled_at, 1)
    pods, claims, nodes, events = local.state()
    pool_nodes = [n for n in nodes if labels_of(n).get(NODEPOOL_LABEL) == POOL]
    # The NodePool's taint and the spot capacity type on every node; each node is an instance in the emulator.
    for node in pool_nodes:
        assert {"key": "eks-platform/pool", "value": "apps", "effect": "NoSchedule"} in node["spec"]["taints"]
    instances = {i["InstanceId"]: i for i in local.run_instances()}
    assert {labels_of(n)["kubernetes.io/hostname"] for n in pool_nodes} == set(instances)
    assert {i.get("InstanceLifecycle") for i in instances.values()} == {"spot"}
    assert all(
        [g["GroupId"] for g in i["SecurityGroups"]] == [local.outputs["discovery_security_group_id"]]
        for i in instances.values()
    )
    # What the teardown must remove later: Karpenter's launch template and instance profile, with the run's tags.
    created = run_leftovers(local.aws, local.outputs["tags"]["run-id"])
    for kind in ("launch_templates", "instance_profiles"):
        assert set(created[kind]) - set(local.platform_resources[kind]), f"Karpenter created no {kind} for the run"
    # The NodePool's CPU limit holds.
    launched_cpu = sum(int(c["status"]["capacity"]["cpu"]) for c in claims if c.get("status", {}).get("capacity"))
    assert launched_cpu <= int(nodepool["spec"]["limits"]["cpu"])
    timeline = judges.build_timeline(pods, claims, nodes, events, before)
    figures = spot.scale_out_figures(timeline, claims, replicas=replicas, request=request, nodepool=POOL)
    launched = [n for n in timeline.nodes if n.new]
    local.measured.update(
        replicas=replicas,
        instance_types=sorted(labels_of(n)["node.kubernetes.io/instance-type"] for n in pool_nodes),
        scale_out_nodes={n.node: (n.instance_type, str(n.claim_created), str(n.node_ready)) for n in launched},
        **asdict(figures),
    )
    # The minimum counts every replica: the baseline's nodes hold some of them, the scale-out's hold the rest.
    assert figures.baseline_nodes + figures.nodes >= (figures.bin_packing_minimum or 1)
    assert not local.cluster.supervisor.crashed()


def interruption_warning(instance_id: str, region: str) -> dict[str, Any]:
    """EventBridge's EC2 Spot Instance Interruption Warning, as the platform's rule forwards it to the queue."""
    return {
        "version": "0",
        "id": "local-spot-interruption",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:123456789012:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"},
    }


def test_a_spot_interruption_warning_drains_and_replaces_the_node(local: Local) -> None:
    before = {i["InstanceId"] for i in local.run_instances()}
    assert before, "the scale-out left no instance to interrupt"
    victim = sorted(before)[0]
    sqs = local.aws("sqs")
    queue = sqs.get_queue_url(QueueName=local.outputs["karpenter_interruption_queue_name"])["QueueUrl"]
    deployment = local.json("-n", GAME, "get", "deployment", GAME)
    replicas = judges.scale_out_replicas(deployment, 16)
    at_warning = Before.of(*local.state()[:2])  # a replacement is a NodeClaim not in it
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(interruption_warning(victim, local.outputs["region"])))

    def judge(state: tuple[Any, ...]) -> Result:
        pods, claims, nodes, events = state
        name = "karpenter replaces an interrupted spot node"
        if any(labels_of(n).get("kubernetes.io/hostname") == victim for n in nodes):
            return Result.pending(name, f"node {victim} still there")
        if victim in {i["InstanceId"] for i in local.run_instances()}:
            return Result.pending(name, f"instance {victim} not terminated")
        return judges.judge_scale_out(
            pods,
            claims,
            nodes,
            replicas=replicas,
            nodepool=POOL,
            before=at_warning,
            request=cpu_request(deployment),
            events=events,
        )

    replaced = wait_for(local.state, judge, timeout=180, interval=2)
    assert replaced.status is Status.PASS, f"{replaced.why}: {json.dumps(replaced.evidence, default=str)[:3000]}"
    local.measured["interruption_replaced_s"] = round(time.monotonic() - sent_at, 1)
    after = {i["InstanceId"] for i in local.run_instances()}
    assert victim not in after and after - before, (before, after)
    (terminated,) = local.aws("ec2").describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"]
    assert terminated["State"]["Name"] in ("shutting-down", "terminated")
    _, _, _, events = local.state()
    reasons = {e.get("reason") for e in events if (e.get("involvedObject") or {}).get("name") == victim}
    assert reasons & {"SpotInterrupted", "Disrupted", "DisruptionTerminating"}, reasons
    assert not local.cluster.supervisor.crashed()


def test_scaling_back_in_consolidates_the_nodes_away(local: Local) -> None:
    pods, claims, _, _ = local.state()
    before = Before.of(pods, judges.in_pool(claims, POOL))
    scaled_at = time.monotonic()
    local.cluster.kubectl("-n", GAME, "scale", "deployment", GAME, "--replicas=0")

    def judge(state: tuple[Any, ...]) -> Result:
        pods, claims, nodes, events = state
        return judge_scale_in(claims, nodes, events, nodepool=POOL, pods=pods, replicas=0, request="0", before=before)

    gone = wait_for(local.state, judge, timeout=420, interval=3)  # consolidateAfter 1m + up to 5 min (docs/harness.md)
    assert gone.status is Status.PASS, f"{gone.why}: {json.dumps(gone.evidence, default=str)[:3000]}"
    local.measured["consolidation_s"] = round(time.monotonic() - scaled_at, 1)
    assert (
        wait_for(
            local.run_instances,
            lambda left: Result.passed("terminated", "none") if not left else Result.pending("terminated", str(left)),
            timeout=30,
            interval=1,
        ).status
        is Status.PASS
    )
    assert not local.cluster.supervisor.crashed()
