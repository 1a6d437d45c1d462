"""Which controller events end a wait at once (harness.kube.terminal), on the events recorded from a local run
(none of them final) and hand-written ones for the states a local run has not recorded yet (each file says why)."""

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

NO_INSTANCE_TYPES = "events_nodepool_no_instance_types.yaml"


def test_karpenters_no_compatible_instance_types_ends_the_wait_in_its_words() -> None:
    events = items(NO_INSTANCE_TYPES)
    assert terminal_reason(events, ENDS[SCALE_OUT_WAIT]) == (
        "karpenter: NodePool/apps NoCompatibleInstanceTypes: NodePool requirements filtered out all compatible "
        "available instance types"
    )
    on_pods = [e for e in events if e["involvedObject"]["kind"] == "Pod"]  # without the NodePool's event
    assert terminal_reason(on_pods, KARPENTER_CANNOT_LAUNCH) == (
        "karpenter: Pod/game-2048-665967d87f-dt5n5 FailedScheduling: Failed to schedule pod, nodepool requirements "
        "filtered out all available instance types"
    )


def test_the_recorded_nodepool_no_instance_type_satisfies_ends_the_wait_in_karpenters_words() -> None:
    """recorded/nodepool_no_instance_types/: gitops/'s NodePool with `instance-type In [x9.nothing]`, 75 s after the
    sync: the same words as the hand-written file above, from Karpenter itself."""
    folder = "recorded/nodepool_no_instance_types"
    events = [*items(f"{folder}/events_default.yaml"), *items(f"{folder}/events_game-2048.yaml")]
    assert terminal_reason(events, ENDS[SCALE_OUT_WAIT]) == (
        "karpenter: NodePool/apps NoCompatibleInstanceTypes: NodePool requirements filtered out all compatible "
        "available instance types"
    )
    on_pods = [e for e in events if e["involvedObject"]["kind"] == "Pod"]
    reason = terminal_reason(on_pods, KARPENTER_CANNOT_LAUNCH)
    assert reason is not None and reason.endswith(
        "FailedScheduling: Failed to schedule pod, nodepool requirements filtered out all available instance types"
    )


def test_the_schedulers_failed_scheduling_and_karpenters_normal_events_are_not_final() -> None:
    only_scheduler = [e for e in items(NO_INSTANCE_TYPES) if e.get("reportingComponent") == "default-scheduler"]
    assert only_scheduler and terminal_reason(only_scheduler, [POD_FITS_NO_NODEPOOL]) is None
    # A whole recorded scale-out: the kube-scheduler's FailedScheduling on every new pod, Karpenter's Nominated,
    # Launched, Registered... and its consolidation's events. None ends a wait.
    recorded = [*items("recorded/scaled_out/events_game-2048.yaml"), *items("recorded/scaled_out/events_default.yaml")]
    assert any(e["reason"] == "FailedScheduling" for e in recorded)
    assert all(terminal_reason(recorded, rules) is None for rules in ENDS.values())


def test_an_event_from_before_the_wait_does_not_end_it() -> None:
    events = items(NO_INSTANCE_TYPES)
    after = datetime(2026, 11, 29, 2, 15, tzinfo=timezone.utc)  # the NodePool's event was last seen 02:13:42
    assert terminal_reason(events, KARPENTER_CANNOT_LAUNCH, since=after) is None
    assert terminal_reason(events, KARPENTER_CANNOT_LAUNCH, since=after.replace(minute=13)) is not None


def test_the_lb_controllers_failed_build_model_ends_the_ingress_wait() -> None:
    reason = terminal_reason(items("events_ingress_no_subnets.yaml"), ENDS[INGRESS_WAIT])
    assert reason is not None and reason.startswith(
        "ingress: Ingress/game-2048 FailedBuildModel: Failed build model due to couldn't auto-discover subnets"
    )
