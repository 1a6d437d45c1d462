"""Which controller events end a wait at once (harness.kube.terminal), on events recorded from local runs: a whole
scale-out's (none of them final) and those of runs given a broken input (each file's header says which)."""

from __future__ import annotations

from datetime import datetime, timezone

from kube_fixtures import items

from harness.kube.terminal import (
    ENDS,
    INGRESS_WAIT,
    KARPENTER_CANNOT_LAUNCH,
    POD_FITS_NO_NODEPOOL,
    SCALE_OUT_WAIT,
    terminal_reason,
)

# gitops/'s NodePool with `instance-type In [x9.nothing]`, 75 s after the sync (each file's header says so).
NO_INSTANCE_TYPES = "recorded/nodepool_no_instance_types"
# The game's Ingress re-created while the public subnets were tagged for another cluster.
NO_SUBNETS = "recorded/ingress_no_subnets/events_game-2048.yaml"


def no_instance_types() -> list[dict[str, object]]:
    return [*items(f"{NO_INSTANCE_TYPES}/events_default.yaml"), *items(f"{NO_INSTANCE_TYPES}/events_game-2048.yaml")]


def test_karpenters_no_compatible_instance_types_ends_the_wait_in_its_words() -> None:
    events = no_instance_types()
    assert terminal_reason(events, ENDS[SCALE_OUT_WAIT]) == (
        "karpenter: NodePool/apps NoCompatibleInstanceTypes: NodePool requirements filtered out all compatible "
        "available instance types"
    )
    on_pods = [e for e in events if e["involvedObject"]["kind"] == "Pod"]  # without the NodePool's event
    assert terminal_reason(on_pods, KARPENTER_CANNOT_LAUNCH) == (
        "karpenter: Pod/game-2048-756c96dc64-sss5b FailedScheduling: Failed to schedule pod, nodepool requirements "
        "filtered out all available instance types"
    )


def test_the_schedulers_failed_scheduling_and_karpenters_normal_events_are_not_final() -> None:
    only_scheduler = [e for e in no_instance_types() if e.get("reportingComponent") == "default-scheduler"]
    assert only_scheduler and terminal_reason(only_scheduler, [POD_FITS_NO_NODEPOOL]) is None
    # A whole recorded scale-out: the kube-scheduler's FailedScheduling on every new pod, Karpenter's Nominated,
    # Launched, Registered... and its consolidation's events. None ends a wait.
    recorded = [*items("recorded/scaled_out/events_game-2048.yaml"), *items("recorded/scaled_out/events_default.yaml")]
    assert any(e["reason"] == "FailedScheduling" for e in recorded)
    assert all(terminal_reason(recorded, rules) is None for rules in ENDS.values())


def test_an_event_from_before_the_wait_does_not_end_it() -> None:
    events = no_instance_types()
    after = datetime(2026, 12, 6, 6, 38, tzinfo=timezone.utc)  # the NodePool's event was last seen 06:37:28
    assert terminal_reason(events, KARPENTER_CANNOT_LAUNCH, since=after) is None
    assert terminal_reason(events, KARPENTER_CANNOT_LAUNCH, since=after.replace(minute=37)) is not None


def test_the_lb_controllers_failed_build_model_ends_the_ingress_wait() -> None:
    events = items(NO_SUBNETS)
    assert terminal_reason(events, ENDS[INGRESS_WAIT]) == (
        "ingress: Ingress/game-2048 FailedBuildModel: Failed build model due to couldn't auto-discover subnets: "
        "unable to resolve at least one subnet. Evaluated 3 subnets: 3 are tagged for other clusters, and 0 have "
        "insufficient available IP addresses"
    )
    # The same namespace's other Warnings (the pods' FailedScheduling, the TargetGroupBindings'
    # FailedNetworkReconcile) end nothing.
    assert terminal_reason([e for e in events if e["reason"] != "FailedBuildModel"], ENDS[INGRESS_WAIT]) is None
