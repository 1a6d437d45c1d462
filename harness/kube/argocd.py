"""Judges over Argo CD Applications and ApplicationSets (argoproj.io/v1alpha1), as the API serves them.

An Application is done when ``status.sync.status`` is ``Synced`` and ``status.health.status`` is
``Healthy`` and no sync operation is still running. While it is Progressing, OutOfSync (automated sync
starts an operation) or Missing, it is PENDING. It FAILs when its health is ``Degraded``, when a condition
of an error type is present (``ComparisonError``, ``InvalidSpecError``, ``SyncError``, ``UnknownError``...),
or when the last sync operation ended ``Failed``/``Error``.

When it is not done, the evidence says why in Argo CD's own words: each resource that is not Synced or
not Healthy (kind, namespace, name, sync status, health status, message; messages from the last sync
result fill in), the Application's conditions, and the operation's phase and message.

Argo CD 3.x by default keeps each resource's health in its app tree rather than in the Application
(``status.resourceHealthSource: appTree``); then the rows carry sync status only, and the evidence says
so. Setting ``controller.resource.health.persist: "true"`` in ``argocd-cmd-params-cm`` brings per-resource
health (and its message) back into the Application.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from harness.kube.core import condition, name_of, parse_time
from harness.results import Result, Status

KubeObject = Mapping[str, Any]

FAILED_OPERATION_PHASES = frozenset({"Failed", "Error"})
RUNNING_OPERATION_PHASES = frozenset({"Running", "Terminating"})
# A resource that has just synced can report Degraded while its controller converges (a new EC2NodeClass is not
# Ready until Karpenter resolved its subnets and AMI): Degraded fails once it outlasts this.
DEGRADED_GRACE_S = 120.0
# Health states that a resource reaches on its own: anything else in a resource row is worth showing.
SETTLED_HEALTH = frozenset({"Healthy"})
APP_TREE_NOTE = (
    "per-resource health is kept in Argo CD's app tree, not in the Application "
    "(set controller.resource.health.persist=true to see it here)"
)


# The name of each judgement: the same on every target, so reports and JUnit rows line up.
APPLICATIONS_CHECK = "argo cd applications synced and healthy"
APPLICATION_SETS_CHECK = "argo cd applicationsets generated their applications"


def _status(app: KubeObject) -> Mapping[str, Any]:
    return app.get("status") or {}


def error_conditions(app: KubeObject) -> list[dict[str, str]]:
    """The Application's conditions whose type ends in ``Error`` (warnings are not failures)."""
    return [
        {"type": str(c.get("type")), "message": str(c.get("message", ""))}
        for c in _status(app).get("conditions") or []
        if str(c.get("type", "")).endswith("Error")
    ]


def failing_resources(app: KubeObject) -> list[dict[str, Any]]:
    """Resources of an Application that are not Synced or not Healthy, with Argo CD's message for each.

    Rows come from ``status.resources``; a failed entry of the last sync result
    (``operationState.syncResult.resources``) adds its message, and adds a row for a resource that never
    made it into the tree (e.g. rejected by the API server).
    """
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for res in _status(app).get("resources") or []:
        health = res.get("health") or {}
        sync_status, health_status = res.get("status"), health.get("status")
        if sync_status == "Synced" and (health_status is None or health_status in SETTLED_HEALTH):
            continue
        key = (str(res.get("group", "")), str(res.get("kind")), str(res.get("namespace", "")), str(res.get("name")))
        rows[key] = {
            "kind": res.get("kind"),
            "namespace": res.get("namespace", ""),
            "name": res.get("name"),
            "sync": sync_status,
            "health": health_status,
            "message": health.get("message", ""),
        }
    sync_result = (_status(app).get("operationState") or {}).get("syncResult") or {}
    for res in sync_result.get("resources") or []:
        if res.get("status") in ("Synced", "Pruned", "PruneSkipped") and res.get("hookPhase") not in (
            "Failed",
            "Error",
        ):
            continue
        key = (str(res.get("group", "")), str(res.get("kind")), str(res.get("namespace", "")), str(res.get("name")))
        # The sync result stamps the destination namespace on cluster-scoped resources too (recorded/sync_failed/:
        # EC2NodeClass apps-rejected in "argocd"), where the tree lists them without one: the same resource.
        cluster_scoped = (key[0], key[1], "", key[3])
        if key not in rows and cluster_scoped in rows:
            key = cluster_scoped
        row = rows.setdefault(
            key,
            {
                "kind": res.get("kind"),
                "namespace": res.get("namespace", ""),
                "name": res.get("name"),
                "sync": res.get("status"),
                "health": None,
                "message": "",
            },
        )
        if res.get("message") and res["message"] not in row["message"]:
            row["message"] = "; ".join(m for m in (row["message"], str(res["message"])) if m)
    return list(rows.values())


def application_summary(app: KubeObject) -> dict[str, Any]:
    """What a person needs to see about one Application: state, conditions, operation, failing resources."""
    status = _status(app)
    operation = status.get("operationState") or {}
    return {
        "application": name_of(app),
        "sync": (status.get("sync") or {}).get("status"),
        "revision": (status.get("sync") or {}).get("revision"),
        "health": (status.get("health") or {}).get("status"),
        "health_message": (status.get("health") or {}).get("message", ""),
        "conditions": [
            {"type": str(c.get("type")), "message": str(c.get("message", ""))} for c in status.get("conditions") or []
        ],
        "operation": {
            "phase": operation.get("phase"),
            "message": operation.get("message", ""),
            "retry_count": operation.get("retryCount", 0),
            "started_at": operation.get("startedAt"),
            "finished_at": operation.get("finishedAt"),
        }
        if operation
        else None,
        "failing_resources": failing_resources(app),
        "resource_health_source": status.get("resourceHealthSource", "inline"),
    }


def judge_application(app: KubeObject, now: datetime | None = None) -> Result:
    """One Application: PASS when Synced + Healthy and idle; PENDING while it converges; FAIL on error.

    Degraded fails, unless `now` (the wall clock, for a wait) says it turned Degraded less than the grace ago."""
    status = _status(app)
    label = name_of(app)
    name = f"application {label} synced and healthy"
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    health = (status.get("health") or {}).get("status") or "Unknown"
    operation = status.get("operationState") or {}
    phase = operation.get("phase")
    summary = application_summary(app)
    errors = error_conditions(app)
    if errors:
        first = errors[0]
        return Result.failed(name, f"{label}: {first['type']}: {first['message']}", **summary)
    if phase in FAILED_OPERATION_PHASES:
        return Result.failed(name, f"{label}: sync operation {phase}: {operation.get('message', '')}", **summary)
    if health == "Degraded":
        degraded_for = _degraded_seconds(status, now)
        if degraded_for is not None and degraded_for < DEGRADED_GRACE_S:
            return Result.pending(
                name,
                f"{label}: Degraded for {degraded_for:.0f} s, may still converge ({_first_problem(summary)})",
                **summary,
            )
        return Result.failed(name, f"{label}: Degraded ({_first_problem(summary)})", **summary)
    if phase in RUNNING_OPERATION_PHASES:
        return Result.pending(
            name, f"{label}: {sync}/{health}, sync operation {phase}: {operation.get('message', '')}", **summary
        )
    if sync == "Synced" and health == "Healthy":
        return Result.passed(name, f"{label}: Synced and Healthy at {summary['revision']}", **summary)
    return Result.pending(name, f"{label}: {sync}/{health} ({_first_problem(summary)})", **summary)


def _degraded_seconds(status: Mapping[str, Any], now: datetime | None) -> float | None:
    """How long the Application has been Degraded at `now` (None when either is unknown)."""
    since = parse_time((status.get("health") or {}).get("lastTransitionTime"))
    return (now - since).total_seconds() if since and now else None


def _first_problem(summary: Mapping[str, Any]) -> str:
    # The worst resource explains the Application best: Degraded before Progressing/Missing/OutOfSync.
    for row in sorted(summary["failing_resources"], key=lambda r: r["health"] != "Degraded"):
        where = "/".join(p for p in (row["namespace"], row["name"]) if p)
        return f"{row['kind']} {where}: {row['sync']}/{row['health']} {row['message']}".strip()
    if summary["health_message"]:
        return str(summary["health_message"])
    if summary["resource_health_source"] == "appTree":
        return APP_TREE_NOTE
    return "no resource reports a problem"


def judge_applications(
    apps: Sequence[KubeObject], *, expected: Iterable[str] = (), now: datetime | None = None
) -> Result:
    """All Applications Synced and Healthy, and every name in ``expected`` exists.

    FAIL if any Application fails (evidence lists each with its summary); PENDING while one is missing
    (its ApplicationSet has not generated it yet) or still converging; PASS otherwise.
    """
    name = APPLICATIONS_CHECK
    present = {str((a.get("metadata") or {}).get("name")) for a in apps}
    missing = sorted(set(expected) - present)
    verdicts = [judge_application(app, now) for app in apps]
    failed = [v for v in verdicts if v.status is Status.FAIL]
    waiting = [v for v in verdicts if v.status is Status.PENDING]
    evidence: dict[str, Any] = {
        "applications": {
            str(v.evidence["application"]): f"{v.evidence['sync']}/{v.evidence['health']}" for v in verdicts
        },
        "missing": missing,
        "problems": [dict(v.evidence) for v in (*failed, *waiting)],
    }
    if failed:
        return Result.failed(name, "; ".join(v.why for v in failed), **evidence)
    if missing:
        return Result.pending(name, f"not generated yet: {', '.join(missing)}", **evidence)
    if not apps:
        return Result.pending(name, "no Applications yet", **evidence)
    if waiting:
        return Result.pending(name, "; ".join(v.why for v in waiting), **evidence)
    return Result.passed(name, f"{len(apps)} Application(s) Synced and Healthy", **evidence)


def judge_application_set(appset: KubeObject) -> Result:
    """An ApplicationSet generated its Applications: FAIL on ``ErrorOccurred``, PASS on ``ResourcesUpToDate``."""
    label = name_of(appset)
    name = f"applicationset {label} generated its applications"
    conditions = [
        {"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"), "message": c.get("message", "")}
        for c in (appset.get("status") or {}).get("conditions") or []
    ]
    error = condition(appset, "ErrorOccurred")
    if error is not None and error.get("status") == "True":
        return Result.failed(name, f"{label}: {error.get('reason')}: {error.get('message', '')}", conditions=conditions)
    up_to_date = condition(appset, "ResourcesUpToDate")
    if up_to_date is not None and up_to_date.get("status") == "True":
        return Result.passed(name, f"{label}: {up_to_date.get('message', 'up to date')}", conditions=conditions)
    return Result.pending(name, f"{label}: not reconciled yet", conditions=conditions)


def judge_application_sets(appsets: Sequence[KubeObject], *, expected: Iterable[str] = ()) -> Result:
    """Every ApplicationSet in ``expected`` exists and each one generated its Applications.

    FAIL if any reports ``ErrorOccurred``; PENDING while one is missing or not reconciled yet; PASS otherwise.
    """
    present = {str((a.get("metadata") or {}).get("name")) for a in appsets}
    missing = sorted(set(expected) - present)
    verdicts = [judge_application_set(appset) for appset in appsets]
    evidence: dict[str, Any] = {"verdicts": {v.name: v.status.value for v in verdicts}, "missing": missing}
    if failed := [v for v in verdicts if v.status is Status.FAIL]:
        return Result.failed(APPLICATION_SETS_CHECK, "; ".join(v.why for v in failed), **evidence)
    if missing or not verdicts:
        return Result.pending(APPLICATION_SETS_CHECK, f"not created yet: {', '.join(missing) or 'any'}", **evidence)
    if waiting := [v for v in verdicts if v.status is Status.PENDING]:
        return Result.pending(APPLICATION_SETS_CHECK, "; ".join(v.why for v in waiting), **evidence)
    return Result.passed(APPLICATION_SETS_CHECK, f"{len(verdicts)} generated their applications", **evidence)
