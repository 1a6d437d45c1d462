"""JUnit XML, Markdown and the Karpenter timeline plot, from a constructed run whose timeline is the recorded
scale-out (harness.kube.karpenter.build_timeline over recorded/scaled_out/, as in a real run)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kube_fixtures import RECORDED_BEFORE_SCALE, items

from harness.e2e import report
from harness.e2e.report import FAILED, NOT_APPLICABLE, NOT_RUN, PASSED, SKIPPED, RunReport, StageRecord
from harness.kube.karpenter import ScaleOutTimeline, build_timeline
from harness.kube.spot import scale_out_figures
from harness.results import Result

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
POOL = "apps"


def scale_out() -> ScaleOutTimeline:
    """The recorded scale-out of game-2048 from 2 to 16 replicas, its baseline set apart."""
    pods = items("recorded/scaled_out/pods_game-2048.yaml")
    claims = items("recorded/scaled_out/nodeclaims.yaml")
    nodes = items("recorded/scaled_out/nodes.yaml")
    events = [*items("recorded/scaled_out/events_game-2048.yaml"), *items("recorded/scaled_out/events_default.yaml")]
    return build_timeline(pods, claims, nodes, events, RECORDED_BEFORE_SCALE)


def figures(timeline: ScaleOutTimeline) -> report.Figures:
    claims = items("recorded/scaled_out/nodeclaims.yaml")
    measured = scale_out_figures(timeline, claims, replicas=16, request="500m", nodepool=POOL)
    return report.Figures(time_to_green=700.0, scale_out=measured, scale_in=140.0)


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
    return RunReport(
        "r-report-1",
        "aws",
        "eu-west-1",
        T0.isoformat(),
        stages,
        figures(timeline),
        timeline,
        notes=("evidence bundle: evidence/",),
        gitops_commit="0123456789abcdef0123456789abcdef01234567",
    )


def test_the_figures_time_the_scale_out_from_the_scale_and_set_the_baseline_apart() -> None:
    rows = dict(figures(scale_out()).rows())
    # The recorded run: scaled at 03:04:58, the new node Ready and all 14 new pods Ready at 03:05:01. The baseline's
    # node, Ready at 03:04:54 before the scale, was what "time to node" used to show.
    assert rows["time to first new node (scale -> first node created after it Ready)"] == "3 s"
    assert rows["time to last new node (scale -> last node created after it Ready)"] == "3 s"
    assert rows["time to new pods (scale -> every pod it created Ready)"] == "3 s"
    assert rows["pool nodes after the scale-out (baseline + new) / bin-packing minimum"] == "2 (1 + 1) / 2"
    assert rows["baseline before the scale (not timed)"] == "2 pod(s) on 1 node(s)"
    assert rows["consolidation (scale back -> Karpenter disrupts the last spare NodeClaim)"] == "140 s"
    assert report.Figures(time_to_green=5.0).rows() == [
        ("time to green (run start -> all checks pass)", "5 s"),
        ("consolidation (scale back -> Karpenter disrupts the last spare NodeClaim)", "n/a"),
    ]
    upgraded = report.Figures(upgrade=(("upgrade: Karpenter drift", "337.3 s"),)).rows()
    assert upgraded[-1] == ("upgrade: Karpenter drift", "337.3 s")


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
    assert "| time to first new node (scale -> first node created after it Ready) | 3 s |" in text
    assert "| consolidation (scale back -> Karpenter disrupts the last spare NodeClaim) | 140 s |" in text
    assert "![Karpenter scale-out timeline](karpenter-timeline.png)" in text
    assert "make e2e-down RUN_ID=r-report-1" in text and "harness sweep --run-id r-report-1" in text
    assert "Argo CD synced gitops/ at commit `0123456789abcdef0123456789abcdef01234567`." in text


def test_plot_is_a_real_png_sized_to_its_rows(tmp_path: Path) -> None:
    path = report.plot_timeline(scale_out(), tmp_path / "plot.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1320 and height > 600  # 12 in x 110 dpi; 15 rows need more than the minimum height


def test_the_plot_shows_the_scale_out_alone_with_whole_labels() -> None:
    timeline = scale_out()
    fig = report.timeline_figure(timeline)
    (ax,) = fig.axes
    shown = [label.get_text() for label in ax.get_yticklabels()][::-1]  # top row first
    new_pods = [pod.pod for pod in timeline.pods if pod.new]
    assert shown[0] == "apps-vsbxl (c6in.2xlarge)"  # the NodeClaim created after the scale, not the baseline's
    legend = ax.get_legend()
    assert legend is not None
    declared = legend.get_texts()[-1].get_text()
    assert declared == "pod …x = game-2048/game-2048-665967d87f-x"
    prefix = declared.split(" = ", 1)[1].removesuffix("x")
    # Each pod row is the declared short form of exactly one new pod's full name: nothing cut, nothing else.
    assert [prefix + label.removeprefix("pod …") for label in shown[1:]] == new_pods
    assert "game-2048/game-2048-665967d87f-26xqr" not in new_pods  # a baseline pod: not a row
    assert "baseline before the scale, not shown: 2 pods, 1 node(s)" in ax.get_title()
    # Rendered, every label lies inside the figure (tight_layout made room): none is clipped at the edge.
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    assert all(label.get_window_extent(renderer).x0 >= 0 for label in ax.get_yticklabels())
    short, none = report.pod_labels([timeline.pods[0]])
    assert (short, none) == ([f"pod {timeline.pods[0].pod}"], "")  # one pod: its whole name, nothing to declare


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
