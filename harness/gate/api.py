"""Public API of the gate: load the layers, run the rules, return a report.

from harness.gate.api import check
report = check([Path("infra")], [Path("gitops")], reference=None)
report.errors, report.findings
"""

from __future__ import annotations

import gc
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import project
from harness.errors import HarnessError, InputError
from harness.gate import effective, loaders
from harness.gate.local_charts import render_local_charts
from harness.gate.model import (
    Finding,
    HelmValues,
    Location,
    Model,
    Reference,
    Severity,
    Suppression,
    TerraformModel,
    chart_name,
)
from harness.gate.rules import Rule, all_rules
from harness.gate.values import helm_values
from harness.toolchain.components import COMPONENTS

# `terraform show -json` output: one file, or one per root (a root without one is evaluated from its .tf files).
PlanFiles = Path | Sequence[Path] | None


@dataclass
class Report:
    findings: list[Finding]
    suppressed: list[tuple[Finding, Suppression]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)  # the rules that ran
    files: int = 0  # files read
    base: Path | None = None  # finding paths are relative to this directory
    notes: list[str] = field(default_factory=list)  # what the gate could not check, so a pass is not misread

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)


def select_rules(select: Collection[str] = (), ignore: Collection[str] = ()) -> list[Rule]:
    rules = all_rules()
    unknown = sorted({*select, *ignore} - set(rules))
    if unknown:
        raise InputError(f"unknown rule {', '.join(unknown)} (known: {rules and min(rules)}..{rules and max(rules)})")
    chosen = [r for r in rules.values() if (not select or r.id in select) and r.id not in ignore]
    return chosen


def build_model(
    infra: Sequence[Path],
    gitops: Sequence[Path],
    reference: Path | None,
    plan_json: PlanFiles = None,
    render_charts: bool = False,
    variables: Mapping[str, Any] | None = None,
) -> Model:
    infra, gitops = [Path(p) for p in infra], [Path(p) for p in gitops]
    repo = _repo_root([*infra, *gitops])
    beside_checked_repo = repo is not None and (repo.parent / "shared" / "reference" / "crds").is_dir()
    reference_dir = project.reference_dir(reference, root=repo if beside_checked_repo else None)
    plans = [] if plan_json is None else [Path(plan_json)] if isinstance(plan_json, str | Path) else list(plan_json)
    terraform = loaders.load_terraform(infra, plans, variables) if infra else TerraformModel()
    manifests = loaders.load_manifests(gitops)
    rendered = effective.render(terraform, manifests, gitops)
    versions, versions_file, versions_lines = loaders.load_versions(_checked_root([*infra, *gitops]))
    files = [*terraform.files, *sorted({m.file for m in manifests})]
    plain_reference = loaders.load_reference(reference_dir)
    shipped, unbuilt = _shipped(terraform, versions, plain_reference)
    model = Model(
        terraform=terraform,
        manifests=manifests,
        effective=rendered.objects,
        reference=loaders.load_reference(reference_dir, shipped) if shipped else plain_reference,
        versions=versions,
        versions_file=versions_file,
        versions_lines=versions_lines,
        suppressions=loaders.suppressions(files),
        gitops_roots=gitops,
        repo_root=repo,
        rendered=rendered,
        shipped=shipped,
        shipped_charts={Path(s).name for c in COMPONENTS for s in c.ships if s.startswith("helm/")},
    )
    model.notes.extend(unbuilt)
    model.helm = {r.address: helm_values(r) for r in terraform.of_type("helm_release")}
    charts = render_local_charts(terraform, model.helm)
    model.local_charts = charts.objects
    model.local_chart_notes = charts.notes
    model.notes.extend(charts.notes)
    if render_charts:
        _render_charts(model, reference_dir)
    return model


def _shipped(
    terraform: TerraformModel, pins: Mapping[str, str], reference: Reference
) -> tuple[dict[str, Path], list[str]]:
    """What the toolchain's pinned modules ship (charts, IAM policies, CRDs) for the versions the checked repository
    pins, and a note for each such version the checked tree deploys that is neither extracted yet nor the version of
    the reference data's copy (which then stands in)."""
    from harness.toolchain.build import entry_for, shipped_data  # reads the cache only when a model is built

    try:
        built = shipped_data()
    except HarnessError:  # no toolchain/ beside the checked-out harness (an installed package): nothing is shipped
        built = {}
    deployed = {chart_name(r) for r in terraform.of_type("helm_release")}
    shipped, notes = {}, []
    for component in COMPONENTS:
        pinned = str(pins.get(component.version_key, "")).lstrip("v")
        if not component.ships or not pinned:
            continue
        if component.name in built and entry_for(component).version == pinned:
            shipped[component.name] = built[component.name]
            continue
        standing_in = reference.chart_app_versions.get(component.chart, "").lstrip("v")
        if component.chart in deployed and standing_in != pinned:
            notes.append(
                f"{component.name} {pinned}: {', '.join(component.ships)} of its pinned module not read "
                f"(not built: `make toolchain` extracts them); the reference data's copies ({standing_in}) "
                "stand in"
            )
    return shipped, notes


def _render_charts(model: Model, reference_dir: Path) -> None:
    from harness.gate import charts  # loads the toolchain's lookup only when asked

    helm, why = charts.helm_binary()
    if helm is None:
        model.notes.append(
            f"--render-charts: no helm ({why}); chart values were checked by their keys only (EKS018), not rendered"
        )
        return
    model.renderings = charts.render_releases(model, reference_dir, helm)


def check(
    infra: Sequence[Path],
    gitops: Sequence[Path],
    reference: Path | None,
    select: Collection[str] = (),
    ignore: Collection[str] = (),
    plan_json: PlanFiles = None,
    render_charts: bool = False,
) -> Report:
    """Run the selected rules over the given Terraform and GitOps trees. Unreadable input raises InputError."""
    with _collector_paused():
        return _check(infra, gitops, reference, select, ignore, plan_json, render_charts)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A check builds many long-lived objects and little cyclic garbage, so the garbage collector's passes over
    them find almost nothing yet cost up to a quarter of its time: they wait until the check is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check(
    infra: Sequence[Path],
    gitops: Sequence[Path],
    reference: Path | None,
    select: Collection[str],
    ignore: Collection[str],
    plan_json: PlanFiles,
    render_charts: bool = False,
) -> Report:
    rules = select_rules(select, ignore)
    model = build_model(infra, gitops, reference, plan_json, render_charts)
    base = model.repo_root or Path.cwd()
    findings: list[Finding] = []
    for rule in rules:
        try:
            issues = list(rule.check(model))
        except Exception as exc:  # a rule bug must not hide the other rules' findings
            problem = f"rule could not evaluate ({exc.__class__.__name__}: {str(exc)[:200]})"
            findings.append(
                Finding(
                    rule.id,
                    Severity.ERROR,
                    problem,
                    _display(base, model.repo_root or base),
                    1,
                    "report this as a gate bug",
                )
            )
            continue
        for issue in issues:
            findings.append(
                Finding(
                    rule.id,
                    rule.severity,
                    issue.message,
                    _display(base, issue.location.file),
                    max(issue.location.line, 1),
                    issue.fix,
                )
            )
    kept, suppressed = _suppress(findings, model.suppressions, base)
    kept.sort(key=lambda f: (f.file, f.line, f.rule_id, f.message))
    files = len(model.terraform.files) + len({m.file for m in model.manifests})
    return Report(kept, suppressed, rules, files, base, _notes(model, rules))


def _notes(model: Model, rules: Sequence[Rule]) -> list[str]:
    notes = list(model.notes)
    if "EKS015" in {r.id for r in rules} and not model.reference.compatibility:
        notes.append(
            "the reference data has no compatibility.yaml: EKS015 compared no Kubernetes and Karpenter versions"
        )
    return notes


def _suppress(
    findings: list[Finding], suppressions: Sequence[Suppression], base: Path
) -> tuple[list[Finding], list[tuple[Finding, Suppression]]]:
    index: dict[tuple[str, int, str], Suppression] = {}
    for s in suppressions:
        if not s.reason:  # a suppression must say why; without a reason it suppresses nothing
            continue
        for line in s.applies_to:
            index[(_display(base, s.file), line, s.rule_id)] = s
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, Suppression]] = []
    for finding in findings:
        match = index.get((finding.file, finding.line, finding.rule_id))
        if match is not None:
            suppressed.append((finding, match))
        else:
            kept.append(finding)
    return kept, suppressed


def _display(base: Path, file: Path) -> str:
    resolved = file.resolve()
    try:
        return resolved.relative_to(base.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(resolved, Path.cwd()) if resolved.is_relative_to(Path.cwd()) else str(file)


def _checked_root(paths: Sequence[Path]) -> Path | None:
    """The top of the checked tree (where its versions.yaml would be): the paths' common parent."""
    if not paths:
        return None
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath(resolved))
    return common.parent if len(set(resolved)) == 1 or common in resolved else common


def _repo_root(paths: Sequence[Path]) -> Path | None:
    for path in paths:
        for candidate in (path.resolve(), *path.resolve().parents):
            if (candidate / "versions.yaml").is_file() or (candidate / ".git").exists():
                return candidate
    return None


__all__ = ["Finding", "HelmValues", "Location", "Report", "Severity", "build_model", "check", "select_rules"]
