"""Judges of an EKS minor upgrade, pure functions of what the API server answers before and after its control plane
moves: the new minor serves, and every object the old one kept is still there, the same object (its uid)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.kube.api import KubeObject
from harness.kube.terminal import last_seen
from harness.project import ADDON_PIN_PREFIX
from harness.results import Result
from harness.toolchain.components import UPGRADE_FROM_MINOR

VERSION_CHECK = "the control plane serves the upgrade's new minor"
OBJECTS_KEPT_CHECK = "the cluster's objects are kept across the control-plane upgrade"
KUBELETS_CHECK = "the node group's Nodes run the kubelet of its minor"
AVAILABILITY_CHECK = "the game never had fewer ready pods than its PodDisruptionBudget allows"
DRIFT_CHECK = "Karpenter replaced the pool's nodes through drift with the new minor's AMI"
SYNCED_THROUGHOUT_CHECK = "Argo CD reported every Application Synced throughout the upgrade"
ALB_THROUGHOUT_CHECK = "the game's Ingress kept its load balancer throughout the upgrade"
ADDON_SUPPORT_CHECK = "the EKS add-on versions are offered for the minors they run on during the upgrade"


def inventory(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """kind/namespace/name (kind/name for cluster-scoped objects) -> uid."""
    found = {}
    for item in objects:
        metadata = item.get("metadata") or {}
        where = "/".join(part for part in (metadata.get("namespace"), metadata.get("name")) if part)
        found[f"{item.get('kind')}/{where}"] = str(metadata.get("uid", ""))
    return found


def judge_version(served: str, expected: str) -> Result:
    """`served`: the API server's /version gitVersion; `expected`: a release without the v ("1.36.5", the local
    control plane's pin) or a minor ("1.36": EKS serves v1.36.<patch>-eks-<build>)."""
    version = served.lstrip("v")
    minor_only = expected.count(".") == 1
    if version == expected or (minor_only and version.startswith(f"{expected}.")):
        return Result.passed(VERSION_CHECK, f"the API server reports {served}", served=served)
    wanted = f"v{expected}.x" if minor_only else f"v{expected}"
    return Result.failed(VERSION_CHECK, f"the API server reports {served}, not {wanted}", served=served)


def judge_objects_kept(before: Mapping[str, str], after: Mapping[str, str]) -> Result:
    """Every object of `before` is in `after` with the same uid: a missing one, or one created anew in its place,
    is what an API server on other etcd data (or a lost migration) would show."""
    lost = sorted(key for key in before if key not in after)
    recreated = sorted(key for key in before if key in after and after[key] != before[key])
    if lost or recreated:
        named = [*(f"{key} is gone" for key in lost), *(f"{key} is a new object (uid changed)" for key in recreated)]
        more = f" (and {len(named) - 1} more)" if len(named) > 1 else ""
        return Result.failed(
            OBJECTS_KEPT_CHECK, f"{named[0]}{more} of {len(before)} objects", lost=lost, recreated=recreated
        )
    return Result.passed(OBJECTS_KEPT_CHECK, f"all {len(before)} objects kept, each the same object", kept=len(before))


def judge_kubelets(nodes: Iterable[Mapping[str, Any]], expected: str) -> Result:
    """Every Node of `nodes` reports kubelet `expected` ("v1.36.5"); none at all is a failure too."""
    found = {
        str((node.get("metadata") or {}).get("name")): str(
            ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
        )
        for node in nodes
    }
    if not found:
        return Result.failed(KUBELETS_CHECK, "no Node of the node group is registered", expected=expected)
    behind = {name: version for name, version in sorted(found.items()) if version != expected}
    if behind:
        name, version = next(iter(behind.items()))
        more = f" (and {len(behind) - 1} more)" if len(behind) > 1 else ""
        return Result.failed(
            KUBELETS_CHECK, f"node {name} runs kubelet {version or 'unknown'}, not {expected}{more}", behind=behind
        )
    return Result.passed(KUBELETS_CHECK, f"{len(found)} Node(s) run kubelet {expected}", nodes=sorted(found))


@dataclass(frozen=True)
class Sample:
    """One look at the platform during the upgrade, seconds after it began: the game's ready pods, whether every
    Argo CD Application was Synced, whether the game's Ingress had its load balancer. None where the API server did
    not answer (on `local` the control plane is one API server, down while it is replaced)."""

    at: float
    ready: int | None
    synced: bool | None = None
    alb: bool | None = None


def pdb_floor(pdb: Mapping[str, Any], replicas: int) -> int:
    """The fewest ready pods `pdb` lets a voluntary disruption leave of `replicas` (minAvailable, or replicas minus
    maxUnavailable; a percentage rounds up, as the disruption controller rounds it)."""
    spec = pdb.get("spec") or {}

    def count(value: Any) -> int:
        text = str(value)
        return math.ceil(replicas * int(text[:-1]) / 100) if text.endswith("%") else int(text)

    if "minAvailable" in spec:
        return count(spec["minAvailable"])
    return max(replicas - count(spec.get("maxUnavailable", 0)), 0)


def judge_availability(samples: Sequence[Sample], floor: int) -> Result:
    """Every answered sample has at least `floor` ready pods; the seconds the API server did not answer are said."""
    answered = [s for s in samples if s.ready is not None]
    unanswered = len(samples) - len(answered)
    gap = f"; the API server did not answer {unanswered} of {len(samples)} samples" if unanswered else ""
    if not answered:
        return Result.failed(AVAILABILITY_CHECK, f"no sample of the game's pods was answered{gap}", floor=floor)
    lowest = min(answered, key=lambda s: (s.ready, s.at))
    evidence = {"floor": floor, "lowest": lowest.ready, "samples": len(samples), "unanswered": unanswered}
    if lowest.ready is not None and lowest.ready < floor:
        why = f"{lowest.ready} ready pod(s) at {lowest.at:.0f} s, below the budget's floor of {floor}{gap}"
        return Result.failed(AVAILABILITY_CHECK, why, **evidence)
    why = f"never below {floor}: at least {lowest.ready} ready pod(s) in {len(answered)} samples{gap}"
    return Result.passed(AVAILABILITY_CHECK, why, **evidence)


def judge_drift(
    before: Iterable[Mapping[str, Any]], claims: Iterable[Mapping[str, Any]], nodepool: str, images: Collection[str]
) -> Result:
    """The NodeClaims of `nodepool` that ran before the upgrade (`before`) are gone, and every one of the pool now
    runs one of `images` (the EC2NodeClass's AMIs for the new minor)."""

    def pool(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        return {
            str(c["metadata"]["name"]): str((c.get("status") or {}).get("imageID", ""))
            for c in items
            if ((c.get("metadata") or {}).get("labels") or {}).get("karpenter.sh/nodepool") == nodepool
        }

    old, now = pool(before), pool(claims)
    if not old:
        return Result.failed(DRIFT_CHECK, f"no NodeClaim of {nodepool} ran before the upgrade: nothing to drift")
    left = sorted(name for name in old if name in now)
    stale = sorted(name for name, image in now.items() if name not in old and image not in images)
    evidence = {"replaced": sorted(set(old) - set(now)), "left": left, "images": sorted(images), "now": now}
    if left:
        return Result.pending(DRIFT_CHECK, f"{len(left)} of {len(old)} NodeClaim(s) not replaced yet", **evidence)
    if stale or not now:
        return Result.pending(DRIFT_CHECK, f"replacements not on {', '.join(sorted(images))} yet", **evidence)
    return Result.passed(
        DRIFT_CHECK, f"{len(old)} NodeClaim(s) replaced by {len(now)} on {', '.join(sorted(images))}", **evidence
    )


def judge_throughout(samples: Sequence[Sample], field: str, name: str) -> Result:
    """Every answered sample's `field` (synced, alb) held; else FAIL at the first second it did not."""
    answered = [s for s in samples if getattr(s, field) is not None]
    if not answered:
        return Result.failed(name, "no sample was answered", samples=len(samples))
    lost = [s.at for s in answered if not getattr(s, field)]
    if lost:
        return Result.failed(name, f"not at {lost[0]:.0f} s (and in {len(lost) - 1} later samples)", lost_at=lost)
    return Result.passed(name, f"in all {len(answered)} answered samples", samples=len(answered))


def drain_blocked(events: Iterable[KubeObject], pdb: Mapping[str, Any] | None, since: datetime) -> str | None:
    """Why the drift cannot go on within the budget, or None: Karpenter fails to drain a node (its Warning
    FailedDraining since `since`) while `pdb` allows no disruption with every one of its pods healthy, so no pod will
    ever be evicted; the NodePool's terminationGracePeriod then deletes them anyway, below the budget."""
    status = (pdb or {}).get("status") or {}
    expected, healthy = int(status.get("expectedPods", 0)), int(status.get("currentHealthy", 0))
    if not pdb or status.get("disruptionsAllowed") != 0 or not 0 < expected <= healthy:
        return None
    said: dict[str, dict[str, str]] = {}
    for event in events:
        seen = last_seen(event)
        node = event.get("involvedObject") or {}
        if event.get("type") == "Warning" and node.get("kind") == "Node" and seen is not None and seen >= since:
            said.setdefault(str(node.get("name")), {})[str(event.get("reason"))] = str(event.get("message", ""))
    blocked = next(((name, why) for name, why in sorted(said.items()) if "FailedDraining" in why), None)
    if blocked is None:
        return None
    name, why = blocked
    metadata = pdb.get("metadata") or {}
    deadline = why.get("TerminationGracePeriodExpiring", "")
    then = f"; Karpenter's terminationGracePeriod then deletes them anyway ({deadline[:1].lower()}{deadline[1:]})"
    then = then if deadline else ""
    return (
        f"drift blocked: karpenter: Node/{name} FailedDraining: {why['FailedDraining']}; PodDisruptionBudget "
        f"{metadata.get('namespace')}/{metadata.get('name')} allows no disruption with all {healthy} of its pods "
        f"healthy{then}, below the budget"
    )


def upgrade_step(pins: Mapping[str, str]) -> str:
    """The prepared upgrade as said: "1.35 -> 1.36"."""
    return f"{pins[UPGRADE_FROM_MINOR]} -> {pins['kubernetes']}"


def upgrade_addon_versions(pins: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(add-on, minor, version) of every EKS add-on pin on each side of the upgrade: the old side's pin
    (`upgrade_from_eks_addon_*`, else the same pin) on `upgrade_from_kubernetes`, the pin on `kubernetes`. A pin kept
    across the upgrade must so be offered for both minors."""
    old, new = str(pins[UPGRADE_FROM_MINOR]), str(pins["kubernetes"])
    wanted = []
    for key, version in sorted(pins.items()):
        if key.startswith(ADDON_PIN_PREFIX):
            name = key.removeprefix(ADDON_PIN_PREFIX).replace("_", "-")
            wanted += [(name, old, str(pins.get(f"upgrade_from_{key}", version))), (name, new, str(version))]
    return wanted


def judge_addon_support(
    wanted: Sequence[tuple[str, str, str]], offered: Mapping[tuple[str, str], Collection[str]]
) -> Result:
    """Each (add-on, minor, version) of `wanted` is among the versions EKS offers that add-on on that minor
    (DescribeAddonVersions), else FAIL naming the first that is not."""
    missing = [
        (name, minor, version) for name, minor, version in wanted if version not in offered.get((name, minor), ())
    ]
    if missing:
        name, minor, version = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        why = f"EKS offers no {name} {version} for Kubernetes {minor}{more}"
        return Result.failed(ADDON_SUPPORT_CHECK, why, missing=[list(m) for m in missing])
    return Result.passed(ADDON_SUPPORT_CHECK, f"all {len(wanted)} add-on versions offered for their minors")
