"""The control-plane upgrade's judges, on API objects as the API server lists them, and what it refuses."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from kube_fixtures import items

from harness.e2e.report import upgrade_figure
from harness.e2e.upgrade import Watcher
from harness.errors import EnvironmentProblem
from harness.kube.upgrade import (
    SYNCED_THROUGHOUT_CHECK,
    Sample,
    drain_blocked,
    inventory,
    judge_addon_support,
    judge_availability,
    judge_drift,
    judge_kubelets,
    judge_objects_kept,
    judge_throughout,
    judge_version,
    pdb_floor,
    upgrade_addon_versions,
)
from harness.processes import Supervisor
from harness.results import Status
from harness.targets.controlplane import attach, replace_control_plane, upgrade_control_plane


def obj(kind: str, name: str, uid: str, namespace: str | None = None) -> dict[str, Any]:
    metadata = {"name": name, "uid": uid, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": metadata}


BEFORE = inventory(
    [obj("Namespace", "game-2048", "u1"), obj("Deployment", "game", "u2", "game-2048"), obj("Widget", "w", "u3", "g")]
)


def test_the_inventory_names_objects_by_kind_namespace_and_name() -> None:
    assert BEFORE == {"Namespace/game-2048": "u1", "Deployment/game-2048/game": "u2", "Widget/g/w": "u3"}


def test_every_object_kept_with_its_uid_passes_whatever_the_new_minor_adds() -> None:
    after = {**BEFORE, "ConfigMap/kube-system/new-in-this-minor": "u9"}
    kept = judge_objects_kept(BEFORE, after)
    assert kept.status is Status.PASS and kept.why == "all 3 objects kept, each the same object"


def test_a_lost_object_and_one_created_anew_in_its_place_fail_naming_them() -> None:
    after = {"Namespace/game-2048": "u1", "Deployment/game-2048/game": "other"}
    kept = judge_objects_kept(BEFORE, after)
    assert kept.status is Status.FAIL
    assert kept.why == "Widget/g/w is gone (and 1 more) of 3 objects"
    assert kept.evidence["recreated"] == ["Deployment/game-2048/game"]


def test_the_version_judge_compares_the_served_release_with_the_pin() -> None:
    assert judge_version("v1.36.5", "1.36.5").status is Status.PASS
    wrong = judge_version("v1.35.5", "1.36.5")
    assert wrong.status is Status.FAIL and wrong.why == "the API server reports v1.35.5, not v1.36.5"
    # EKS: the minor, whatever patch and build it serves.
    assert judge_version("v1.36.2-eks-3a10ca4", "1.36").status is Status.PASS
    behind = judge_version("v1.35.6-eks-3a10ca4", "1.36")
    assert behind.status is Status.FAIL and behind.why == "the API server reports v1.35.6-eks-3a10ca4, not v1.36.x"
    assert judge_version("v1.360.0", "1.36").status is Status.FAIL


def test_a_control_plane_attached_from_records_is_refused_before_anything_is_stopped(tmp_path: Path) -> None:
    """Another shell's control plane has no etcd URL and no processes of this one: the upgrade says so in one line
    instead of starting a second API server on a port the first still holds."""
    plane = attach(tmp_path, "https://127.0.0.1:6443")
    with pytest.raises(EnvironmentProblem, match=r"needs the control plane this process started"):
        upgrade_control_plane(plane)


def test_a_replacement_without_the_etcd_url_is_refused(tmp_path: Path) -> None:
    """A run recorded before its etcd URL was: nothing to start the new API server on."""
    plane = attach(tmp_path, "https://127.0.0.1:6443")
    with pytest.raises(EnvironmentProblem, match=r"needs the control plane's etcd"):
        replace_control_plane(plane, Supervisor(tmp_path / "logs"), lambda: None, release="1.36.5")


def node(name: str, kubelet: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": kubelet} if kubelet else {}}}


def test_the_kubelet_judge_passes_when_every_node_runs_the_minors_release() -> None:
    judged = judge_kubelets([node("ops-0", "v1.36.5"), node("ops-1", "v1.36.5")], "v1.36.5")
    assert judged.status is Status.PASS and judged.why == "2 Node(s) run kubelet v1.36.5"


def test_the_kubelet_judge_names_a_node_left_behind_and_an_empty_group() -> None:
    judged = judge_kubelets([node("ops-0", "v1.36.5"), node("ops-1", "v1.35.5"), node("ops-2", None)], "v1.36.5")
    assert judged.status is Status.FAIL
    assert judged.why == "node ops-1 runs kubelet v1.35.5, not v1.36.5 (and 1 more)"
    assert judge_kubelets([], "v1.36.5").why == "no Node of the node group is registered"


def test_the_pdb_floor_follows_min_available_max_unavailable_and_percentages() -> None:
    assert pdb_floor({"spec": {"minAvailable": 1}}, 4) == 1
    assert pdb_floor({"spec": {"minAvailable": "50%"}}, 3) == 2  # rounded up
    assert pdb_floor({"spec": {"maxUnavailable": 1}}, 4) == 3
    assert pdb_floor({"spec": {"maxUnavailable": 0}}, 2) == 2
    assert pdb_floor({}, 2) == 2  # no budget: nothing may go


def test_availability_passes_at_the_floor_and_says_when_the_api_did_not_answer() -> None:
    samples = [Sample(0.0, 2), Sample(1.0, None), Sample(2.0, 1), Sample(3.0, 2)]
    judged = judge_availability(samples, 1)
    assert judged.status is Status.PASS
    assert (
        judged.why
        == "never below 1: at least 1 ready pod(s) in 3 samples; the API server did not answer 1 of 4 samples"
    )


def test_availability_fails_naming_the_lowest_sample_below_the_floor_and_when_nothing_answered() -> None:
    judged = judge_availability([Sample(0.0, 2), Sample(5.0, 0), Sample(6.0, 1)], 1)
    assert judged.status is Status.FAIL and judged.why == "0 ready pod(s) at 5 s, below the budget's floor of 1"
    assert judge_availability([Sample(0.0, None)], 1).status is Status.FAIL


def claim(name: str, image: str, pool: str = "apps") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"karpenter.sh/nodepool": pool}}, "status": {"imageID": image}}


def test_drift_passes_once_every_old_claim_is_gone_and_the_pool_runs_the_new_image() -> None:
    before = [claim("apps-a", "ami-old"), claim("other-x", "ami-old", pool="other")]
    judged = judge_drift(before, [claim("apps-b", "ami-new")], "apps", {"ami-new"})
    assert judged.status is Status.PASS and judged.evidence["replaced"] == ["apps-a"]


def test_drift_waits_while_an_old_claim_is_left_or_a_replacement_runs_the_old_image() -> None:
    before = [claim("apps-a", "ami-old")]
    assert judge_drift(before, [claim("apps-a", "ami-old")], "apps", {"ami-new"}).status is Status.PENDING
    assert judge_drift(before, [claim("apps-b", "ami-old")], "apps", {"ami-new"}).status is Status.PENDING
    nothing = judge_drift([], [claim("apps-b", "ami-new")], "apps", {"ami-new"})
    assert nothing.status is Status.FAIL and "nothing to drift" in nothing.why


def test_the_watcher_samples_until_stopped_and_records_an_unanswered_look_as_none(tmp_path: Path) -> None:
    answers = iter([(3, True, True), (2, False, True)])

    def look() -> tuple[int, bool, bool]:
        try:
            return next(answers)
        except StopIteration:
            raise EnvironmentProblem("cannot reach Kubernetes API") from None

    with Watcher(look, interval=0.01) as watcher:
        while len(watcher.samples) < 4:
            time.sleep(0.01)
    assert [(s.ready, s.synced, s.alb) for s in watcher.samples[:3]] == [(3, True, True), (2, False, True), (None,) * 3]
    upgrade_figure(watcher.samples, 1, {"control plane": 0.02}).savefig(tmp_path / "upgrade.png")
    assert (tmp_path / "upgrade.png").read_bytes().startswith(b"\x89PNG")


def test_throughout_passes_when_every_answered_sample_held_and_names_the_first_second_it_did_not() -> None:
    held = [Sample(0.0, 2, True, True), Sample(1.0, None), Sample(2.0, 2, True, True)]
    judged = judge_throughout(held, "synced", SYNCED_THROUGHOUT_CHECK)
    assert judged.status is Status.PASS and judged.why == "in all 2 answered samples"
    lost = judge_throughout([*held, Sample(3.0, 2, False, True), Sample(4.0, 2, False, False)], "synced", "x")
    assert lost.status is Status.FAIL and lost.why == "not at 3 s (and in 1 later samples)"
    assert judge_throughout([Sample(0.0, None)], "alb", "x").status is Status.FAIL


# Recorded: harness upgrade in a copy whose budget is maxUnavailable: 0, when Karpenter's drain was first refused.
BLOCKED_EVENTS = "recorded/drift_blocked_by_pdb/events_default.yaml"


def budget(allowed: int, healthy: int, expected: int = 2) -> dict[str, Any]:
    """The game's PodDisruptionBudget as the disruption controller reports it."""
    status = {"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": 2, "expectedPods": expected}
    return {"metadata": {"namespace": "game-2048", "name": "game-2048"}, "status": status}


def test_a_drain_a_budget_refuses_with_every_pod_healthy_blocks_the_drift_in_karpenters_words() -> None:
    since = datetime(2026, 12, 7, 12, 35, tzinfo=timezone.utc)
    blocked = drain_blocked(items(BLOCKED_EVENTS), budget(0, 2), since)
    assert blocked == (
        "drift blocked: karpenter: Node/i-14ef9c972ea26ea16 FailedDraining: Failed to drain node, 2 pods are waiting "
        "to be evicted; PodDisruptionBudget game-2048/game-2048 allows no disruption with all 2 of its pods healthy; "
        "Karpenter's terminationGracePeriod then deletes them anyway (all pods will be deleted by "
        "2026-12-07T12:45:03Z), below the budget"
    )


def test_a_drain_waiting_on_a_pod_being_replaced_or_from_before_the_drift_is_not_blocked() -> None:
    since = datetime(2026, 12, 7, 12, 35, tzinfo=timezone.utc)
    events = items(BLOCKED_EVENTS)
    assert drain_blocked(events, budget(0, 1), since) is None  # one pod on its way back: the budget will allow again
    assert drain_blocked(events, budget(1, 2), since) is None
    assert drain_blocked(events, None, since) is None
    assert drain_blocked(events, budget(0, 2), since.replace(hour=13)) is None  # nothing said since the drift began


PINS = {
    "kubernetes": "1.36",
    "upgrade_from_kubernetes": "1.35",
    "eks_addon_vpc_cni": "v1.22.4-eksbuild.3",
    "eks_addon_kube_proxy": "v1.36.0-eksbuild.25",
    "upgrade_from_eks_addon_kube_proxy": "v1.35.3-eksbuild.2",
    "karpenter": "1.14.1",
}


def test_each_add_on_pin_is_wanted_on_the_minor_it_runs_on_a_kept_pin_on_both() -> None:
    assert upgrade_addon_versions(PINS) == [
        ("kube-proxy", "1.35", "v1.35.3-eksbuild.2"),
        ("kube-proxy", "1.36", "v1.36.0-eksbuild.25"),
        ("vpc-cni", "1.35", "v1.22.4-eksbuild.3"),
        ("vpc-cni", "1.36", "v1.22.4-eksbuild.3"),
    ]


def test_add_on_support_passes_when_eks_offers_each_and_names_the_first_it_does_not() -> None:
    wanted = upgrade_addon_versions(PINS)
    offered = {(name, minor): {version, "v0"} for name, minor, version in wanted}
    assert judge_addon_support(wanted, offered).why == "all 4 add-on versions offered for their minors"
    offered[("vpc-cni", "1.35")] = {"v1.21.0-eksbuild.1"}
    judged = judge_addon_support(wanted, offered)
    assert judged.status is Status.FAIL and judged.why == "EKS offers no vpc-cni v1.22.4-eksbuild.3 for Kubernetes 1.35"
