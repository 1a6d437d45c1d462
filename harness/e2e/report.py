"""What a run leaves behind for people and CI: JUnit XML, a Markdown report, and a plot of the Karpenter
scale-out timeline. Everything here is pure over the run's records, except the file writes.

Figures (seconds):
- time to green: from the start of the run until every check of stage "checks" passed;
- time to first / last new node: from the scale (the replicas raised) until the first / last NodeClaim created
  after it has its Node Ready; the baseline's nodes and pods, there before the scale, are counted apart, not timed;
- time to new pods: from the scale until every pod it created is Ready;
- consolidation: from scaling back until Karpenter decided to remove the last spare NodeClaim (its
  DisruptionTerminating event, Empty or Underutilized), the pool then at the bin-packing minimum.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from harness.kube.karpenter import PodTimeline, ScaleOutTimeline
from harness.kube.spot import ScaleOutFigures
from harness.kube.upgrade import Sample
from harness.results import Result, Status

JUNIT_FILE = "junit.xml"
MARKDOWN_FILE = "report.md"
PLOT_FILE = "karpenter-timeline.png"
MAX_EVIDENCE_CHARS = 4000


# How a stage ended: a judged verdict, or why it did not run.
PASSED, FAILED, NOT_APPLICABLE, SKIPPED, NOT_RUN = "pass", "fail", "n/a", "skipped", "not run"
OK_STAGE_STATES = frozenset({PASSED, NOT_APPLICABLE, SKIPPED})


@dataclass(frozen=True)
class StageRecord:
    name: str
    status: str  # one of PASSED, FAILED, NOT_APPLICABLE, SKIPPED, NOT_RUN
    why: str
    seconds: float | None = None
    results: tuple[Result, ...] = ()


@dataclass(frozen=True)
class Figures:
    time_to_green: float | None = None
    scale_out: ScaleOutFigures | None = None
    scale_in: float | None = None
    upgrade: tuple[tuple[str, str], ...] = ()  # harness upgrade's figures, (name, value)

    def rows(self) -> list[tuple[str, str]]:
        out = self.scale_out
        rows = [("time to green (run start -> all checks pass)", _seconds(self.time_to_green))]
        if out is not None:
            rows += [
                ("time to first new node (scale -> first node created after it Ready)", _seconds(out.first_node_ready)),
                ("time to last new node (scale -> last node created after it Ready)", _seconds(out.last_node_ready)),
                ("time to new pods (scale -> every pod it created Ready)", _seconds(out.all_pods_ready)),
                (
                    "new pod Pending -> Running, p50 / p90",
                    f"{_seconds(out.pending_to_running_p50)} / {_seconds(out.pending_to_running_p90)}",
                ),
                # The minimum counts every replica, so it is compared with the baseline's nodes plus the new ones.
                (
                    "pool nodes after the scale-out (baseline + new) / bin-packing minimum",
                    f"{out.baseline_nodes + out.nodes} ({out.baseline_nodes} + {out.nodes}) / "
                    f"{out.bin_packing_minimum if out.bin_packing_minimum is not None else 'n/a'}",
                ),
                ("pods the scale created", str(out.pods)),
                (
                    "baseline before the scale (not timed)",
                    f"{out.baseline_pods} pod(s) on {out.baseline_nodes} node(s)",
                ),
            ]
        rows.append(
            ("consolidation (scale back -> Karpenter disrupts the last spare NodeClaim)", _seconds(self.scale_in))
        )
        return [*rows, *self.upgrade]


@dataclass(frozen=True)
class RunReport:
    run_id: str
    target: str
    region: str
    started_at: str
    stages: tuple[StageRecord, ...]
    figures: Figures = field(default_factory=Figures)
    timeline: ScaleOutTimeline | None = None
    notes: tuple[str, ...] = ()
    gitops_commit: str = ""  # the commit Argo CD synced gitops/ from ("" when the add-ons did not go in)

    @property
    def ok(self) -> bool:
        return all(stage.status in OK_STAGE_STATES for stage in self.stages)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} s"


# ---------------------------------------------------------------- JUnit


def junit_tree(report: RunReport) -> ET.ElementTree[ET.Element]:
    """One <testsuite> per stage, one <testcase> per judgement (a stage without judgements is one case).
    FAIL (and PENDING: a wait that never settled) -> <failure>; NOT_APPLICABLE, skipped and not-run
    stages -> <skipped> with the reason."""
    root = ET.Element("testsuites", name=f"e2e {report.run_id}")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for stage in report.stages:
        cases = stage.results or (Result(stage.name, _as_status(stage.status), stage.why),)
        suite = ET.SubElement(
            root, "testsuite", name=f"e2e.{stage.name}", timestamp=_junit_timestamp(report.started_at)
        )
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for result in cases:
            case = ET.SubElement(suite, "testcase", classname=f"e2e.{stage.name}", name=result.name)
            if stage.seconds is not None and len(cases) == 1:  # else the time is the suite's, not one case's
                case.set("time", f"{stage.seconds:.3f}")
            counts["tests"] += 1
            if result.status in (Status.FAIL, Status.PENDING):
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", message=result.why, type=result.status.value)
                failure.text = _evidence_text(result)
            elif result.status is Status.NOT_APPLICABLE:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=result.why)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
        if stage.seconds is not None:
            suite.set("time", f"{stage.seconds:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return ET.ElementTree(root)


def _junit_timestamp(iso: str) -> str:
    """The JUnit schema's timestamp has no zone; run times are UTC."""
    return iso[:19]


def _as_status(stage_status: str) -> Status:
    """A stage without judgements as one case: skipped and not-run stages are JUnit <skipped>."""
    return {PASSED: Status.PASS, FAILED: Status.FAIL}.get(stage_status, Status.NOT_APPLICABLE)


def _evidence_text(result: Result) -> str:
    lines = [f"{key}: {value}" for key, value in result.evidence.items()]
    text = "\n".join(lines)
    return text[:MAX_EVIDENCE_CHARS] + ("\n..." if len(text) > MAX_EVIDENCE_CHARS else "")


# ---------------------------------------------------------------- plot


def pod_labels(pods: Sequence[PodTimeline]) -> tuple[list[str], str]:
    """Short row labels for pods and the legend line that declares them: the prefix all their names share (the
    namespace and ReplicaSet, "game-2048/game-2048-665967d87f-") is said once, each row keeps the rest in full."""
    names = [pod.pod for pod in pods]
    prefix = names[0][: names[0].rfind("-") + 1] if len(names) > 1 else ""  # whole name parts ("-"-separated)
    for name in names[1:]:  # the longest start they all share
        while not name.startswith(prefix):
            prefix = prefix[: prefix.rstrip("-").rfind("-") + 1]
    return [f"pod …{name[len(prefix) :]}" if prefix else f"pod {name}" for name in names], (
        f"pod …x = {prefix}x" if prefix else ""
    )


def timeline_figure(timeline: ScaleOutTimeline) -> Figure:
    """Gantt-style chart of the scale-out alone: one row per NodeClaim created after the scale (claim -> launched ->
    registered -> node Ready) and per pod the scale created (pending -> scheduled -> Ready), seconds from the scale
    on the x axis. The baseline (there before the scale) is only counted in the title."""
    node_steps = ("claim_created", "launched", "registered", "node_ready")
    node_colours = ("#c7c7c7", "#9ecae1", "#2171b5")
    pod_steps = ("created", "scheduled", "ready")
    pod_colours = ("#fdae6b", "#31a354")
    new_nodes = [node for node in timeline.nodes if node.new]
    new_pods = [pod for pod in timeline.pods if pod.new]
    labels, declared = pod_labels(new_pods)
    rows: list[tuple[str, list[tuple[float, float, str]]]] = [
        (f"{node.nodeclaim} ({node.instance_type or '?'})", _segments(timeline, node, node_steps, node_colours))
        for node in new_nodes
    ]
    rows += [
        (label, _segments(timeline, pod, pod_steps, pod_colours)) for label, pod in zip(labels, new_pods, strict=True)
    ]
    height = max(2.5, 0.32 * len(rows) + 1.5)
    # The Agg canvas directly (no pyplot): files only, no display, no global figure state.
    fig = Figure(figsize=(12, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for y, (_, segments) in enumerate(reversed(rows)):
        for start, width, colour in segments:
            ax.broken_barh([(start, width)], (y - 0.35, 0.7), facecolors=colour)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)], fontsize=7)
    ax.set_xlabel("seconds since the scale")
    baseline_pods = len(timeline.pods) - len(new_pods)
    baseline_nodes = len(timeline.nodes) - len(new_nodes)
    ax.set_title(
        f"Karpenter scale-out: {len(new_pods)} new pods, {len(new_nodes)} new spot node(s)"
        + (
            f" (baseline before the scale, not shown: {baseline_pods} pods, {baseline_nodes} node(s))"
            if baseline_pods or baseline_nodes
            else ""
        ),
        fontsize=9,
    )
    legend = [
        ("NodeClaim created -> launched", node_colours[0]),
        ("launched -> registered", node_colours[1]),
        ("registered -> node Ready", node_colours[2]),
        ("pod pending", pod_colours[0]),
        ("pod scheduled -> Ready", pod_colours[1]),
    ]
    handles = [Patch(color=c, label=label) for label, c in legend]
    if declared:
        handles.append(Patch(color="none", label=declared))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def upgrade_figure(samples: Sequence[Sample], floor: int, phases: Mapping[str, float]) -> Figure:
    """`harness upgrade`: the game's ready pods over the upgrade, its PodDisruptionBudget's floor, and a line where
    each phase ended."""
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    answered = [(s.at, s.ready) for s in samples if s.ready is not None]
    ax.step([at for at, _ in answered], [ready for _, ready in answered], where="post", label="ready game pods")
    ax.axhline(floor, color="red", linestyle="--", label=f"PodDisruptionBudget floor ({floor})")
    ended = 0.0
    for name, seconds in phases.items():
        ended += seconds
        ax.axvline(ended, color="grey", linestyle=":")
        ax.annotate(name, (ended, 0.1), rotation=90, fontsize=7, va="bottom", ha="right")
    ax.set_ylim(0, max([floor, *(ready for _, ready in answered)]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("seconds since the upgrade began")
    ax.set_ylabel("pods")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_timeline(timeline: ScaleOutTimeline, path: Path) -> Path:
    """``timeline_figure`` as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    timeline_figure(timeline).savefig(path, dpi=110)
    return path


def _segments(
    timeline: ScaleOutTimeline, row: Any, steps: Sequence[str], colours: Sequence[str]
) -> list[tuple[float, float, str]]:
    """(start, width, colour) between each pair of consecutive known steps of one row."""
    points = [timeline.seconds(getattr(row, step)) for step in steps]
    segments = []
    for index, colour in enumerate(colours):
        start, end = points[index], points[index + 1]
        if start is not None and end is not None and end >= start:
            segments.append((start, max(end - start, 0.5), colour))
    return segments


# ---------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: RunReport, plot: str | None) -> str:
    verdict = "PASSED" if report.ok else "FAILED"
    out = [
        f"# e2e run {report.run_id}: {verdict}",
        "",
        f"Target **{report.target}**, region {report.region}, started {report.started_at}.",
        *([f"Argo CD synced gitops/ at commit `{report.gitops_commit}`."] if report.gitops_commit else []),
        "",
        "## Stages",
        "",
        "| stage | result | seconds | why |",
        "|---|---|---|---|",
    ]
    for stage in report.stages:
        seconds = "" if stage.seconds is None else f"{stage.seconds:.0f}"
        out.append(f"| {stage.name} | {stage.status} | {seconds} | {_cell(stage.why)} |")
    judged = [(stage.name, r) for stage in report.stages for r in stage.results]
    if judged:
        out += ["", "## Judgements", "", "| stage | judgement | result | why |", "|---|---|---|---|"]
        out += [f"| {s} | {_cell(r.name)} | {r.status.value} | {_cell(r.why)} |" for s, r in judged]
    out += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    out += [f"| {name} | {value} |" for name, value in report.figures.rows()]
    if plot:
        out += ["", "## Karpenter timeline", "", f"![Karpenter scale-out timeline]({plot})"]
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    out += [
        "",
        "## If anything was left behind",
        "",
        f"`make e2e-down RUN_ID={report.run_id}` repeats the whole teardown; "
        f"`harness sweep --run-id {report.run_id} --target {report.target} --dry-run` lists anything still tagged "
        "with the run id. Both are safe to run again at any time.",
        "",
    ]
    return "\n".join(out)


def write_all(report: RunReport, directory: Path) -> dict[str, Path]:
    """Write JUnit, the plot (when there is a timeline) and the Markdown report into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {"junit": directory / JUNIT_FILE, "markdown": directory / MARKDOWN_FILE}
    junit_tree(report).write(written["junit"], encoding="utf-8", xml_declaration=True)
    plot_name = None
    if report.timeline is not None and (report.timeline.pods or report.timeline.nodes):
        written["plot"] = plot_timeline(report.timeline, directory / PLOT_FILE)
        plot_name = PLOT_FILE
    written["markdown"].write_text(markdown(report, plot_name), encoding="utf-8")
    return written
