"""harness.terraform.timeline: a Terraform command's parts and critical path from its `-json` events, the emulator's
busy time from the provider's HTTP log."""

from __future__ import annotations

import json

import pytest

from harness.errors import InputError
from harness.terraform import timeline as tl

LAUNCHED = tl.parse_timestamp("2026-12-06T04:45:00.000000Z")


def event(kind: str, second: float, address: str = "", action: str = "", **extra: object) -> str:
    stamp = f"2026-12-06T04:45:{second:09.6f}Z"
    body: dict[str, object] = {"@timestamp": stamp, "type": kind, **extra}
    if address:
        body["hook"] = {"resource": {"addr": address}, "action": action}
    return json.dumps(body)


def summary(second: float, operation: str) -> str:
    return event("change_summary", second, changes={"operation": operation})


# An apply: start-up until 3 s, a data source read while planning, the plan until 5 s, then a chain
# vpc (5-15) -> subnet (15.2-16) -> cluster (16.1-17) beside a queue (5.1-30) that nothing waits for, then a role
# whose start waited for the queue; the walk ends at 31.5 and the process at 33.
APPLY = [
    event("version", 1.0),
    "There are some problems with the CLI configuration:",  # stderr in the same log
    event("apply_start", 3.0, "data.aws_partition.current", "read"),
    event("apply_complete", 3.5, "data.aws_partition.current", "read"),
    event("planned_change", 4.0),
    summary(5.0, "plan"),
    event("apply_start", 5.0, "module.network.aws_vpc.this", "create"),
    event("apply_start", 5.1, "module.karpenter.aws_sqs_queue.interruption", "create"),
    event("apply_complete", 15.0, "module.network.aws_vpc.this", "create"),
    event("apply_start", 15.2, "module.network.aws_subnet.private[0]", "create"),
    event("apply_complete", 16.0, "module.network.aws_subnet.private[0]", "create"),
    event("apply_start", 16.1, "module.cluster.aws_eks_cluster.this", "create"),
    event("apply_complete", 17.0, "module.cluster.aws_eks_cluster.this", "create"),
    event("apply_complete", 30.0, "module.karpenter.aws_sqs_queue.interruption", "create"),
    event("apply_start", 30.2, "module.karpenter.aws_iam_policy.interruption", "create"),
    event("apply_complete", 31.0, "module.karpenter.aws_iam_policy.interruption", "create"),
    summary(31.5, "apply"),
]


def apply_timeline() -> tl.Timeline:
    return tl.timeline(tl.read_events(APPLY, "apply.log"), LAUNCHED, 33.0, "apply.log")


def test_the_parts_add_up_to_the_command() -> None:
    found = apply_timeline()
    assert found.parts() == pytest.approx({"start-up": 3.0, "plan": 2.0, "resource walk": 26.5, "wrap-up": 1.5})
    assert sum(found.parts().values()) == pytest.approx(33.0)


def test_data_sources_read_while_planning_belong_to_the_plan() -> None:
    found = apply_timeline()
    assert found.change("data.aws_partition.current") is None
    assert found.change("module.network.aws_vpc.this") == tl.Change("module.network.aws_vpc.this", "create", 5.0, 15.0)
    assert len(found.changes) == 5


def test_the_critical_path_is_the_chain_behind_the_last_change() -> None:
    chain = tl.critical_path(apply_timeline().changes)
    assert [c.address for c in chain] == [
        "module.karpenter.aws_sqs_queue.interruption",
        "module.karpenter.aws_iam_policy.interruption",
    ]


def test_the_critical_path_follows_dependencies_and_stops_at_a_gap() -> None:
    changes = apply_timeline().changes
    cluster = next(c for c in changes if c.address.endswith("aws_eks_cluster.this"))
    chain = tl.critical_path([c for c in changes if c.ended <= cluster.ended])
    assert [c.address for c in chain] == [
        "module.network.aws_vpc.this",
        "module.network.aws_subnet.private[0]",
        "module.cluster.aws_eks_cluster.this",
    ]
    late = tl.Change("late", "create", 36.0, 37.0)  # started 5 s after anything ended: it waited for nothing
    assert tl.critical_path([*changes, late]) == [late]
    assert tl.critical_path([]) == []


def test_zero_second_changes_at_one_instant_do_not_loop() -> None:
    a, b = tl.Change("a", "delete", 1.0, 1.0), tl.Change("b", "delete", 1.0, 1.0)
    assert {c.address for c in tl.critical_path([a, b])} == {"a", "b"}


def test_a_command_that_planned_nothing_has_an_empty_walk() -> None:
    events = tl.read_events([event("version", 1.0), event("planned_change", 2.0), summary(2.5, "plan")], "x")
    found = tl.timeline(events, LAUNCHED, 3.0, "x")
    assert found.parts()["resource walk"] == 0.0 and found.changes == []


def test_events_without_a_plan_are_refused_with_the_log_named() -> None:
    with pytest.raises(InputError, match=r"^destroy\.log: no plan"):
        tl.timeline(tl.read_events([event("version", 1.0)], "destroy.log"), LAUNCHED, 2.0, "destroy.log")


def test_a_broken_json_line_is_refused_with_its_line_number() -> None:
    with pytest.raises(InputError, match=r"^apply\.log:2: not a Terraform JSON event"):
        tl.read_events([event("version", 1.0), '{"type": "apply_start", '], "apply.log")
    with pytest.raises(InputError, match=r"^apply\.log:1: a JSON line without @timestamp"):
        tl.read_events(['{"hello": 1}'], "apply.log")


def test_timestamps_in_both_of_terraforms_precisions() -> None:
    assert tl.parse_timestamp("2026-12-06T04:45:01.5Z".replace(".5Z", ".500Z")) == LAUNCHED + 1.5
    assert tl.parse_timestamp("2026-12-06T04:45:01.500000Z") == LAUNCHED + 1.5
    with pytest.raises(InputError, match="not a timestamp"):
        tl.parse_timestamp("yesterday")


PROVIDER_LOG = [
    "2026-12-06T04:45:02.000Z [DEBUG] provider.terraform-provider-aws: HTTP Request Sent: rpc.method=CreateVpc",
    "2026-12-06T04:45:02.500Z [DEBUG] provider.terraform-provider-aws: HTTP Response Received: rpc.method=CreateVpc"
    " http.status_code=200 http.duration=500",
    "2026-12-06T04:45:03.000Z [DEBUG] provider.terraform-provider-aws: HTTP Response Received: http.duration=800"
    " rpc.method=CreateQueue",
    "2026-12-06T04:45:09.000Z [DEBUG] provider.terraform-provider-aws: HTTP Response Received: no duration here",
    "    a continuation line of a response body: HTTP Response Received: http.duration=999",
]


def test_request_intervals_end_when_the_answer_is_logged() -> None:
    found = tl.request_intervals(PROVIDER_LOG, LAUNCHED)
    assert [value for interval in found for value in interval] == pytest.approx([2.0, 2.5, 2.2, 3.0])


def test_busy_seconds_count_overlaps_once() -> None:
    assert tl.busy_seconds([(2.0, 2.5), (2.2, 3.0)]) == pytest.approx(1.0)
    assert tl.busy_seconds([(0.0, 10.0), (2.0, 3.0), (12.0, 13.0)]) == pytest.approx(11.0)
    assert tl.busy_seconds([]) == 0.0
