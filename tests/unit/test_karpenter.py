"""Karpenter judges and the scale-out timeline on recorded local-target runs (tests/fixtures/kube/recorded/): in one,
game-2048 scaled from 2 to 16 replicas (scaling/, scaled_out/), one spot node interrupted (interrupted/), scaled
back to 2 with a replica on each of two nodes Karpenter had not consolidated (scaled_in/) and, earlier, to 0 while
consolidation deleted the empty node (consolidating/); in another, consolidation after the scale back (consolidated/,
underutilized/, underutilized_consolidated/) and a spot interruption with Karpenter's events (interrupted_baseline/).
Failing cases are those recorded objects with one field changed, as each test says."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
import yaml
from kube_fixtures import FIXTURES, RECORDED_BEFORE_SCALE, FakeKubeClient, items, load, named

from harness.errors import InputError
from harness.kube.api import EC2_NODE_CLASS, NODE_POOL
from harness.kube.consolidation import judge_scale_in
from harness.kube.core import Before, cpu_cores, cpu_request
from harness.kube.karpenter import (
    build_timeline,
    judge_node_class_discovery,
    judge_pool_ready,
    judge_scale_out,
    nodepool_template_labels,
    scale_out_replicas,
)
from harness.kube.spot import (
    INTERRUPTION_EVENT,
    InterruptionVictim,
    instance_id,
    interruption_victim,
    judge_interruption,
    judge_pool_instances,
    scale_out_figures,
    spot_interruption_warning,
)
from harness.project import repo_root
from harness.results import Status

POOL = "apps"
REPLICAS = 16  # gitops/apps/game-2048's eks-platform/scale-out-replicas, as the run scaled it
BASELINE_CLAIM, BASELINE_NODE = "apps-clcdp", "i-10bb3987b8b6c7f86"  # launched for the 2 baseline replicas
NEW_CLAIM, NEW_NODE = "apps-vsbxl", "i-aa37b0adf2cf5a688"  # launched for the scale-out
OPS_A = "ops-0"
REQUEST = "500m"  # gitops/apps/game-2048's CPU request, as the run had it
BEFORE_SCALE = RECORDED_BEFORE_SCALE


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-29T{clock}+00:00")


def state(name: str, events: bool = False) -> dict[str, list[dict[str, Any]]]:
    """One recorded state: the game's pods, the NodeClaims, the Nodes (ops nodes too) and, if asked, the events the
    e2e reads (the game's namespace for Nominated, default for the NodeClaims')."""
    folder = f"recorded/{name}"
    seen = {
        "pods": items(f"{folder}/pods_game-2048.yaml"),
        "nodeclaims": items(f"{folder}/nodeclaims.yaml"),
        "nodes": items(f"{folder}/nodes.yaml"),
    }
    if events:  # the namespaces the state was recorded with
        recorded = [f"{folder}/{ns}.yaml" for ns in ("events_game-2048", "events_default")]
        seen["events"] = [event for path in recorded if (FIXTURES / path).is_file() for event in items(path)]
    return seen


def in_progress() -> dict[str, list[dict[str, Any]]]:
    return state("scaling", events=True)


def done() -> dict[str, list[dict[str, Any]]]:
    return state("scaled_out")


def scale_out(seen: dict[str, list[dict[str, Any]]], before: Before = BEFORE_SCALE, **changed: Any) -> Any:
    """judge_scale_out on one recorded state, as the e2e calls it after raising the replicas to 16."""
    arguments: dict[str, Any] = {"replicas": REPLICAS, "nodepool": POOL, "before": before, "request": REQUEST}
    return judge_scale_out(seen["pods"], seen["nodeclaims"], seen["nodes"], **{**arguments, **changed})


# ---------------------------------------------------------------- the pool itself


def pool() -> tuple[dict[str, Any], dict[str, Any]]:
    reader = FakeKubeClient(load("recorded/scaled_out/nodepools.yaml"), load("recorded/scaled_out/ec2nodeclasses.yaml"))
    nodepool, nodeclass = reader.get_custom(NODE_POOL, POOL), reader.get_custom(EC2_NODE_CLASS, POOL)
    assert nodepool is not None and nodeclass is not None
    return nodepool, nodeclass


def set_condition(obj: dict[str, Any], kind: str, status: str, reason: str, message: str) -> None:
    entry = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    entry.update(status=status, reason=reason, message=message)


def test_a_pool_karpenter_has_not_reconciled_is_pending() -> None:
    # Recorded before Karpenter ran on the local target: as Argo CD applies them, before Karpenter's first reconcile.
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
    result = scale_out(seen, events=seen["events"])
    assert result.status is Status.PENDING
    assert result.why == (
        "3 of 16 pod(s) Ready on spot; 1 new NodeClaim(s): 1 Launched, 0 Registered, 0 Initialized, 0 Ready"
    )
    claims = {c["nodeclaim"]: c for c in result.evidence["nodeclaims"]}
    assert (claims[NEW_CLAIM]["new"], claims[BASELINE_CLAIM]["new"]) == (True, False)
    assert claims[NEW_CLAIM]["Launched"] == "True"
    assert claims[NEW_CLAIM]["Registered"] == "Unknown (NodeNotFound: Node not registered with cluster)"
    assert (claims[NEW_CLAIM]["node"], claims[NEW_CLAIM]["capacity_type"]) == (None, "spot")
    assert claims[BASELINE_CLAIM]["Ready"] == "True"
    waiting = {w["pod"]: w["state"] for w in result.evidence["waiting"]}
    assert len(waiting) == 13
    assert waiting["game-2048/game-2048-665967d87f-4w5pd"].startswith(
        "Pending, not scheduled, Unschedulable: 0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint(s)"
    )
    assert any(
        "Pod/game-2048-665967d87f-4w5pd Nominated: Pod should schedule on: nodeclaim/apps-vsbxl" in line
        for line in result.evidence["events"]
    )
    assert not any("Ingress" in line for line in result.evidence["events"])  # only events about these objects


def test_scale_out_done_passes_on_the_nodeclaim_created_after_the_scale() -> None:
    seen = done()
    result = scale_out(seen)
    assert result.status is Status.PASS, result.why
    assert result.why == (
        "16 pod(s) Ready on 2 spot node(s) of apps: 13 of the 14 new on 1 NodeClaim(s) created after the scale "
        "(apps-vsbxl), 1 on room the nodes already there had; 2 NodeClaim(s) against a bin-packing minimum of 2"
    )
    assert result.evidence["nodes"] == sorted([BASELINE_NODE, NEW_NODE])
    assert set(result.evidence["new_pods_on_new_nodeclaims"].values()) == {NEW_NODE}


def test_the_baseline_judged_as_a_scale_out_fails() -> None:
    """The recorded end state, but with every NodeClaim counted as there before the scale: no node came for it."""
    seen = done()
    result = scale_out(seen, Before.of(seen["pods"], seen["nodeclaims"]))
    # Before: no NodeClaim had to be new, so this passed as "16 pod(s) Ready on 2 spot node(s)".
    assert result.status is Status.FAIL
    assert result.why == (
        "all 16 pod(s) Ready, but no NodeClaim of apps was created after the scale: the nodes already there held "
        "them, so this shows nothing of Karpenter"
    )
    # The baseline itself (2 replicas on the node launched for them) is no scale-out of 2 either.
    baseline = {
        k: [o for o in v if o["metadata"]["name"] != NEW_CLAIM and o["metadata"]["name"] != NEW_NODE]
        for k, v in seen.items()
    }
    baseline["pods"] = [p for p in seen["pods"] if f"game-2048/{p['metadata']['name']}" in BEFORE_SCALE.pods]
    assert scale_out(baseline, Before.of(baseline["pods"], baseline["nodeclaims"]), replicas=2).status is Status.FAIL


def test_more_nodes_than_the_bin_packing_minimum_plus_one_fail() -> None:
    seen = done()
    # Changed: a tenth of the CPU a pod, so 16 pods fit on one 7.91-CPU node, and 2 NodeClaims are 1 more than it.
    assert scale_out(seen, request="50m").status is Status.PASS
    # Changed: a third NodeClaim in the pool, each from the recorded new one, so 3 NodeClaims for a minimum of 1.
    extra = yaml.safe_load(yaml.safe_dump(named(seen["nodeclaims"], NEW_CLAIM)))
    extra["metadata"]["name"] = "apps-extra"
    seen["nodeclaims"].append(extra)
    result = scale_out(seen, request="50m")
    assert result.status is Status.FAIL
    assert result.why == (
        "3 NodeClaims of apps for 16 pod(s) of 50m CPU: more than the bin-packing minimum of 1 plus one"
    )


def test_a_failed_replica_fails_the_scale_out_naming_it() -> None:
    seen = done()
    pod = named(seen["pods"], "game-2048-665967d87f-4w5pd")
    pod["status"].update(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")  # changed
    result = scale_out(seen)
    assert result.status is Status.FAIL
    assert result.why == (
        "1 pod(s) Failed: game-2048/game-2048-665967d87f-4w5pd (Evicted: The node was low on resource: memory.)"
    )


def test_scale_out_checks_the_labels_the_projects_nodepool_gives_its_nodes() -> None:
    manifest = yaml.safe_load((repo_root() / "gitops/ops/karpenter/nodepool.yaml").read_text())
    expected = nodepool_template_labels(manifest)
    assert expected  # the project's NodePool labels its nodes
    seen = done()
    ok = scale_out(seen, node_labels=expected)
    assert ok.status is Status.PASS
    for node in seen["nodes"]:  # changed: the recorded nodes without the NodePool's labels
        for key in expected:
            node["metadata"]["labels"].pop(key, None)
    missing = scale_out(seen, node_labels=expected)
    assert missing.status is Status.FAIL and "without labels" in missing.why


def test_a_pod_on_an_ops_node_fails_the_scale_out() -> None:
    seen = done()
    pod = seen["pods"][0]
    pod["spec"]["nodeName"] = OPS_A  # changed: as if it tolerated the ops taint
    result = scale_out(seen)
    assert result.status is Status.FAIL
    assert result.evidence["misplaced"] == [
        {"pod": f"game-2048/{pod['metadata']['name']}", "node": OPS_A, "why": "runs on an ops node"}
    ]


def test_an_on_demand_node_in_the_pool_fails_the_scale_out() -> None:
    seen = done()
    named(seen["nodes"], NEW_NODE)["metadata"]["labels"]["karpenter.sh/capacity-type"] = "on-demand"  # changed
    result = scale_out(seen)
    assert result.status is Status.FAIL
    assert result.why.endswith("runs on nodepool=apps capacity-type=on-demand")


def test_fewer_pods_than_replicas_is_pending_and_terminating_pods_do_not_count() -> None:
    seen = done()
    seen["pods"][0]["metadata"]["deletionTimestamp"] = "2026-11-29T03:05:10Z"  # changed: one replica terminating
    result = scale_out(seen)
    assert (result.status, result.why) == (Status.PENDING, "15 of 16 pod(s) exist")


def test_a_pool_node_no_nodeclaim_names_yet_is_pending() -> None:
    seen = done()
    claims = [c for c in seen["nodeclaims"] if c["metadata"]["name"] != NEW_CLAIM]  # changed: its NodeClaim unseen
    result = scale_out({**seen, "nodeclaims": claims})
    assert result.status is Status.PENDING
    on_new = [p for p in seen["pods"] if p["spec"]["nodeName"] == NEW_NODE]
    assert len(on_new) == 13
    assert result.evidence["waiting"] == [
        {
            "pod": f"game-2048/{pod['metadata']['name']}",
            "state": f"on {NEW_NODE}, which no NodeClaim of apps names yet",
        }
        for pod in on_new
    ]


def test_nodeclaims_of_other_pools_are_not_counted() -> None:
    seen = in_progress()
    result = scale_out(seen, nodepool="other")
    assert result.status is Status.FAIL  # the pods run on "apps" nodes, not on "other" ones
    assert result.evidence["nodeclaims"] == []


def test_scale_out_replicas_comes_from_the_deployment_annotation() -> None:
    deployment = yaml.safe_load((repo_root() / "gitops/apps/game-2048/deployment.yaml").read_text())
    assert (
        scale_out_replicas(deployment, default=4)
        == int(deployment["metadata"]["annotations"]["eks-platform/scale-out-replicas"])
        == REPLICAS
    )
    del deployment["metadata"]["annotations"]
    assert scale_out_replicas(deployment, default=4) == 4
    deployment["metadata"]["annotations"] = {"eks-platform/scale-out-replicas": "lots"}
    with pytest.raises(InputError, match="not a whole number"):
        scale_out_replicas(deployment, default=4)


# ---------------------------------------------------------------- timeline


def test_timeline_of_the_finished_scale_out_has_every_step_in_order() -> None:
    seen = state("scaled_out", events=True)
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"], seen["events"])
    assert timeline.start == at("03:04:51")  # the baseline's 2 pods (scaled up from 0 just before)
    assert [n.nodeclaim for n in timeline.nodes] == [BASELINE_CLAIM, NEW_CLAIM]
    new = timeline.nodes[1]
    assert (new.node, new.nodepool, new.instance_type, new.capacity_type, new.zone) == (
        NEW_NODE,
        POOL,
        "c6in.2xlarge",
        "spot",
        "us-east-1a",
    )
    assert (new.claim_created, new.launched, new.registered, new.initialized, new.node_ready) == (
        at("03:05:00"),
        at("03:05:00"),
        at("03:05:01"),
        at("03:05:01"),
        at("03:05:01"),
    )
    pod = next(p for p in timeline.pods if p.pod == "game-2048/game-2048-665967d87f-4w5pd")
    assert (pod.node, pod.nodeclaim, pod.created, pod.nominated, pod.scheduled) == (
        NEW_NODE,
        NEW_CLAIM,
        at("03:04:58"),
        at("03:05:00"),
        at("03:05:01"),
    )
    assert (pod.nodeclaim_launched, pod.node_ready, pod.ready) == (at("03:05:00"), at("03:05:01"), at("03:05:01"))
    assert len(timeline.pods) == REPLICAS
    for row in timeline.pods:
        assert row.created and row.nodeclaim_launched and row.node_ready and row.ready
        assert row.created <= row.ready and row.node_ready <= row.ready
        assert row.nominated is None or row.created <= row.nominated <= row.ready
    # Not every pod gets its own Nominated event (Karpenter's recorder deduplicates): 12 of the 16 did.
    assert sum(1 for row in timeline.pods if row.nominated) == 12
    assert timeline.seconds(pod.ready) == 10.0
    assert timeline.seconds(None) is None


def test_timeline_in_progress_links_pending_pods_to_claims_through_nominated_events() -> None:
    seen = in_progress()
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"], seen["events"])
    pending = next(p for p in timeline.pods if p.pod == "game-2048/game-2048-665967d87f-4w5pd")
    assert (pending.node, pending.nodeclaim, pending.nominated, pending.nodeclaim_launched) == (
        None,
        NEW_CLAIM,
        at("03:05:00"),
        at("03:05:00"),
    )
    assert (pending.scheduled, pending.node_ready, pending.ready) == (None, None, None)
    launching = next(n for n in timeline.nodes if n.nodeclaim == NEW_CLAIM)
    assert (launching.node, launching.launched, launching.registered) == (None, at("03:05:00"), None)


def test_timeline_without_events_still_links_scheduled_pods_through_their_node() -> None:
    seen = in_progress()
    timeline = build_timeline(seen["pods"], seen["nodeclaims"], seen["nodes"])
    linked = {p.pod: p.nodeclaim for p in timeline.pods}
    scheduled = [p for p in seen["pods"] if p["spec"].get("nodeName")]
    assert len(scheduled) == 3
    assert all(linked[f"game-2048/{p['metadata']['name']}"] == BASELINE_CLAIM for p in scheduled)
    assert linked["game-2048/game-2048-665967d87f-4w5pd"] is None


def test_timeline_of_nothing_is_empty() -> None:
    timeline = build_timeline([], [], [])
    assert (timeline.start, timeline.pods, timeline.nodes) == (None, (), ())


# ---------------------------------------------------------------- scale-in

# recorded/consolidated/ (another run): scaled back from 16 to 2 with both replicas on apps-9vrnt; Karpenter deleted
# the empty apps-psd9x (DisruptionTerminating "Disrupting NodeClaim: Empty") and kept apps-9vrnt (Unconsolidatable).
KEPT_CLAIM, EMPTY_CLAIM = "apps-9vrnt", "apps-psd9x"
SPOT_TO_SPOT = "SpotToSpotConsolidation is disabled, can't replace a spot node with a spot node"


def scale_in(name: str, before: set[str], **changed: Any) -> Any:
    """judge_scale_in on one recorded state, as the e2e calls it after scaling back to the baseline of 2."""
    seen = state(name, events=True)
    arguments: dict[str, Any] = {
        "nodepool": POOL,
        "pods": seen["pods"],
        "replicas": 2,
        "request": REQUEST,
        "before": Before(frozenset(), frozenset(before)),
    }
    return judge_scale_in(seen["nodeclaims"], seen["nodes"], seen.get("events", []), **{**arguments, **changed})


def test_scale_in_passes_on_a_nodeclaim_consolidation_removed_down_to_the_minimum() -> None:
    result = scale_in("consolidated", {KEPT_CLAIM, EMPTY_CLAIM})
    assert result.status is Status.PASS, result.why
    assert result.why == (
        f"Karpenter consolidated {EMPTY_CLAIM} (Empty); 1 NodeClaim(s) of apps left for 2 pod(s), "
        "the bin-packing minimum"
    )
    assert result.evidence["consolidated"][EMPTY_CLAIM]["reason"] == "Empty"
    assert result.evidence["unconsolidatable"] == {KEPT_CLAIM: SPOT_TO_SPOT}


def test_scale_in_fails_when_the_nodeclaims_went_without_a_consolidation() -> None:
    seen = state("consolidated", events=True)
    # Changed: Karpenter's DisruptionTerminating events left out, so nothing says consolidation removed apps-psd9x.
    quiet = [e for e in seen["events"] if e.get("reason") != "DisruptionTerminating"]
    gone = judge_scale_in(
        seen["nodeclaims"],
        seen["nodes"],
        quiet,
        nodepool=POOL,
        pods=seen["pods"],
        replicas=2,
        request=REQUEST,
        before=Before(frozenset(), frozenset({KEPT_CLAIM, EMPTY_CLAIM})),
    )
    assert gone.status is Status.FAIL
    assert gone.why.startswith(f"{EMPTY_CLAIM} gone without Karpenter's DisruptionTerminating event")


def test_scale_in_fails_when_the_pool_had_nothing_to_consolidate() -> None:
    # Changed: only the kept NodeClaim at the scale back, already the minimum.
    result = scale_in("consolidated", {KEPT_CLAIM})
    assert result.status is Status.FAIL
    assert result.why.startswith("apps had 1 NodeClaim(s) at the scale back, no more than the bin-packing minimum of 1")


def test_scale_in_of_two_half_used_nodes_karpenter_never_consolidated_does_not_pass() -> None:
    """scaled_in/: one replica on each of the pool's two nodes, both Consolidatable, ~2.5 min after the scale back."""
    result = scale_in("scaled_in", {NEW_CLAIM, "apps-zq98s"})
    assert result.status is Status.PENDING
    assert result.why == "2 NodeClaim(s) and 2 Node(s) of apps for 2 pod(s) of 500m CPU, the bin-packing minimum is 1"


def test_scale_in_quotes_karpenter_on_the_nodeclaims_it_keeps() -> None:
    """underutilized/: one replica on each node again; Karpenter's last word on apps-9vrnt was Unconsolidatable."""
    seen = state("underutilized")
    result = scale_in("underutilized", {c["metadata"]["name"] for c in seen["nodeclaims"]})
    assert result.status is Status.PENDING
    assert result.why.endswith(
        f"the bin-packing minimum is 1; Karpenter: Unconsolidatable ({KEPT_CLAIM}: {SPOT_TO_SPOT})"
    )


def test_scale_in_passes_once_karpenter_deletes_an_underutilized_node_whose_pod_fits_the_other() -> None:
    """underutilized_consolidated/: single-node consolidation deleted apps-9nk5k without a replacement."""
    result = scale_in("underutilized_consolidated", {KEPT_CLAIM, "apps-9nk5k"})
    assert result.status is Status.PASS, result.why
    assert result.why.startswith("Karpenter consolidated apps-9nk5k (Underutilized); 1 NodeClaim(s) of apps left")


def test_scale_in_is_pending_while_the_old_replicas_or_a_pool_node_are_being_removed() -> None:
    scaled = state("interrupted")
    early = scale_in("interrupted", set(), pods=scaled["pods"])
    assert (early.status, early.why) == (Status.PENDING, "16 pod(s) left of the 2 scaled to")
    seen = state("consolidating")  # scaled to 0 while Karpenter deletes the node
    removing = scale_in("consolidating", {CONSOLIDATED_CLAIM}, pods=seen["pods"], replicas=0)
    assert removing.status is Status.PENDING
    assert removing.why.startswith("0 NodeClaim(s) and 0 Node(s) of apps for 0 pod(s)")
    assert f"removing {CONSOLIDATED_CLAIM}, {CONSOLIDATED_NODE}" in removing.why


def test_scale_in_fails_on_a_replica_off_the_pool() -> None:
    seen = state("consolidated")
    ops = next(n for n in seen["nodes"] if n["metadata"]["name"].startswith("ops-"))
    seen["pods"][0]["spec"]["nodeName"] = ops["metadata"]["name"]  # changed: one replica on an ops node
    result = scale_in("consolidated", {KEPT_CLAIM, EMPTY_CLAIM}, pods=seen["pods"])
    assert result.status is Status.FAIL and "not on spot nodes of apps" in result.why


CONSOLIDATED_CLAIM, CONSOLIDATED_NODE = "apps-dgm4h", "i-50768761a393b20c8"


# What the platform created in the recorded run (its outputs): the EC2NodeClass resolved these.
PRIVATE_SUBNETS = ["subnet-523a01a7cad079647", "subnet-d26987e999296a54f", "subnet-f11c6f0630bd5ff86"]
DISCOVERY_GROUP = "sg-c5a289ecf0719b1a6"
AMI = "ami-0a1b2c3d4e5f60001"  # the emulator's image of the pinned AL2023 release


def discovery(nodeclass: dict[str, Any] | None, subnets: list[str] = PRIVATE_SUBNETS) -> Any:
    return judge_node_class_discovery(nodeclass, subnets=subnets, security_groups=[DISCOVERY_GROUP], amis=[AMI])


def test_a_node_class_that_found_the_platforms_subnets_group_and_ami_passes() -> None:
    result = discovery(pool()[1])
    assert result.status is Status.PASS, result.why
    assert result.evidence["resolved"]["subnets"] == sorted(PRIVATE_SUBNETS)


def test_a_node_class_that_found_a_public_subnet_too_fails_naming_it() -> None:
    _, nodeclass = pool()
    nodeclass["status"]["subnets"].append({"id": "subnet-public", "zone": "us-east-1a"})  # changed
    result = discovery(nodeclass)
    assert result.status is Status.FAIL
    assert "subnets: missing [], extra ['subnet-public']" in result.why


def test_a_node_class_missing_a_private_subnet_or_with_another_ami_fails() -> None:
    _, nodeclass = pool()
    nodeclass["status"]["amis"] = [{"id": "ami-other", "name": "al2023"}]  # changed
    result = discovery(nodeclass, subnets=[*PRIVATE_SUBNETS, "subnet-0dd"])
    assert result.status is Status.FAIL
    assert "missing ['subnet-0dd']" in result.why and f"amis: missing ['{AMI}']" in result.why


def test_a_node_class_not_ready_or_missing_is_pending_with_karpenters_reason() -> None:
    _, nodeclass = pool()
    set_condition(nodeclass, "Ready", "False", "UnhealthyDependents", "SubnetsReady=False")  # changed
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
    nodeclass["status"]["amis"] = []  # changed
    none = judge_node_class_discovery(nodeclass, subnets=PRIVATE_SUBNETS, security_groups=[DISCOVERY_GROUP], amis=None)
    assert none.status is Status.FAIL and "amis: missing ['(any AMI)']" in none.why


# ---------------------------------------------------------------- spot interruption


def test_the_interruption_victim_is_a_pool_nodeclaim_with_its_node_and_instance() -> None:
    claims = done()["nodeclaims"]
    victim = interruption_victim(claims, POOL)
    # The first by name; EKS names a node after its instance.
    assert victim == InterruptionVictim(BASELINE_CLAIM, BASELINE_NODE, BASELINE_NODE)
    assert interruption_victim(claims, "batch") is None
    warning = spot_interruption_warning(victim, "us-east-1", "123456789012")
    assert warning["detail-type"] == "EC2 Spot Instance Interruption Warning"
    assert warning["detail"] == {"instance-id": BASELINE_NODE, "instance-action": "terminate"}
    assert warning["resources"] == [f"arn:aws:ec2:us-east-1:123456789012:instance/{BASELINE_NODE}"]


# recorded/underutilized_consolidated/ (2 replicas on apps-9vrnt), then a spot interruption warning for it:
# recorded/interrupted_baseline/ holds the state and Karpenter's events after it.
VICTIM = InterruptionVictim("apps-9vrnt", "i-590f074bc039f3ef7", "i-590f074bc039f3ef7")
REPLACEMENT = "apps-hbc67"


def interruption(after: dict[str, list[dict[str, Any]]], events: list[dict[str, Any]], state_now: str) -> Any:
    before = state("underutilized_consolidated")  # the recorded state the warning was sent in
    return judge_interruption(
        VICTIM,
        after["pods"],
        after["nodeclaims"],
        after["nodes"],
        events,
        instance_state=state_now,
        replicas=2,
        nodepool=POOL,
        before=Before.of(before["pods"], before["nodeclaims"]),
    )


def test_an_interruption_passes_once_karpenter_reported_it_drained_the_node_and_the_pods_run_again() -> None:
    after = state("interrupted_baseline", events=True)
    events = after["events"]
    draining = interruption(state("underutilized_consolidated"), events, "running")
    assert draining.status is Status.PENDING and f"{VICTIM.nodeclaim} still there" in draining.why
    assert {c["metadata"]["name"] for c in after["nodeclaims"]} == {REPLACEMENT}
    terminating = interruption(after, events, "running")  # changed: the instance still running
    assert terminating.status is Status.PENDING and "is running" in terminating.why
    passed = interruption(after, events, "terminated")  # as the emulator answered after the recording
    assert passed.status is Status.PASS, passed.why
    assert passed.why == (
        f"Karpenter reported {INTERRUPTION_EVENT}; node {VICTIM.node} drained and gone, instance {VICTIM.instance_id} "
        f"terminated; 2 replica(s) Ready on the pool again, of the 2 evicted 2 on the replacement NodeClaim(s) "
        f"{REPLACEMENT}"
    )
    assert passed.evidence["karpenter_event"].endswith(f"{INTERRUPTION_EVENT}: Spot interruption warning was triggered")


def test_an_interruption_karpenter_never_reported_fails() -> None:
    after = state("interrupted_baseline", events=True)
    # Changed: no SpotInterrupted (only Karpenter's TerminatingOnInterruption): the node went, but not for the warning.
    others = [e for e in after["events"] if e["reason"] != INTERRUPTION_EVENT]
    result = interruption(after, others, "terminated")
    assert result.status is Status.FAIL
    assert result.why == (
        f"NodeClaim {VICTIM.nodeclaim} is gone, but Karpenter reported no SpotInterrupted for it or node {VICTIM.node}"
    )


def test_an_interruption_whose_pods_went_off_the_pool_fails() -> None:
    after = state("interrupted_baseline", events=True)
    after["pods"][0]["spec"]["nodeName"] = OPS_A  # changed: onto an ops node
    result = interruption(after, after["events"], "terminated")
    assert result.status is Status.FAIL and result.why.endswith("runs on an ops node")


def test_the_scale_out_figures_time_only_what_came_after_the_scale() -> None:
    seen = state("scaled_out", events=True)
    claims = seen["nodeclaims"]
    timeline = build_timeline(seen["pods"], claims, seen["nodes"], seen["events"], BEFORE_SCALE)
    assert timeline.start == at("03:04:58")  # the scale from 2 to 16: its pods' creationTimestamp
    game = yaml.safe_load((repo_root() / "gitops/apps/game-2048/deployment.yaml").read_text())
    request = cpu_request(game)
    figures = scale_out_figures(timeline, claims, replicas=REPLICAS, request=request, nodepool=POOL)
    # 14 new pods, each Ready 3 s after its creation; the one new node (apps-vsbxl) Ready 3 s after the scale. The
    # baseline's node (Ready 03:04:54, before the scale) is neither the first nor the last.
    assert (figures.pending_to_running_p50, figures.pending_to_running_p90) == (3.0, 3.0)
    assert (figures.first_node_ready, figures.last_node_ready, figures.all_pods_ready) == (3.0, 3.0, 3.0)
    assert (figures.nodes, figures.pods, figures.baseline_nodes, figures.baseline_pods) == (1, 14, 1, 2)
    sizes = [cpu_cores(c["status"]["allocatable"]["cpu"]) for c in claims]
    assert sorted(sizes) == [1.93, 7.91]
    # 16 x 500m = 8 vCPU does not fit on the largest node launched (7910m): 2 nodes.
    assert figures.bin_packing_minimum == math.ceil(REPLICAS * cpu_cores(request) / 7.91) == 2
    # Without the baseline set apart every row counts as the scale-out's: the baseline's node becomes "first".
    everything = build_timeline(seen["pods"], claims, seen["nodes"], seen["events"])
    mixed = scale_out_figures(everything, claims, replicas=REPLICAS, request=request, nodepool=POOL)
    assert (everything.start, mixed.first_node_ready, mixed.nodes) == (at("03:04:51"), 3.0, 2)
    # Mid scale-out: the new node is not Ready, so neither the last node nor all pods have a time yet.
    going = in_progress()
    partial = scale_out_figures(
        build_timeline(going["pods"], going["nodeclaims"], going["nodes"], going["events"], BEFORE_SCALE),
        going["nodeclaims"],
        replicas=REPLICAS,
        request=request,
        nodepool=POOL,
    )
    assert (partial.first_node_ready, partial.last_node_ready, partial.all_pods_ready) == (None, None, None)
    assert cpu_cores("500m") == 0.5 and cpu_cores("2") == 2.0
    assert request == game["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == REQUEST
    assert cpu_request({"spec": {}}) == "0"


def launched_instances(nodeclaims: list[dict[str, Any]], **changed: Any) -> dict[str, dict[str, Any]]:
    """DescribeInstances entries for the recorded NodeClaims' instances, as EC2 reports a spot launch."""
    ids = [i for c in nodeclaims if (i := instance_id(c))]
    return {
        i: {"InstanceId": i, "InstanceLifecycle": "spot", "SecurityGroups": [{"GroupId": DISCOVERY_GROUP}], **changed}
        for i in ids
    }


def tainted_off(nodes: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    stripped = [yaml.safe_load(yaml.safe_dump(n)) for n in nodes]
    for node in stripped:
        if node["metadata"]["name"] == name:
            node["spec"]["taints"] = [t for t in node["spec"]["taints"] if t["key"] != "eks-platform/pool"]
    return stripped


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({}, None),
        ({"instances": {"InstanceLifecycle": None}}, f"instance {NEW_NODE} is on-demand, not spot"),
        ({"instances": {"SecurityGroups": [{"GroupId": "sg-default"}]}}, f"is in sg-default, not {DISCOVERY_GROUP}"),
        ({"untainted": NEW_NODE}, f"node {NEW_NODE} lacks the taint eks-platform/pool=apps"),
        ({"cpu_limit": "4"}, "the pool launched 10 CPU, over its limit 4"),
        ({"gone": NEW_NODE}, f"apps-vsbxl's instance {NEW_NODE} is not in EC2"),
    ],
    ids=["as-declared", "on-demand", "default-group", "untainted-node", "over-cpu-limit", "instance-gone"],
)
def test_the_pool_instances_are_judged_against_the_nodepool_and_the_discovery_group(
    change: dict[str, Any], why: str | None
) -> None:
    seen = done()
    (nodepool,) = items("recorded/scaled_out/nodepools.yaml")
    if "cpu_limit" in change:
        nodepool = {**nodepool, "spec": {**nodepool["spec"], "limits": {"cpu": change["cpu_limit"]}}}
    instances = launched_instances(seen["nodeclaims"], **change.get("instances", {}))
    instances.pop(change.get("gone", ""), None)
    nodes = tainted_off(seen["nodes"], change["untainted"]) if "untainted" in change else seen["nodes"]
    result = judge_pool_instances(nodepool, seen["nodeclaims"], nodes, instances, security_groups=[DISCOVERY_GROUP])
    if why is None:
        assert result.status is Status.PASS, result.why
        assert result.evidence["instances"] == {BASELINE_NODE: BASELINE_CLAIM, NEW_NODE: NEW_CLAIM}
    else:
        assert result.status is Status.FAIL and why in result.why, result.why


def test_a_pool_without_launched_instances_fails_the_instance_judge() -> None:
    (nodepool,) = items("recorded/scaled_out/nodepools.yaml")
    result = judge_pool_instances(nodepool, [], [], {}, security_groups=[DISCOVERY_GROUP])
    assert result.status is Status.FAIL and "no NodeClaim of apps has an instance" in result.why


def test_spot_prices_come_from_the_latest_history_entry_of_each_type_and_zone() -> None:
    from harness.kube.spot import SPOT_PRICES_CHECK, judge_spot_prices

    instances = {
        "i-1": {"InstanceType": "c5.xlarge", "Placement": {"AvailabilityZone": "us-east-1a"}},
        "i-2": {"InstanceType": "m5.xlarge", "Placement": {"AvailabilityZone": "us-east-1b"}},
    }
    history = [
        {
            "InstanceType": "c5.xlarge",
            "AvailabilityZone": "us-east-1a",
            "SpotPrice": "0.0900",
            "Timestamp": datetime(2026, 1, 1),
        },
        {
            "InstanceType": "c5.xlarge",
            "AvailabilityZone": "us-east-1a",
            "SpotPrice": "0.0712",
            "Timestamp": datetime(2026, 1, 2),
        },
        {
            "InstanceType": "m5.xlarge",
            "AvailabilityZone": "us-east-1b",
            "SpotPrice": "0.0800",
            "Timestamp": datetime(2026, 1, 2),
        },
    ]
    judged = judge_spot_prices(instances, history)
    assert (judged.name, judged.status) == (SPOT_PRICES_CHECK, Status.PASS)
    assert judged.why.startswith("$0.1512/h for 2: i-1 (c5.xlarge in us-east-1a) $0.0712/h")
    judged = judge_spot_prices(instances, history[:2])
    assert judged.status is Status.FAIL and judged.why.endswith("i-2 (m5.xlarge in us-east-1b)")
    assert judge_spot_prices({}, history).status is Status.FAIL
