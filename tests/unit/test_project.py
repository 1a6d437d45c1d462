"""Project files: repo root, versions.yaml, the capability table, reference data location."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.project import (
    KUBERNETES_CAPABILITY,
    REFERENCE_ENV,
    TARGETS,
    capabilities,
    local_target,
    read_yaml,
    reference_dir,
    repo_root,
    versions,
)


def test_versions_come_from_versions_yaml() -> None:
    pinned = versions()
    assert pinned["aws_provider"].count(".") == 2
    assert "terraform" in pinned


def test_the_emulator_lacks_what_targets_yaml_says_and_aws_lacks_nothing() -> None:
    emulator = capabilities("emulator")
    assert not emulator.supports("eks_access_entries")
    assert "CreateAccessEntry" in emulator.reason("eks_access_entries")
    aws = capabilities("aws")
    assert aws.supports("eks_access_entries") and aws.reason("eks_access_entries") == ""


def test_targets_yaml_says_who_serves_each_side_and_the_code_knows_every_target() -> None:
    sides = {name: (capabilities(name).emulated, capabilities(name).local_kubernetes) for name in TARGETS}
    assert sides == {"aws": (False, False), "emulator": (True, False), "local": (True, True)}
    # The emulator's AWS gaps are declared once and hold for every target it serves.
    assert (
        capabilities("local").unsupported.items()
        >= {k: v for k, v in capabilities("emulator").unsupported.items() if k != KUBERNETES_CAPABILITY}.items()
    )
    assert capabilities("local").supports(KUBERNETES_CAPABILITY)


@pytest.mark.parametrize(
    ("entry", "message"),
    [("aws: cloud", "aws must be one of account, emulator"), ("kubernetes: kind", "kubernetes must be one of eks")],
)
def test_a_target_with_an_unknown_side_is_refused(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "targets.yaml").write_text(f"targets:\n  moon:\n    {entry}\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        capabilities("moon", tmp_path)


def test_an_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown target 'moon' \(known: aws, emulator, local\)"):
        capabilities("moon")


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(InputError, match=rf"{bad}:\d+: invalid YAML"):
        read_yaml(bad)
    with pytest.raises(InputError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_a_wrong_repo_override_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo_root.cache_clear()
    monkeypatch.setenv("HARNESS_REPO", str(tmp_path))
    try:
        with pytest.raises(InputError, match="is not a checkout of this project"):
            repo_root()
    finally:
        repo_root.cache_clear()


def test_reference_data_location_is_explicit_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(REFERENCE_ENV, raising=False)
    with pytest.raises(InputError, match="--reference"):
        reference_dir(tmp_path)
    (tmp_path / "crds").mkdir()
    assert reference_dir(tmp_path) == tmp_path.resolve()


def test_the_local_section_names_each_emulator_gap_with_its_reason_and_the_images() -> None:
    local = local_target()
    assert "CreateFleet" in local.emulator_gaps["fleet_launch_template_security_groups"]
    assert {image["name"] for image in local.emulator_images}
    assert capabilities("emulator").supports("eks_addons") is False  # the targets: table is read as before
    assert "release by release" in local.addons_without_terraform


def write_targets(root: Path, local: str) -> Path:
    (root / "infra").mkdir(parents=True, exist_ok=True)
    (root / "infra" / "targets.yaml").write_text(f"targets: {{}}\nlocal_target:\n{local}", encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("local", "message"),
    [
        ("  emulator_gaps: {spot_prices: ''}\n", r"local_target.emulator_gaps.spot_prices needs its reason"),
        ("  emulator_images: [{name: al2023}]\n", r"local_target.emulator_images\[0\] needs ami_id and name"),
        ("  emulator_images: {a: b}\n", r"local_target.emulator_images: expected a list"),
        ("  upstream_files: [{resource: r, source: s}]\n", r"upstream_files\[0\] needs resource, source, url_prefix"),
        ("  emulator_gaps: {}\n", r"local_target.addons_without_terraform needs its reason"),
    ],
    ids=[
        "gap-without-reason",
        "image-without-id",
        "images-not-a-list",
        "upstream-file-without-component",
        "no-fallback-for-the-addons",
    ],
)
def test_a_malformed_local_section_is_one_line_naming_the_entry(tmp_path: Path, local: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        local_target(write_targets(tmp_path, local))
