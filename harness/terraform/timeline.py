"""Where one Terraform command spent its wall time, read from its machine-readable output (`-json`) and the
provider's HTTP log (`TF_LOG_PROVIDER=DEBUG`): pure functions over their lines, no I/O.

Parts of a command: start-up (CLI, provider schemas, validation) until its first plan event; the plan (refresh,
data sources, diff) until the plan's change summary; the resource walk until the final change summary; the
wrap-up (state, provider shutdown, outputs) until the process exits. Inside the walk, the critical path is the
chain of changes each of which could start only when the previous one ended.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.errors import InputError

PARTS = ("start-up", "plan", "resource walk", "wrap-up")
# A change that starts within this many seconds of another's end is taken to have waited for it (Terraform
# starts a dependent as soon as its last dependency completes; the events are written milliseconds apart).
CHAIN_SLACK_S = 1.0
# The events that mark planning under way (data sources are read as apply_start with action "read").
PLAN_EVENTS = frozenset({"refresh_start", "apply_start", "planned_change", "change_summary"})
_LOG_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)\s")
_HTTP_DURATION = re.compile(r"\bhttp\.duration=(\d+)\b")


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp as Terraform writes them (UTC, `Z`, 3 or 6 decimals)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InputError(f"not a timestamp: {text!r}") from None


def read_events(lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    """The JSON events of `terraform <command> -json` output; lines that are not JSON objects (stderr mixed into
    the same log) are skipped, a broken JSON object is an error naming its line."""
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{source}:{number}: not a Terraform JSON event ({exc})") from None
        if "@timestamp" not in event or "type" not in event:
            raise InputError(f"{source}:{number}: a JSON line without @timestamp and type is no Terraform event")
        events.append(event)
    return events


@dataclass(frozen=True)
class Change:
    """One resource change of the walk, in seconds since the command started."""

    address: str
    action: str
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class Timeline:
    """One command: its wall time, when each part ended (seconds since launch) and the walk's changes."""

    total: float
    plan_started: float
    walk_started: float
    walk_ended: float
    changes: list[Change] = field(default_factory=list)

    def parts(self) -> dict[str, float]:
        """Seconds of each of PARTS; they add up to `total`."""
        bounds = (0.0, self.plan_started, self.walk_started, self.walk_ended, self.total)
        return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(PARTS)}

    def change(self, address: str) -> Change | None:
        return next((c for c in self.changes if c.address == address), None)


def _summary_at(events: Sequence[dict[str, Any]], operations: tuple[str, ...]) -> float | None:
    return next(
        (
            parse_timestamp(e["@timestamp"])
            for e in events
            if e["type"] == "change_summary" and e.get("changes", {}).get("operation") in operations
        ),
        None,
    )


def timeline(events: Sequence[dict[str, Any]], launched: float, total: float, source: str) -> Timeline:
    """The parts and changes of one command whose process started at `launched` (epoch seconds) and ran `total`
    seconds. A command that planned nothing to change (no walk) has a walk of zero seconds."""
    planning = [e for e in events if e["type"] in PLAN_EVENTS]
    plan_summary = _summary_at(events, ("plan",))
    if not planning or plan_summary is None:
        raise InputError(f"{source}: no plan in the Terraform events (did the command fail before planning?)")
    done = _summary_at(events, ("apply", "destroy")) or plan_summary
    started: dict[str, tuple[str, float]] = {}
    changes = []
    for event in events:
        at = parse_timestamp(event["@timestamp"])
        if event["type"] not in ("apply_start", "apply_complete") or at < plan_summary:
            continue  # data sources read while planning are part of the plan
        address = event["hook"]["resource"]["addr"]
        if event["type"] == "apply_start":
            started[address] = (event["hook"]["action"], at)
        elif address in started:
            action, began = started.pop(address)
            changes.append(Change(address, action, began - launched, at - launched))
    return Timeline(
        total=total,
        plan_started=parse_timestamp(planning[0]["@timestamp"]) - launched,
        walk_started=plan_summary - launched,
        walk_ended=done - launched,
        changes=sorted(changes, key=lambda c: (c.started, c.address)),
    )


def critical_path(changes: Sequence[Change], slack: float = CHAIN_SLACK_S) -> list[Change]:
    """The chain that ends with the last change to finish: each link is the latest change that ended at most
    `slack` seconds before the next one started, i.e. the one it waited for. First link first."""
    if not changes:
        return []
    chain = [max(changes, key=lambda c: c.ended)]
    while True:
        head = chain[-1]
        before = [c for c in changes if c.ended <= head.started and all(c is not link for link in chain)]
        blocker = max(before, key=lambda c: c.ended, default=None)
        if blocker is None or head.started - blocker.ended > slack:
            return chain[::-1]  # nothing ended just before: the head started as soon as the walk did
        chain.append(blocker)


def request_intervals(lines: Iterable[str], launched: float) -> list[tuple[float, float]]:
    """(sent, answered) of every HTTP request in the provider's DEBUG log, in seconds since `launched`: the log
    line is written when the answer arrives and carries the request's duration in milliseconds."""
    intervals = []
    for line in lines:
        if "HTTP Response Received" not in line:
            continue
        stamp, duration = _LOG_TIMESTAMP.match(line), _HTTP_DURATION.search(line)
        if stamp and duration:
            answered = parse_timestamp(stamp.group(1)) - launched
            intervals.append((answered - int(duration.group(1)) / 1000, answered))
    return intervals


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Wall time covered by at least one interval (overlapping requests count once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
