"""Judges of an EKS minor upgrade, pure functions of what the API server answers before and after its control plane
moves: the new minor serves, and every object the old one kept is still there, the same object (its uid)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.results import Result

VERSION_CHECK = "the control plane serves the upgrade's new minor"
OBJECTS_KEPT_CHECK = "the cluster's objects are kept across the control-plane upgrade"


def inventory(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """kind/namespace/name (kind/name for cluster-scoped objects) -> uid."""
    found = {}
    for item in objects:
        metadata = item.get("metadata") or {}
        where = "/".join(part for part in (metadata.get("namespace"), metadata.get("name")) if part)
        found[f"{item.get('kind')}/{where}"] = str(metadata.get("uid", ""))
    return found


def judge_version(served: str, expected: str) -> Result:
    """`served`: the API server's /version gitVersion; `expected`: the pinned release, without the v."""
    if served.lstrip("v") == expected:
        return Result.passed(VERSION_CHECK, f"the API server reports {served}", served=served)
    return Result.failed(VERSION_CHECK, f"the API server reports {served}, not v{expected}", served=served)


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
