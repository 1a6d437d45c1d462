"""harness bench gate: its synthetic repositories and its arithmetic (timings themselves belong to the bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench import gate as bench
from harness.errors import InputError
from harness.gate.api import check
from harness.gate.loaders import load_manifests, load_terraform
from harness.project import reference_dir, repo_root, versions


@pytest.mark.parametrize("size", [10, 77, 100, 251])
def test_synthetic_repo_has_exactly_the_requested_manifests(tmp_path: Path, size: int) -> None:
    files = bench.generate_repo(tmp_path, size, versions(repo_root()))

    manifests = load_manifests([tmp_path / "gitops"])
    assert len(manifests) == size
    assert files == len(list((tmp_path / "gitops").rglob("*.yaml"))) + 1  # + the Terraform root
    kinds = {m.kind for m in manifests}
    assert {"IngressClass", "NodePool", "EC2NodeClass", "Deployment", "Service", "Ingress"} <= kinds or size < 77


def test_synthetic_repo_is_coherent_so_the_gate_has_nothing_to_report(tmp_path: Path) -> None:
    """A bench of a broken repo would time the reporters, not the checks: the generated layers must agree."""
    try:
        reference = reference_dir()
    except InputError as exc:
        pytest.skip(f"no pinned reference data: {exc}")
    bench.generate_repo(tmp_path, 160, versions(repo_root()))

    report = check([tmp_path / "infra"], [tmp_path / "gitops"], reference)

    assert [(f.rule_id, f.file, f.line, f.message) for f in report.findings] == []
    assert load_terraform([tmp_path / "infra"]).of_type("aws_iam_role")


def test_linearity_reports_marginal_cost_between_sizes() -> None:
    results = bench.Results(
        synthetic=[
            bench.Measurement("check() in process", "a", 1.0, 100),
            bench.Measurement("harness check (CLI)", "a", 9.0, 100),
            bench.Measurement("check() in process", "b", 2.0, 1_100),
            bench.Measurement("check() in process", "c", 12.0, 11_100),
        ]
    )

    assert bench.linearity(results) == [
        (100, 10_000.0, None),
        (1_100, pytest.approx(1818.18, rel=1e-3), 1000.0),
        (11_100, pytest.approx(1081.08, rel=1e-3), 1000.0),
    ]


def test_targets_judged_from_the_measurements() -> None:
    results = bench.Results(
        repo=[
            bench.Measurement("harness check (CLI)", "this repo", 0.4),
            bench.Measurement("checkov (terraform + kubernetes)", "this repo", 1.6),
        ],
        synthetic=[bench.Measurement("harness check (CLI)", "10,000 manifests, 9,900 files", 12.0, 10_000)],
    )

    bench.judge(results, [100, 10_000])

    assert {name: target["met"] for name, target in results.targets.items()} == {
        "this repo wall": True,
        "speed-up over checkov": False,  # 4x
        "10,000 manifests wall": False,
    }


def test_checkov_missing_is_a_note_not_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkov"
    monkeypatch.setenv("HARNESS_BENCH_CHECKOV", str(missing))

    measured = bench.measure_checkov(tmp_path, tmp_path, 1, 0)

    assert measured.seconds is None
    assert measured.note == f"cannot run {missing}: No such file or directory"


@pytest.mark.parametrize("raw", ["ten", "100,x", "5", ","])
def test_bad_sizes_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("HARNESS_BENCH_GATE_SIZES", raw)

    with pytest.raises(InputError, match="HARNESS_BENCH_GATE_SIZES"):
        bench.sizes_from_env()


def test_hotspots_list_the_gate_first_without_machine_paths(tmp_path: Path) -> None:
    try:
        reference = reference_dir()
    except InputError as exc:
        pytest.skip(f"no pinned reference data: {exc}")
    bench.generate_repo(tmp_path, 20, versions(repo_root()))

    rows = bench.hotspots(lambda: check([tmp_path / "infra"], [tmp_path / "gitops"], reference))

    assert rows[0]["function"].startswith("harness/gate/api.py:")
    assert all(not row["function"].startswith("/") for row in rows), [r["function"] for r in rows]
