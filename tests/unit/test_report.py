"""JUnit XML, Markdown and the Karpenter timeline plot, from a constructed run (timeline built by
harness.karpenter.build_timeline from API objects, as in a real run)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harness.e2e import report
from harness.e2e.report import FAILED, NOT_APPLICABLE, NOT_RUN, PASSED, SKIPPED, RunReport, StageRecord
from harness.kube.karpenter import build_timeline
from harness.results import Result

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(kind: str, seconds: float) -> dict[str, str]:
    return {"type": kind, "status": "True", "lastTransitionTime": at(seconds)}


def claim(
    name: str, node: str, created: float, launched: float, registered: float, initialized: float
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": at(created),
            "labels": {
                "karpenter.sh/nodepool": "apps",
                "karpenter.sh/capacity-type": "spot",
                "node.kubernetes.io/instance-type": "c6i.xlarge",
            },
        },
        "status": {
            "nodeName": node,
            "conditions": [
                cond("Launched", launched),
                cond("Registered", registered),
                cond("Initialized", initialized),
            ],
        },
    }


def node(name: str, ready: float) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": "apps"}},
        "status": {"conditions": [cond("Ready", ready)]},
    }


def pod(name: str, on: str, created: float, scheduled: float, ready: float | None) -> dict[str, Any]:
    conditions = [cond("PodScheduled", scheduled)] + ([cond("Ready", ready)] if ready is not None else [])
    return {
        "metadata": {"name": name, "namespace": "game-2048", "creationTimestamp": at(created)},
        "spec": {"nodeName": on},
        "status": {"conditions": conditions},
    }


def scale_out() -> Any:
    claims = [claim("apps-a", "ip-a", 3, 8, 40, 52), claim("apps-b", "ip-b", 4, 9, 45, 58)]
    nodes = [node("ip-a", 50), node("ip-b", 61)]
    pods = [pod(f"game-2048-7d9-{i:02d}", "ip-a" if i % 2 else "ip-b", 0, 55 + i, 60 + 2 * i) for i in range(8)]
    return build_timeline(pods, claims, nodes)


def run_report(timeline: Any) -> RunReport:
    checks = (
        Result.passed("eks cluster active", "status ACTIVE"),
        Result.failed("alb serves the game", "HTTP 503 from k8s-game", status=503, url="http://k8s-game"),
        Result.not_applicable("karpenter on ops nodes", "emulator", "no Kubernetes API"),
    )
    stages = (
        StageRecord("platform", PASSED, "applied", 612.0),
        StageRecord("addons", SKIPPED, "skipped (--skip addons)"),
        StageRecord("checks", FAILED, "1 of 3 judgements failed", 33.5, checks),
        StageRecord("karpenter", NOT_RUN, "not run: stage checks failed"),
        StageRecord("teardown", NOT_APPLICABLE, "not applicable on emulator: no Kubernetes API"),
    )
    figures = report.figures_from(timeline, time_to_green=700.0, scale_in=140.0)
    return RunReport(
        "r-report-1",
        "aws",
        "eu-west-1",
        T0.isoformat(),
        stages,
        figures,
        timeline,
        notes=("evidence bundle: evidence/",),
        gitops_commit="0123456789abcdef0123456789abcdef01234567",
    )


def test_figures_from_a_constructed_timeline() -> None:
    figures = report.figures_from(scale_out(), time_to_green=700.0, scale_in=140.0)
    assert figures.time_to_first_node == 50.0  # first pod pending at 0 s, first node Ready at 50 s
    assert figures.time_to_last_node == 61.0
    assert figures.time_to_pods == 74.0  # the last of 8 pods Ready at 60 + 2*7
    assert (figures.nodes, figures.pods, figures.time_to_green, figures.scale_in) == (2, 8, 700.0, 140.0)


def test_time_to_pod_is_unknown_while_any_pod_is_not_ready() -> None:
    claims = [claim("apps-a", "ip-a", 3, 8, 40, 52)]
    timeline = build_timeline(
        [pod("p1", "ip-a", 0, 55, 60), pod("p2", "ip-a", 0, 55, None)], claims, [node("ip-a", 50)]
    )
    assert report.figures_from(timeline).time_to_pods is None
    assert report.figures_from(None, time_to_green=5.0).rows()[0][1] == "5 s"


def test_junit_counts_failures_skips_and_carries_evidence(tmp_path: Path) -> None:
    written = report.write_all(run_report(scale_out()), tmp_path)
    root = ET.parse(written["junit"]).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == ("7", "1", "4", "0")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["e2e.platform", "e2e.addons", "e2e.checks", "e2e.karpenter", "e2e.teardown"]
    assert suites["e2e.platform"].get("timestamp") == "2026-11-25T12:00:00"  # the schema's zone-less form
    checks = suites["e2e.checks"]
    assert (checks.get("tests"), checks.get("failures"), checks.get("skipped"), checks.get("time")) == (
        "3",
        "1",
        "1",
        "33.500",
    )
    failure = checks.find("testcase[@name='alb serves the game']/failure")
    assert failure is not None and failure.get("message") == "HTTP 503 from k8s-game"
    assert "status: 503" in (failure.text or "")
    skipped = suites["e2e.karpenter"].find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == "not run: stage checks failed"


def test_markdown_has_verdict_stages_figures_plot_and_recovery(tmp_path: Path) -> None:
    written = report.write_all(run_report(scale_out()), tmp_path)
    text = written["markdown"].read_text()
    assert text.startswith("# e2e run r-report-1: FAILED")
    assert "| checks | fail | 34 | 1 of 3 judgements failed |" in text
    assert "| time to node (first pending pod -> first Karpenter node Ready) | 50 s |" in text
    assert "| scale-in time (scale back -> no spare Karpenter node left) | 140 s |" in text
    assert "![Karpenter scale-out timeline](karpenter-timeline.png)" in text
    assert "make e2e-down RUN_ID=r-report-1" in text and "harness sweep --run-id r-report-1" in text
    assert "Argo CD synced gitops/ at commit `0123456789abcdef0123456789abcdef01234567`." in text


def test_plot_is_a_real_png_sized_to_its_rows(tmp_path: Path) -> None:
    path = report.plot_timeline(scale_out(), tmp_path / "plot.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1320 and height > 400  # 12 in x 110 dpi; 10 rows need more than the minimum height


def test_no_timeline_no_plot_and_a_passing_run_says_passed(tmp_path: Path) -> None:
    passing = RunReport(
        "r-ok-1",
        "emulator",
        "us-east-1",
        T0.isoformat(),
        (
            StageRecord("platform", PASSED, "applied", 1.0),
            StageRecord("karpenter", NOT_APPLICABLE, "not applicable on emulator: x"),
        ),
    )
    written = report.write_all(passing, tmp_path)
    assert "plot" not in written and not (tmp_path / report.PLOT_FILE).exists()
    assert written["markdown"].read_text().startswith("# e2e run r-ok-1: PASSED")
    assert "## Karpenter timeline" not in written["markdown"].read_text()
    assert "Argo CD synced" not in written["markdown"].read_text()  # no add-ons, no commit to name
