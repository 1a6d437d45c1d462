"""Placement judges on nodes and pods recorded from a local-target run (ops nodes, controllers on them, the game's
pods Pending off them), and on the recorded Karpenter scale-out for the states that need Karpenter nodes."""

from __future__ import annotations

from typing import Any

from kube_fixtures import FakeKubeClient, items, load, named

from harness.kube.core import (
    CONTROLLER_PODS,
    GAME_PODS,
    condition,
    judge_controllers_on_ops,
    judge_ops_nodes,
    judge_pinned_image,
    judge_workload_off_ops,
    parse_time,
    pod_phase_summary,
)
from harness.results import Status

OPS_A, OPS_B = "ops-0", "ops-1"  # the ops node group's nodes, as the local target registers them
SPOT = "i-10bb3987b8b6c7f86"  # the spot node of the recorded scale-out (EKS names a node after its instance)
RECORDED = "recorded/synced"


def nodes() -> list[dict[str, Any]]:
    """The recorded ops nodes."""
    return items(f"{RECORDED}/nodes.yaml")


def karpenter_nodes() -> list[dict[str, Any]]:
    """The Karpenter nodes of the recorded scale-out (recorded/scaling: the baseline's spot node)."""
    return [n for n in items("recorded/scaling/nodes.yaml") if "karpenter.sh/nodepool" in n["metadata"]["labels"]]


def recorded_reader(pods_argocd: str = f"{RECORDED}/pods_argocd.yaml") -> FakeKubeClient:
    return FakeKubeClient(
        load(pods_argocd),
        load(f"{RECORDED}/pods_kube-system.yaml"),
        load(f"{RECORDED}/nodes.yaml"),
        {"kind": "NodeList", "items": karpenter_nodes()},
    )


def controller_pods(reader: FakeKubeClient) -> dict[str, list[dict[str, Any]]]:
    return {group.name: reader.list_pods(group.namespace, group.label_selector) for group in CONTROLLER_PODS}


# ---------------------------------------------------------------- ops nodes


def test_ops_nodes_with_labels_taint_and_ready_pass() -> None:
    result = judge_ops_nodes(nodes(), nodegroup="ops")
    assert result.status is Status.PASS, result.why
    assert result.why == "2 ops node(s) Ready, labelled and tainted"
    assert result.evidence["nodes"] == [OPS_A, OPS_B]
    with_spot = judge_ops_nodes([*nodes(), *karpenter_nodes()], nodegroup="ops")
    assert with_spot.evidence["nodes"] == [OPS_A, OPS_B]  # the Karpenter nodes are not judged as ops nodes


def test_an_ops_node_without_its_label_fails_naming_it() -> None:
    recorded = nodes()
    del named(recorded, OPS_B)["metadata"]["labels"]["workload-type"]
    result = judge_ops_nodes(recorded)
    assert result.status is Status.FAIL
    assert result.evidence["wrong"] == [
        {"node": OPS_B, "missing_labels": {"workload-type": "ops"}, "missing_taint": None}
    ]


def test_an_ops_node_without_the_taint_fails() -> None:
    recorded = nodes()
    named(recorded, OPS_A)["spec"]["taints"] = []
    result = judge_ops_nodes(recorded)
    assert result.status is Status.FAIL
    assert result.evidence["wrong"][0]["missing_taint"] == "CriticalAddonsOnly=true:NoSchedule"


def test_a_taint_with_another_effect_is_not_the_ops_taint() -> None:
    recorded = nodes()
    named(recorded, OPS_A)["spec"]["taints"][0]["effect"] = "PreferNoSchedule"
    assert judge_ops_nodes(recorded).status is Status.FAIL


def test_ops_nodes_pending_while_not_registered_or_not_ready() -> None:
    assert judge_ops_nodes(karpenter_nodes()).status is Status.PENDING
    assert judge_ops_nodes(nodes(), nodegroup="other").status is Status.PENDING
    recorded = nodes()
    ready = condition(named(recorded, OPS_B), "Ready")
    assert ready is not None
    ready["status"] = "False"
    result = judge_ops_nodes(recorded)
    assert (result.status, result.evidence["not_ready"]) == (Status.PENDING, [OPS_B])


# ---------------------------------------------------------------- controllers


def test_all_controller_pods_ready_on_ops_nodes_pass() -> None:
    reader = recorded_reader()
    result = judge_controllers_on_ops(controller_pods(reader), reader.list_nodes())
    assert result.status is Status.PASS, result.why
    assert result.why == "all 10 controller pod(s) Ready on ops nodes"
    assert {group: len(pods) for group, pods in result.evidence["placement"].items()} == {
        "argo-cd": 6,
        "karpenter": 2,
        "aws-load-balancer-controller": 2,
    }
    nodes_used = {row.rpartition(" -> ")[2] for rows in result.evidence["placement"].values() for row in rows}
    assert nodes_used == {OPS_A, OPS_B}


def test_a_finished_hook_pod_does_not_count() -> None:
    # Recorded right after the Argo CD release went in (another run of the same tree: same ops node names).
    reader = recorded_reader("recorded/addons/pods_argocd.yaml")
    pods = controller_pods(reader)
    assert [p["metadata"]["name"] for p in pods["argo-cd"] if p["status"]["phase"] == "Succeeded"] == [
        "argocd-redis-secret-init-vtnrh"
    ]
    result = judge_controllers_on_ops(pods, reader.list_nodes())
    assert result.status is Status.PASS, result.why
    assert result.why == "all 10 controller pod(s) Ready on ops nodes"  # 7 Argo CD pods, the hook not counted
    assert not any("redis-secret-init" in row for row in result.evidence["placement"]["argo-cd"])


def test_a_controller_pod_on_a_karpenter_node_fails() -> None:
    reader = recorded_reader()
    pods = controller_pods(reader)
    pods["karpenter"][1]["spec"]["nodeName"] = SPOT
    result = judge_controllers_on_ops(pods, reader.list_nodes())
    assert result.status is Status.FAIL
    assert result.evidence["misplaced"] == [
        {"pod": "kube-system/karpenter-6cb59f67db-mvqzx", "group": "karpenter", "node": SPOT}
    ]


def test_controllers_pending_while_a_group_has_no_pods_or_a_pod_is_unscheduled() -> None:
    reader = recorded_reader()
    pods = controller_pods(reader)
    result = judge_controllers_on_ops({**pods, "aws-load-balancer-controller": []}, reader.list_nodes())
    assert result.status is Status.PENDING and "aws-load-balancer-controller" in result.why

    unscheduled = pods["argo-cd"][0]
    del unscheduled["spec"]["nodeName"]
    # the status the scheduler gave the recorded game pods, which do not tolerate the ops taint
    unscheduled["status"] = items(f"{RECORDED}/pods_game-2048.yaml")[0]["status"]
    result = judge_controllers_on_ops(pods, reader.list_nodes())
    assert result.status is Status.PENDING
    assert result.evidence["waiting"][0]["state"] == (
        "Pending, not scheduled, Unschedulable: 0/2 nodes are available: 2 node(s) had untolerated taint(s). "
        "no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )


def evict(pod: dict[str, Any]) -> None:
    """Changed: the pod as the kubelet leaves one it evicted (phase Failed, its reason and message)."""
    pod["status"].update(
        phase="Failed", reason="Evicted", message="The node was low on resource: memory.", conditions=[]
    )


def test_a_group_whose_pods_all_failed_fails_naming_them() -> None:
    reader = recorded_reader()
    pods = controller_pods(reader)
    for pod in pods["karpenter"]:
        evict(pod)
    result = judge_controllers_on_ops(pods, reader.list_nodes())
    # Before: both Failed pods were skipped as "finished", so the group counted 0 pods and the check passed.
    assert result.status is Status.FAIL
    assert result.why == (
        "2 controller pod(s) Failed: kube-system/karpenter-6cb59f67db-fcwnq (Evicted: The node was low on resource: "
        "memory.); kube-system/karpenter-6cb59f67db-mvqzx (Evicted: The node was low on resource: memory.)"
    )
    assert result.evidence["groups_without_pods"] == ["karpenter"]


def test_an_evicted_controller_pod_fails_even_beside_running_ones_but_a_failed_hook_does_not() -> None:
    reader = recorded_reader("recorded/addons/pods_argocd.yaml")
    pods = controller_pods(reader)
    hook = named(pods["argo-cd"], "argocd-redis-secret-init-vtnrh")
    hook["status"]["phase"] = "Failed"  # changed: a hook Job's pod that failed (its Job retries with a new pod)
    assert judge_controllers_on_ops(pods, reader.list_nodes()).status is Status.PASS
    evict(named(pods["argo-cd"], "argocd-server-6b4cc4cdd6-dqd5w"))
    result = judge_controllers_on_ops(pods, reader.list_nodes())
    assert result.status is Status.FAIL
    assert result.evidence["failed"] == [
        {"pod": "argocd/argocd-server-6b4cc4cdd6-dqd5w", "why": "Evicted: The node was low on resource: memory."}
    ]


def test_pod_summary_names_the_waiting_container_reason() -> None:
    pod = named(items(f"{RECORDED}/pods_argocd.yaml"), "argocd-application-controller-0")
    assert pod_phase_summary(pod) == f"Running, on {OPS_B}"  # as recorded: Ready, nothing to add
    image = pod["spec"]["containers"][0]["image"]
    ready = condition(pod, "Ready")
    assert ready is not None
    ready["status"] = "False"
    pod["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
    }
    assert pod_phase_summary(pod) == (
        f'Running, on {OPS_B}, application-controller: ImagePullBackOff Back-off pulling image "{image}"'
    )


# ---------------------------------------------------------------- the workload


def test_game_pods_on_karpenter_nodes_pass_and_pending_ones_are_ignored() -> None:
    # Recorded mid scale-out: 3 pods on the baseline's spot node, 13 Pending for the NodeClaim being launched.
    reader = FakeKubeClient(load("recorded/scaling/pods_game-2048.yaml"), load("recorded/scaling/nodes.yaml"))
    pods = reader.list_pods(GAME_PODS.namespace, GAME_PODS.label_selector)
    assert len(pods) == 16
    result = judge_workload_off_ops(pods, reader.list_nodes())
    assert result.status is Status.PASS
    assert result.why == "3 scheduled game-2048 pod(s), none on ops nodes"


def test_a_game_pod_on_an_ops_node_fails() -> None:
    pods = items(f"{RECORDED}/pods_game-2048.yaml")
    pods[0]["spec"]["nodeName"] = OPS_B  # as if it tolerated the ops taint
    result = judge_workload_off_ops(pods, nodes())
    assert result.status is Status.FAIL
    assert result.evidence["on_ops"] == [{"pod": "game-2048/game-2048-665967d87f-dt5n5", "node": OPS_B}]


def test_no_scheduled_game_pod_is_pending() -> None:
    # The recorded run: no Karpenter nodes, so the game's pods are Pending, kept off the ops nodes by their taint.
    reader = FakeKubeClient(load(f"{RECORDED}/pods_game-2048.yaml"), load(f"{RECORDED}/nodes.yaml"))
    pods = reader.list_pods(GAME_PODS.namespace, GAME_PODS.label_selector)
    assert [p["status"]["phase"] for p in pods] == ["Pending", "Pending"]
    result = judge_workload_off_ops(pods, reader.list_nodes())
    assert (result.status, result.why) == (Status.PENDING, "no game-2048 pod is scheduled yet")


def test_failed_game_pods_fail_the_off_ops_check_naming_them() -> None:
    reader = FakeKubeClient(load("recorded/scaling/pods_game-2048.yaml"), load("recorded/scaling/nodes.yaml"))
    pods = reader.list_pods(GAME_PODS.namespace, GAME_PODS.label_selector)
    for pod in pods:
        evict(pod)
    result = judge_workload_off_ops(pods, reader.list_nodes())
    # Before: the 3 evicted pods still named a spot node, so "3 scheduled, none on ops nodes" passed.
    assert result.status is Status.FAIL
    assert result.why.startswith("16 game-2048 pod(s) Failed: game-2048/game-2048-665967d87f-")
    assert len(result.evidence["failed"]) == 16


def test_api_times_parse_to_aware_utc() -> None:
    moment = parse_time("2026-11-25T19:00:47Z")
    assert moment is not None and moment.utcoffset() is not None and moment.isoformat() == "2026-11-25T19:00:47+00:00"
    assert parse_time("2026-11-25T19:00:47.123456Z") is not None
    assert parse_time(None) is None


# ---------------------------------------------------------------- the image the replicas run

TAG = "public.ecr.aws/l6m2t8p7/docker-2048:latest"
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def game_pod(name: str, image: str, image_id: str | None) -> dict[str, Any]:
    statuses = [{"name": "game-2048", "imageID": image_id}] if image_id is not None else []
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "game-2048", "image": image}]},
        "status": {"containerStatuses": statuses},
    }


def test_pinned_image_passes_when_every_replica_runs_the_pinned_digest() -> None:
    pinned = f"{TAG}@{DIGEST_A}"
    pods = [game_pod(f"g-{i}", pinned, f"public.ecr.aws/l6m2t8p7/docker-2048@{DIGEST_A}") for i in range(3)]
    result = judge_pinned_image(pods, pinned)
    assert result.status is Status.PASS, result.why
    assert result.why == f"all 3 pod(s) run {DIGEST_A}"


def test_pinned_image_fails_on_a_digest_other_than_the_pin() -> None:
    pinned = f"{TAG}@{DIGEST_A}"
    pods = [game_pod("g-0", pinned, f"x@{DIGEST_A}"), game_pod("g-1", pinned, f"x@{DIGEST_B}")]
    result = judge_pinned_image(pods, pinned)
    assert result.status is Status.FAIL and f"g-1={DIGEST_B}" in result.why


def test_a_moving_tag_passes_only_while_replicas_agree_and_says_to_pin_it() -> None:
    same = [game_pod(f"g-{i}", TAG, f"x@{DIGEST_A}") for i in range(2)]
    result = judge_pinned_image(same, TAG)
    assert result.status is Status.PASS and "pin it with harness pin-image" in result.why
    moved = [*same, game_pod("g-2", TAG, f"x@{DIGEST_B}")]
    result = judge_pinned_image(moved, TAG)
    assert result.status is Status.FAIL and "2 different images under the moving tag" in result.why


def test_pods_on_another_image_than_the_pin_fail_by_name() -> None:
    pods = [game_pod("g-0", TAG, f"x@{DIGEST_A}"), game_pod("g-1", "nginx:1.27", f"y@{DIGEST_B}")]
    result = judge_pinned_image(pods, TAG)
    assert result.status is Status.FAIL and "g-1=nginx:1.27" in result.why


def test_without_a_pin_there_is_nothing_to_compare_with() -> None:
    result = judge_pinned_image([game_pod("g-0", TAG, f"x@{DIGEST_A}")], "")
    assert result.status is Status.FAIL and "pins no image" in result.why


def test_pinned_image_waits_for_pulls_and_for_pods() -> None:
    assert judge_pinned_image([], TAG).status is Status.PENDING
    pods = [game_pod("g-0", TAG, f"x@{DIGEST_A}"), game_pod("g-1", TAG, None), game_pod("g-2", TAG, "")]
    result = judge_pinned_image(pods, TAG)
    assert result.status is Status.PENDING and result.why == "2 of 3 pod(s) have not pulled yet"


def _ops_nodes() -> list[Any]:
    from harness.kube.core import NODEGROUP_LABEL

    return [n for n in items("recorded/synced/nodes.yaml") if NODEGROUP_LABEL in n["metadata"]["labels"]]


def test_ops_nodes_are_the_node_groups_instances_when_each_names_a_running_one() -> None:
    from harness.kube.core import judge_ops_node_instances

    nodes = _ops_nodes()
    assert nodes, "the recorded run has ops nodes"
    instances = {}
    for number, node in enumerate(nodes):
        node["spec"]["providerID"] = f"aws:///us-east-1a/i-0{number}"
        instances[f"i-0{number}"] = {"InstanceId": f"i-0{number}", "State": {"Name": "running"}}
    judged = judge_ops_node_instances(nodes, instances)
    assert judged.status is Status.PASS, judged.why
    instances["i-00"]["State"]["Name"] = "terminated"
    judged = judge_ops_node_instances(nodes, instances)
    assert judged.status is Status.FAIL and "terminated" in judged.why


def test_ops_nodes_the_harness_built_on_local_are_no_instance_of_the_group() -> None:
    """The recorded local run's ops Nodes carry no providerID: why the row is n/a there (ops_node_registration)."""
    from harness.kube.core import judge_ops_node_instances

    judged = judge_ops_node_instances(_ops_nodes(), {})
    assert judged.status is Status.FAIL and "no providerID" in judged.why
    assert judge_ops_node_instances([], {}).status is Status.PENDING


def test_ready_game_pods_count_only_behind_a_readiness_probe() -> None:
    import yaml

    from harness.kube.core import judge_readiness_probes
    from harness.project import repo_root

    deployment = yaml.safe_load((repo_root() / "gitops/apps/game-2048/deployment.yaml").read_text(encoding="utf-8"))
    pods = items("recorded/scaled_out/pods_game-2048.yaml")
    assert judge_readiness_probes(deployment, pods).status is Status.PASS
    assert judge_readiness_probes(deployment, items("recorded/synced/pods_game-2048.yaml")).status is Status.PENDING
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        container.pop("readinessProbe")
    judged = judge_readiness_probes(deployment, pods)
    assert judged.status is Status.FAIL and "declare no readinessProbe" in judged.why
