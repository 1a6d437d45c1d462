"""`harness check`: exit codes, formats, rule selection, suppressions, --explain, and this repository."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main
from harness.gate.api import Report, check
from harness.gate.report import as_json, junit, sarif
from harness.project import repo_root

BROKEN_CLASS = ("gitops/apps/game/ingress.yaml", "ingressClassName: alb", "ingressClassName: nginx")


def args(root: Path, reference: Path, *extra: str) -> list[str]:
    return [
        "check",
        "--infra",
        str(root / "infra"),
        "--gitops",
        str(root / "gitops"),
        "--reference",
        str(reference),
        *extra,
    ]


def test_exit_codes_say_pass_fail_and_unreadable(
    platform_tree: Callable[..., Path], reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = platform_tree()
    bad = platform_tree(BROKEN_CLASS)
    unreadable = platform_tree(("gitops/apps/game/service.yaml", "spec:", "spec: ["))

    assert main(args(good, reference)) == 0
    assert main(args(bad, reference)) == 1
    assert "EKS012" in capsys.readouterr().out
    assert main(args(unreadable, reference)) == 2
    error = capsys.readouterr().err.strip()
    assert "service.yaml:" in error and "invalid YAML" in error and "Traceback" not in error
    assert len(error.splitlines()) == 1


def test_sarif_is_a_2_1_0_log_with_rules_and_located_results(platform: Callable[..., Report]) -> None:
    log = json.loads(sarif(platform(BROKEN_CLASS)))

    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    (result,) = run["results"]
    assert result["ruleId"] == "EKS012" and rule_ids[result["ruleIndex"]] == "EKS012"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("gitops/apps/game/ingress.yaml")
    assert not location["artifactLocation"]["uri"].startswith("/")
    assert location["region"]["startLine"] == 10
    assert all(r["shortDescription"]["text"] and r["fullDescription"]["text"] for r in run["tool"]["driver"]["rules"])


def test_junit_has_one_case_per_rule_and_fails_the_broken_one(platform: Callable[..., Report]) -> None:
    root = ET.fromstring(junit(platform(BROKEN_CLASS)))

    cases = root.findall("./testsuite/testcase")
    failed = [c.get("name", "") for c in cases if c.find("failure") is not None]
    assert len(cases) == int(root.get("tests", "0")) > 20
    assert failed == [c.get("name") for c in cases if c.get("name", "").startswith("EKS012")]
    assert root.get("failures") == "1"


def test_json_output_to_a_file(tmp_path: Path, platform_tree: Callable[..., Path], reference: Path) -> None:
    bad = platform_tree(BROKEN_CLASS)
    output = tmp_path / "report.json"

    assert main(args(bad, reference, "--format", "json", "--output", str(output))) == 1

    data = json.loads(output.read_text(encoding="utf-8"))
    assert data["errors"] == 1
    assert data["findings"][0]["rule"] == "EKS012" and data["findings"][0]["line"] == 10


def test_select_and_ignore_choose_rules(platform_tree: Callable[..., Path], reference: Path) -> None:
    bad = platform_tree(BROKEN_CLASS)

    assert check([bad / "infra"], [bad / "gitops"], reference, ignore={"EKS012"}).errors == 0
    assert check([bad / "infra"], [bad / "gitops"], reference, select={"EKS012"}).errors == 1
    assert main(args(bad, reference, "--select", "EKS999")) == 2


def test_a_suppression_with_a_reason_silences_its_line_only(platform: Callable[..., Report]) -> None:
    suppressed = platform(
        BROKEN_CLASS,
        (
            "gitops/apps/game/ingress.yaml",
            "spec:\n",
            "spec:\n  # harness:ignore EKS012 nginx ingress is installed by hand\n",
        ),
    )
    without_reason = platform(
        BROKEN_CLASS, ("gitops/apps/game/ingress.yaml", "spec:\n", "spec:\n  # harness:ignore EKS012\n")
    )

    assert suppressed.errors == 0
    reasons = [(f.rule_id, s.reason) for f, s in suppressed.suppressed]
    assert reasons == [("EKS012", "nginx ingress is installed by hand")]
    assert sorted(f.rule_id for f in without_reason.findings) == ["EKS012", "EKS026"]


def test_explain_prints_a_rule_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--explain", "EKS021"]) == 0
    assert "hop limit" in capsys.readouterr().out
    assert main(["check", "--explain", "all"]) == 0
    assert "EKS027" in capsys.readouterr().out
    assert main(["check", "--explain", "EKS999"]) == 2


def test_this_repository_passes_the_gate(reference: Path) -> None:
    root = repo_root()
    if not (root / "infra").is_dir() or not (root / "gitops").is_dir():
        pytest.skip("no infra/ and gitops/ in this checkout")

    report = check([root / "infra"], [root / "gitops"], reference)

    assert [(f.rule_id, f.file, f.line, f.message) for f in report.findings if f.severity.value == "error"] == []
    # The one known warning: game-2048's image is :latest on purpose (no digest can be looked up offline).
    warnings = [(f.rule_id, Path(f.file).as_posix()) for f in report.findings if f.severity.value == "warning"]
    assert warnings == [("EKS028", "gitops/apps/game-2048/deployment.yaml")]


def test_docs_page_is_generated_from_the_rule_docs() -> None:
    from harness.gate.docs import render

    page = repo_root() / "docs" / "gate.md"

    assert page.read_text(encoding="utf-8") == render(), "regenerate: python -m harness.gate.docs > docs/gate.md"


def test_junit_stays_well_formed_with_control_characters_in_names(platform: Callable[..., Report]) -> None:
    report = platform(
        BROKEN_CLASS, ("gitops/apps/game/ingress.yaml", "name: game\n  namespace", 'name: "ga\\bme"\n  namespace')
    )

    root = ET.fromstring(junit(report))

    assert "ga\\x08me" in "".join(root.itertext())


def test_a_plan_supplies_values_static_evaluation_cannot(
    tmp_path: Path, platform_tree: Callable[..., Path], reference: Path
) -> None:
    static_cidrs = (
        "infra/platform/main.tf",
        'public_access_cidrs    = ["203.0.113.7/32"]',
        "public_access_cidrs    = var.api_cidrs",
    )
    root = platform_tree(static_cidrs)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "planned_values": {
                    "root_module": {
                        "resources": [
                            {
                                "address": "aws_eks_cluster.this",
                                "values": {
                                    "vpc_config": [
                                        {"endpoint_public_access": True, "public_access_cidrs": ["0.0.0.0/0"]}
                                    ]
                                },
                            }
                        ]
                    }
                }
            }
        ),
        encoding="utf-8",
    )

    without_plan = check([root / "infra"], [root / "gitops"], reference, select={"EKS022"})
    with_plan = check([root / "infra"], [root / "gitops"], reference, select={"EKS022"}, plan_json=plan)

    assert without_plan.findings == []
    assert [f.rule_id for f in with_plan.findings] == ["EKS022"]


def test_python_m_harness_gate_is_the_same_check(
    platform_tree: Callable[..., Path], reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.gate.__main__ import main as gate_main

    bad = platform_tree(BROKEN_CLASS)

    assert gate_main(args(bad, reference)[1:]) == 1
    assert "EKS012" in capsys.readouterr().out
    assert gate_main(["--infra", str(bad / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_warnings_are_reported_but_do_not_fail_the_gate(
    platform_tree: Callable[..., Path], reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deprecated = platform_tree(
        ("gitops/apps/game/ingress.yaml", "  annotations:\n", "  annotations:\n    kubernetes.io/ingress.class: alb\n")
    )

    assert main(args(deprecated, reference)) == 0
    output = capsys.readouterr().out
    assert "EKS017" in output and "1 warning(s)" in output


def test_reference_without_compatibility_facts_passes_with_a_note(
    platform_tree: Callable[..., Path], reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The version rule cannot judge without the compatibility table: the pass must say so, not stay silent."""
    partial = tmp_path / "reference"
    shutil.copytree(reference, partial, ignore=shutil.ignore_patterns("compatibility.yaml"))
    good = platform_tree()

    assert main(args(good, reference)) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(args(good, partial)) == 0
    assert "note: the reference data has no compatibility.yaml: EKS015" in capsys.readouterr().err
    assert check([good / "infra"], [good / "gitops"], partial, ignore={"EKS015"}).notes == []


def test_machine_readable_reports_carry_the_notes(
    platform_tree: Callable[..., Path], reference: Path, tmp_path: Path
) -> None:
    """CI reads the files, not stderr: a pass that checked less must say so there too."""
    partial = tmp_path / "reference"
    shutil.copytree(reference, partial, ignore=shutil.ignore_patterns("compatibility.yaml"))
    good = platform_tree()
    noted = check([good / "infra"], [good / "gitops"], partial)
    full = check([good / "infra"], [good / "gitops"], reference)
    [note] = noted.notes

    assert json.loads(as_json(noted))["notes"] == [note] and json.loads(as_json(full))["notes"] == []
    [invocation] = json.loads(sarif(noted))["runs"][0]["invocations"]
    assert invocation["toolExecutionNotifications"] == [{"level": "note", "message": {"text": note}}]
    assert json.loads(sarif(full))["runs"][0]["invocations"][0]["toolExecutionNotifications"] == []
    suite = ET.fromstring(junit(noted)).find("./testsuite/system-out")
    assert suite is not None and suite.text == f"note: {note}"
    assert ET.fromstring(junit(full)).find("./testsuite/system-out") is None


def test_plan_json_repeats_per_root_and_render_charts_without_helm_notes_the_fallback(
    platform_tree: Callable[..., Path],
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.gate import charts
    from harness.gate.__main__ import main as gate_main

    root = platform_tree()
    plans = []
    for name in ("a", "b"):
        plans += ["--plan-json", str(tmp_path / f"{name}.json")]
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"variables": {"cluster_name": {"value": "demo"}}, "planned_values": {"root_module": {}}}),
            encoding="utf-8",
        )
    monkeypatch.setattr(charts, "helm_binary", lambda: (None, "helm is not built"))

    assert gate_main([*args(root, reference)[1:], *plans]) == 2
    assert "a second plan for root platform" in capsys.readouterr().err
    assert gate_main([*args(root, reference)[1:], *plans[:2], "--render-charts"]) == 0
    assert "note: --render-charts: no helm (helm is not built)" in capsys.readouterr().err
