"""What the API server refused the controllers: on `local` each controller calls it as its pod's ServiceAccount,
so the charts' RBAC decides, and the API server's audit log (harness.targets.controlplane AUDIT_POLICY) records
every call with its verdict. A 403 there is a call the controller would be refused on EKS too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from harness.results import Result

REFUSALS_CHECK = "the controllers' API calls are allowed by their RBAC"
FORBIDDEN = 403


@dataclass(frozen=True)
class Refusal:
    caller: str  # the run's process that made the call
    user: str  # system:serviceaccount:<namespace>:<name>
    verb: str
    resource: str  # resource[.group][/subresource], or the URL of a non-resource request
    namespace: str

    def line(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "at cluster scope"
        return f"{self.caller} ({self.user}) was refused: {self.verb} {self.resource} {where}"


def refusals(
    events: Iterable[Mapping[str, object]],
    callers: Mapping[str, str],
    starting: Sequence[tuple[datetime, datetime]] = (),
) -> list[Refusal]:
    """The calls answered 403 for one of ``callers`` (ServiceAccount user -> process), each once, first first.

    ``starting``: when a replaced API server was coming up (from its predecessor's stop to its own readiness). It
    refuses every call until it has read the cluster's RBAC, and a client that reconnects at once meets that; on EKS
    a load balancer sends no request to an API server before it is ready, so those refusals are not the chart's."""
    found: dict[Refusal, None] = {}
    for event in events:
        status = event.get("responseStatus")
        user = event.get("user")
        if not isinstance(status, Mapping) or status.get("code") != FORBIDDEN or not isinstance(user, Mapping):
            continue
        received = datetime.fromisoformat(str(event.get("requestReceivedTimestamp") or "1970-01-01T00:00:00+00:00"))
        if any(began <= received <= ready for began, ready in starting):
            continue
        name = str(user.get("username", ""))
        if name not in callers:
            continue
        ref = event.get("objectRef")
        if isinstance(ref, Mapping):
            group, sub = ref.get("apiGroup"), ref.get("subresource")
            resource = f"{ref.get('resource', '')}{f'.{group}' if group else ''}{f'/{sub}' if sub else ''}"
            namespace = str(ref.get("namespace") or "")
        else:
            resource, namespace = str(event.get("requestURI", "")), ""
        found[Refusal(callers[name], name, str(event.get("verb", "")), resource, namespace)] = None
    return list(found)


def judge_refusals(found: Sequence[Refusal], callers: Mapping[str, str]) -> Result:
    """PASS when the API server refused none of the controllers' calls; else FAIL naming the first."""
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return Result.failed(REFUSALS_CHECK, found[0].line() + more, refusals=[r.line() for r in found])
    return Result.passed(
        REFUSALS_CHECK, f"no call of {len(callers)} controller process(es) refused", callers=sorted(callers.values())
    )
