"""Karpenter judges and the scale-out timeline on one hand-written scale-out (in progress, done, scaled in): the
local target runs no Karpenter yet, so only the NodePool and EC2NodeClass as Argo CD applies them are recorded."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
import yaml
from kube_fixtures import FakeKubeClient, items, load, named

from harness.errors import InputError
from harness.kube.api import EC2_NODE_CLASS, NODE_CLAIM, NODE_POOL
from harness.kube.karpenter import (
    InterruptionVictim,
    build_timeline,
    cpu_cores,
    cpu_request,
    interruption_victim,
    judge_interruption,
    judge_node_class_discovery,
    judge_pool_ready,
    judge_scale_in,
    judge_scale_out,
    nodepool_template_labels,
    scale_out_figures,
    scale_out_replicas,
    spot_interruption_warning,
)
from harness.project import repo_root
from harness.results import Status

POOL = "apps"
SPOT_A = "ip-10-0-3-142.eu-west-1.compute.internal"
OPS_A = "ip-10-0-1-23.eu-west-1.compute.internal"


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-25T{clock}+00:00")


def in_progress() -> dict[str, list[dict[str, Any]]]:
    return {
        "pods": items("pods_game_scaling.yaml"),
        "nodeclaims": items("nodeclaims.yaml"),
        "nodes": items("nodes.yaml"),
        "events": items("events.yaml"),
    }


def done() -> dict[str, list[dict[str, Any]]]:
    return {
        "pods": items("scale_out_done.yaml", "Pod"),
        "nodeclaims": items("scale_out_done.yaml", "NodeClaim"),
        "nodes": [*items("scale_out_done.yaml", "Node"), *items("nodes.yaml")[:2]],  # plus the ops nodes
    }


# ---------------------------------------------------------------- the pool itself


def pool() -> tuple[dict[str, Any], dict[str, Any]]:
    reader = FakeKubeClient(load("karpenter_pool.yaml"))
    nodepool, nodeclass = reader.get_custom(NODE_POOL, POOL), reader.get_custom(EC2_NODE_CLASS, POOL)
    assert nodepool is not None and nodeclass is not None
    return nodepool, nodeclass


def set_condition(obj: dict[str, Any], kind: str, status: str, reason: str, message: str) -> None:
    entry = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    entry.update(status=status, reason=reason, message=message)


def test_a_pool_karpenter_has_not_reconciled_is_pending() -> None:
    # Recorded: Argo CD applied gitops/ops/karpenter, but no Karpenter controller runs to give them a status.
    reader = FakeKubeClient(load("recorded/synced/nodepools.yaml"), load("recorded/synced/ec2nodeclasses.yaml"))
    nodepool, nodeclass = reader.get_custom(NODE_POOL, POOL), reader.get_custom(EC2_NODE_CLASS, POOL)
    assert nodepool is not None and nodeclass is not None
    result = judge_pool_ready(nodepool, nodeclass)
    assert (result.status, result.why) == (Status.PENDING, "not reconciled by Karpenter yet")
    assert result.evidence["conditions"] == {"NodePool/apps": {}, "EC2NodeClass/apps": {}}
    assert judge_pool_ready(nodepool, None).why == "EC2NodeClass not created yet"


def test_a_resolved_pool_is_ready() -> None:
    result = judge_pool_ready(*pool())
    assert (result.status, result.why) == (Status.PASS, "NodePool/apps and EC2NodeClass/apps are Ready")
    assert result.evidence["conditions"]["EC2NodeClass/apps"]["SubnetsReady"] == "True"


def test_subnets_not_found_is_pending_and_quotes_karpenter() -> None:
    nodepool, nodeclass = pool()
    set_condition(nodeclass, "SubnetsReady", "False", "SubnetsNotFound", "SubnetSelector did not match any Subnets")
    set_condition(nodeclass, "Ready", "False", "UnhealthyDependents", "SubnetsReady=False")
    set_condition(nodepool, "NodeClassReady", "False", "NodeClassNotReady", "EC2NodeClass not ready")
    result = judge_pool_ready(nodepool, nodeclass)
    assert result.status is Status.PENDING
    assert "EC2NodeClass/apps SubnetsReady=False (SubnetsNotFound: SubnetSelector did not match any Subnets)" in (
        result.why
    )
    assert "NodePool/apps NodeClassReady=False" in result.why


def test_failed_validation_fails() -> None:
    nodepool, nodeclass = pool()
    set_condition(
        nodeclass,
        "ValidationSucceeded",
        "False",
        "RunInstancesAuthFailed",
        "unauthorized operation: ec2:RunInstances with the EC2NodeClass's tags",
    )
    result = judge_pool_ready(nodepool, nodeclass)
    assert result.status is Status.FAIL
    assert result.why.startswith("EC2NodeClass/apps ValidationSucceeded=False (RunInstancesAuthFailed:")


def test_a_pool_not_synced_yet_is_pending() -> None:
    nodepool, nodeclass = pool()
    assert judge_pool_ready(None, None).why == "NodePool and EC2NodeClass not created yet"
    assert judge_pool_ready(nodepool, None).status is Status.PENDING
    del nodeclass["status"]
    result = judge_pool_ready(nodepool, nodeclass)
    assert (result.status, result.why) == (Status.PENDING, "not reconciled by Karpenter yet")


# ---------------------------------------------------------------- scale-out


def test_scale_out_in_progress_is_pending_with_the_launch_steps_and_the_schedulers_reason() -> None:
    seen = in_progress()
    result = judge_scale_out(
        seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL, events=seen["events"]
    )
    assert result.status is Status.PENDING
    assert result.why == (
        "4 of 6 pod(s) Ready on spot; 3 NodeClaim(s): 2 Launched, 2 Registered, 1 Initialized, 1 Ready"
    )
    claims = {c["nodeclaim"]: c for c in result.evidence["nodeclaims"]}
    assert claims["apps-m3v8z"]["Launched"] == "Unknown (AwaitingReconciliation: object is awaiting reconciliation)"
    assert claims["apps-x7k2p"]["Ready"] == "True"
    waiting = {w["pod"]: w["state"] for w in result.evidence["waiting"]}
    assert waiting["game-2048/game-2048-6f7c8d9b5c-pk6d8"].startswith(
        "Pending, not scheduled, Unschedulable: 0/4 nodes are available: 1 Insufficient cpu"
    )
    assert any("Nominated: Pod should schedule on: nodeclaim/apps-m3v8z" in line for line in result.evidence["events"])
    assert not any("Ingress" in line for line in result.evidence["events"])  # only events about these objects


def test_scale_out_done_passes_with_the_spot_nodes_used() -> None:
    seen = done()
    result = judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL)
    assert result.status is Status.PASS, result.why
    assert result.why == "6 pod(s) Ready on 3 spot node(s) of apps"
    assert result.evidence["nodes"] == sorted(
        [
            "ip-10-0-3-142.eu-west-1.compute.internal",
            "ip-10-0-1-201.eu-west-1.compute.internal",
            "ip-10-0-2-19.eu-west-1.compute.internal",
        ]
    )


def test_scale_out_checks_the_labels_the_projects_nodepool_gives_its_nodes() -> None:
    manifest = yaml.safe_load((repo_root() / "gitops/ops/karpenter/nodepool.yaml").read_text())
    expected = nodepool_template_labels(manifest)
    assert expected  # the project's NodePool labels its nodes
    seen = done()
    ok = judge_scale_out(
        seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL, node_labels=expected
    )
    assert ok.status is Status.PASS
    for node in seen["nodes"]:
        for key in expected:
            node["metadata"]["labels"].pop(key, None)
    missing = judge_scale_out(
        seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL, node_labels=expected
    )
    assert missing.status is Status.FAIL and "without labels" in missing.why


def test_a_pod_on_an_ops_node_fails_the_scale_out() -> None:
    seen = done()
    seen["pods"][0]["spec"]["nodeName"] = OPS_A
    result = judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL)
    assert result.status is Status.FAIL
    assert result.evidence["misplaced"] == [
        {"pod": "game-2048/game-2048-6f7c8d9b5c-4jx7r", "node": OPS_A, "why": "runs on an ops node"}
    ]


def test_an_on_demand_node_in_the_pool_fails_the_scale_out() -> None:
    seen = done()
    named(seen["nodes"], SPOT_A)["metadata"]["labels"]["karpenter.sh/capacity-type"] = "on-demand"
    result = judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL)
    assert result.status is Status.FAIL
    assert result.why.endswith("runs on nodepool=apps capacity-type=on-demand")


def test_fewer_pods_than_replicas_is_pending_and_terminating_pods_do_not_count() -> None:
    seen = done()
    seen["pods"][0]["metadata"]["deletionTimestamp"] = "2026-11-25T19:02:00Z"
    result = judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool=POOL)
    assert (result.status, result.why) == (Status.PENDING, "5 of 6 pod(s) exist")


def test_a_pool_node_no_nodeclaim_names_yet_is_pending() -> None:
    seen = done()
    claims = [c for c in seen["nodeclaims"] if c["metadata"]["name"] != "apps-m3v8z"]
    result = judge_scale_out(seen["pods"], claims, seen["nodes"], replicas=6, nodepool=POOL)
    assert result.status is Status.PENDING
    assert result.evidence["waiting"] == [
        {
            "pod": "game-2048/game-2048-6f7c8d9b5c-t2r5b",
            "state": "on ip-10-0-2-19.eu-west-1.compute.internal, which no NodeClaim of apps names yet",
        }
    ]


def test_nodeclaims_of_other_pools_are_not_counted() -> None:
    seen = in_progress()
    result = judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], replicas=6, nodepool="other")
    assert result.status is Status.FAIL  # the pods run on "apps" nodes, not on "other" ones
    assert result.evidence["nodeclaims"] == []


def test_scale_out_replicas_comes_from_the_deployment_annotation() -> None:
    deployment = yaml.safe_load((repo_root() / "gitops/apps/game-2048/deployment.yaml").read_text())
    assert scale_out_replicas(deployment, default=4) == int(
        deployment["metadata"]["annotations"]["eks-platform/scale-out-replicas"]
    )
    del deployment["metadata"]["annotations"]
    assert scale_out_replicas(deployment, default=4) == 4
    deployment["metadata"]["annotations"] = {"eks-platform/scale-out-replicas": "lots"}
    with pytest.raises(InputError, match="not a whole number"):
        scale_out_replicas(deployment, default=4)


# ---------------------------------------------------------------- timeline


def test_timeline_of_the_finished_scale_out_has_every_step_in_order() -> None:
    seen = done()
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"], items("events.yaml"))
    assert timeline.start == at("19:00:01")
    assert [n.nodeclaim for n in timeline.nodes] == ["apps-x7k2p", "apps-q9w4d", "apps-m3v8z"]
    first = timeline.nodes[0]
    assert (first.node, first.instance_type, first.capacity_type, first.zone) == (
        SPOT_A,
        "c6a.xlarge",
        "spot",
        "eu-west-1c",
    )
    assert (first.claim_created, first.launched, first.registered, first.initialized, first.node_ready) == (
        at("19:00:03"),
        at("19:00:06"),
        at("19:00:38"),
        at("19:00:49"),
        at("19:00:47"),
    )
    pod = next(p for p in timeline.pods if p.pod == "game-2048/game-2048-6f7c8d9b5c-t2r5b")
    assert (pod.nodeclaim, pod.created, pod.nominated, pod.nodeclaim_launched, pod.node_ready, pod.ready) == (
        "apps-m3v8z",
        at("19:00:58"),
        at("19:01:00"),
        at("19:01:03"),
        at("19:01:40"),
        at("19:01:49"),
    )
    for row in timeline.pods:
        assert row.created and row.nodeclaim_launched and row.node_ready and row.ready
        assert row.created <= row.ready and row.node_ready <= row.ready
    assert timeline.seconds(pod.ready) == 108.0
    assert timeline.seconds(None) is None


def test_timeline_in_progress_links_pending_pods_to_claims_through_nominated_events() -> None:
    seen = in_progress()
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"], seen["events"])
    pending = next(p for p in timeline.pods if p.pod == "game-2048/game-2048-6f7c8d9b5c-pk6d8")
    assert (pending.node, pending.nodeclaim, pending.nominated, pending.nodeclaim_launched) == (
        None,
        "apps-q9w4d",
        at("19:00:21"),
        at("19:00:24"),
    )
    assert (pending.scheduled, pending.node_ready, pending.ready) == (None, None, None)
    launching = next(n for n in timeline.nodes if n.nodeclaim == "apps-m3v8z")
    assert (launching.node, launching.launched) == (None, None)


def test_timeline_without_events_still_links_scheduled_pods_through_their_node() -> None:
    seen = in_progress()
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"])
    linked = {p.pod: p.nodeclaim for p in timeline.pods}
    assert linked["game-2048/game-2048-6f7c8d9b5c-4jx7r"] == "apps-x7k2p"
    assert linked["game-2048/game-2048-6f7c8d9b5c-pk6d8"] is None


def test_timeline_of_nothing_is_empty() -> None:
    timeline = build_timeline([], [], [])
    assert (timeline.start, timeline.pods, timeline.nodes) == (None, (), ())


# ---------------------------------------------------------------- scale-in


def test_scale_in_is_pending_while_a_pool_node_is_being_removed() -> None:
    reader = FakeKubeClient(load("scale_in_draining.yaml"))
    result = judge_scale_in(reader.list_custom(NODE_CLAIM), reader.list_nodes(), nodepool=POOL, pods=reader.list_pods())
    assert result.status is Status.PENDING
    assert result.why == "1 spare NodeClaim(s) and 1 spare Node(s) of apps remain"
    assert result.evidence["nodes"] == [
        {"node": "ip-10-0-2-19.eu-west-1.compute.internal", "deleting": True, "disrupted": True}
    ]
    (claim,) = result.evidence["nodeclaims"]
    assert claim["deleting"] is True
    assert claim["conditions"] == {"Consolidatable": "True", "DisruptionReason": "True"}
    assert result.evidence["pods_holding_nodes"] == []  # DaemonSet pods do not hold a node


def test_scale_in_names_a_workload_pod_that_still_holds_a_node() -> None:
    recorded = load("scale_in_draining.yaml")
    straggler = items("scale_out_done.yaml", "Pod")[-1]
    reader = FakeKubeClient(recorded, straggler)
    result = judge_scale_in(reader.list_custom(NODE_CLAIM), reader.list_nodes(), nodepool=POOL, pods=reader.list_pods())
    assert result.evidence["pods_holding_nodes"] == [
        "game-2048/game-2048-6f7c8d9b5c-t2r5b on ip-10-0-2-19.eu-west-1.compute.internal"
    ]
    assert result.why.endswith("held by 1 pod(s)")


def test_scale_in_to_a_baseline_passes_once_every_pool_node_left_holds_its_pods() -> None:
    """The baseline's replicas keep a pool node (the ops nodes are tainted against them): only spare nodes go."""
    pods, claims, nodes = scaled_out()
    (kept_claim, kept_node) = (
        claims[0],
        next(n for n in nodes if n["metadata"]["name"] == claims[0]["status"]["nodeName"]),
    )
    on_kept = [dict(p, spec={**p["spec"], "nodeName": kept_node["metadata"]["name"]}) for p in pods[:2]]
    spare = judge_scale_in(claims, nodes, nodepool=POOL, pods=on_kept, replicas=2)
    assert spare.status is Status.PENDING and "2 spare NodeClaim(s) and 2 spare Node(s)" in spare.why
    consolidated = judge_scale_in([kept_claim], [kept_node], nodepool=POOL, pods=on_kept, replicas=2)
    assert consolidated.status is Status.PASS, consolidated.why
    # Right after the scale call the old replicas are all still there: not yet a scale-in to judge.
    early = judge_scale_in([kept_claim], [kept_node], nodepool=POOL, pods=[*on_kept, *pods[2:]], replicas=2)
    assert early.status is Status.PENDING and early.why.startswith(f"{len(pods)} pod(s) left of the 2 scaled to")


def test_scale_in_passes_once_no_claim_or_node_of_the_pool_is_left() -> None:
    ops_only = items("nodes.yaml")[:2]
    assert judge_scale_in([], ops_only, nodepool=POOL).status is Status.PASS
    other_pool = items("nodeclaims.yaml")
    assert judge_scale_in(other_pool, ops_only, nodepool="batch").status is Status.PASS


PRIVATE_SUBNETS = ["subnet-0aa1bb2cc3dd4ee5f", "subnet-0bb2cc3dd4ee5ff60", "subnet-0cc3dd4ee5ff60718"]
DISCOVERY_GROUP = "sg-0a1b2c3d4e5f60718"
AMI = "ami-0e1f2a3b4c5d6e7f8"


def discovery(nodeclass: dict[str, Any] | None, subnets: list[str] = PRIVATE_SUBNETS) -> Any:
    return judge_node_class_discovery(nodeclass, subnets=subnets, security_groups=[DISCOVERY_GROUP], amis=[AMI])


def test_a_node_class_that_found_the_platforms_subnets_group_and_ami_passes() -> None:
    result = discovery(pool()[1])
    assert result.status is Status.PASS, result.why
    assert result.evidence["resolved"]["subnets"] == sorted(PRIVATE_SUBNETS)


def test_a_node_class_that_found_a_public_subnet_too_fails_naming_it() -> None:
    _, nodeclass = pool()
    nodeclass["status"]["subnets"].append({"id": "subnet-public", "zone": "eu-west-1a"})
    result = discovery(nodeclass)
    assert result.status is Status.FAIL
    assert "subnets: missing [], extra ['subnet-public']" in result.why


def test_a_node_class_missing_a_private_subnet_or_with_another_ami_fails() -> None:
    _, nodeclass = pool()
    nodeclass["status"]["amis"] = [{"id": "ami-other", "name": "al2023"}]
    result = discovery(nodeclass, subnets=[*PRIVATE_SUBNETS, "subnet-0dd"])
    assert result.status is Status.FAIL
    assert "missing ['subnet-0dd']" in result.why and "amis: missing ['ami-0e1f2a3b4c5d6e7f8']" in result.why


def test_a_node_class_not_ready_or_missing_is_pending_with_karpenters_reason() -> None:
    _, nodeclass = pool()
    set_condition(nodeclass, "Ready", "False", "UnhealthyDependents", "SubnetsReady=False")
    set_condition(nodeclass, "SubnetsReady", "False", "SubnetsNotFound", "SubnetSelector did not match any Subnets")
    result = discovery(nodeclass)
    assert result.status is Status.PENDING
    assert "SubnetsReady=False (SubnetsNotFound: SubnetSelector did not match any Subnets)" in result.why
    assert discovery(None).status is Status.PENDING


def test_on_aws_any_resolved_ami_will_do_but_one_must_resolve() -> None:
    _, nodeclass = pool()
    any_ami = judge_node_class_discovery(
        nodeclass, subnets=PRIVATE_SUBNETS, security_groups=[DISCOVERY_GROUP], amis=None
    )
    assert any_ami.status is Status.PASS, any_ami.why
    nodeclass["status"]["amis"] = []
    none = judge_node_class_discovery(nodeclass, subnets=PRIVATE_SUBNETS, security_groups=[DISCOVERY_GROUP], amis=None)
    assert none.status is Status.FAIL and "amis: missing ['(any AMI)']" in none.why


def scaled_out() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        items("scale_out_done.yaml", "Pod"),
        items("scale_out_done.yaml", "NodeClaim"),
        [*items("scale_out_done.yaml", "Node"), *items("nodes.yaml")[:2]],
    )


def test_the_interruption_victim_is_a_pool_nodeclaim_with_its_node_and_instance() -> None:
    _, claims, _ = scaled_out()
    victim = interruption_victim(claims, POOL)
    assert victim == InterruptionVictim("apps-m3v8z", "ip-10-0-2-19.eu-west-1.compute.internal", "i-0e2a7c5d6f8b9c031")
    assert interruption_victim(claims, "batch") is None
    warning = spot_interruption_warning(victim, "eu-west-1", "111122223333")
    assert warning["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert warning["detail"] == {"instance-id": "i-0e2a7c5d6f8b9c031", "instance-action": "terminate"}


def test_an_interruption_passes_once_the_node_is_gone_and_every_replica_runs_on_the_pool_again() -> None:
    pods, claims, nodes = scaled_out()
    victim = interruption_victim(claims, POOL)
    assert victim is not None
    draining = judge_interruption(
        victim, pods, claims, nodes, instance_state="running", replicas=len(pods), nodepool=POOL
    )
    assert draining.status is Status.PENDING and "apps-m3v8z still there" in draining.why
    # The replacement: the victim's NodeClaim and Node gone, its pods moved to another pool node.
    others = [c for c in claims if c["metadata"]["name"] != victim.nodeclaim]
    kept = [n for n in nodes if n["metadata"]["name"] != victim.node]
    moved = [dict(p, spec={**p["spec"], "nodeName": "ip-10-0-3-142.eu-west-1.compute.internal"}) for p in pods]
    terminating = judge_interruption(
        victim, moved, others, kept, instance_state="running", replicas=len(pods), nodepool=POOL
    )
    assert terminating.status is Status.PENDING and "is running" in terminating.why
    done = judge_interruption(
        victim, moved, others, kept, instance_state="terminated", replicas=len(pods), nodepool=POOL
    )
    assert done.status is Status.PASS, done.why
    # A replica that went to an ops node instead fails, as the scale-out judge says.
    ops = [
        dict(moved[0], spec={**moved[0]["spec"], "nodeName": items("nodes.yaml")[0]["metadata"]["name"]}),
        *moved[1:],
    ]
    assert (
        judge_interruption(
            victim, ops, others, kept, instance_state="terminated", replicas=len(pods), nodepool=POOL
        ).status
        is Status.FAIL
    )


def test_the_scale_out_figures_count_only_what_came_after_the_scale() -> None:
    pods, claims, nodes = scaled_out()
    timeline = build_timeline(pods, claims, nodes, items("events.yaml"))
    start = timeline.start
    assert start is not None
    figures = scale_out_figures(timeline, claims, scaled_at=start, replicas=16, cpu_request="250m", nodepool=POOL)
    assert figures.pending_to_running_p50 is not None and figures.pending_to_running_p90 is not None
    assert 0 < figures.pending_to_running_p50 <= figures.pending_to_running_p90
    assert figures.first_node_ready is not None and figures.first_node_ready > 0
    sizes = [cpu_cores(c["status"]["allocatable"]["cpu"]) for c in claims if "allocatable" in c["status"]]
    assert sizes, "the fixture's NodeClaims report no allocatable CPU"
    assert figures.nodes == 3 and figures.bin_packing_minimum == math.ceil(16 * 0.25 / max(sizes))
    later = start.replace(year=start.year + 1)
    after = scale_out_figures(timeline, claims, scaled_at=later, replicas=16, cpu_request="250m", nodepool=POOL)
    assert (after.pending_to_running_p50, after.first_node_ready) == (None, None)
    assert cpu_cores("500m") == 0.5 and cpu_cores("2") == 2.0
    game = yaml.safe_load((repo_root() / "gitops/apps/game-2048/deployment.yaml").read_text())
    assert cpu_request(game) == game["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    assert cpu_request({"spec": {}}) == "0"
