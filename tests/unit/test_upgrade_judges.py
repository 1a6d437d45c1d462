"""The control-plane upgrade's judges, on API objects as the API server lists them, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import EnvironmentProblem
from harness.kube.upgrade import inventory, judge_objects_kept, judge_version
from harness.results import Status
from harness.targets.controlplane import attach, upgrade_control_plane


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


def test_a_control_plane_attached_from_records_is_refused_before_anything_is_stopped(tmp_path: Path) -> None:
    """Another shell's control plane has no etcd URL and no processes of this one: the upgrade says so in one line
    instead of starting a second API server on a port the first still holds."""
    plane = attach(tmp_path, "https://127.0.0.1:6443")
    with pytest.raises(EnvironmentProblem, match=r"needs the control plane this process started"):
        upgrade_control_plane(plane)
