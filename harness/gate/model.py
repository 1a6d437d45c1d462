"""The facts rules judge: Terraform resources, manifests (raw and effective), reference data, versions."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.gate.hcl import Unknown, as_mapping, decoded


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Finding:
    """One broken contract: where it is and how to fix it."""

    rule_id: str
    severity: Severity
    message: str
    file: str
    line: int
    fix: str


@dataclass(frozen=True)
class Location:
    file: Path
    line: int


@dataclass
class TfResource:
    """One resource or data source instance, its arguments evaluated as far as they are static."""

    mode: str  # "resource" or "data"
    type: str
    name: str
    module_path: str  # "" for a root module, else "module.a.module.b"
    root: str  # the root module's directory name (e.g. "platform")
    index: int | str | None
    attrs: dict[str, Any]
    file: Path
    line: int
    attr_lines: dict[str, int]
    default_tags: Mapping[str, Any] = field(default_factory=dict)  # the aws provider's default_tags
    count_unknown: bool = False  # count/for_each not static: this stands for any number of instances
    # helm_release only: strings its values and set entries write as literals (not read from a variable or output)
    literal_strings: frozenset[str] = frozenset()

    @property
    def address(self) -> str:
        base = f"{self.type}.{self.name}" if self.mode == "resource" else f"data.{self.type}.{self.name}"
        if self.index is not None:
            base += f"[{self.index!r}]" if isinstance(self.index, str) else f"[{self.index}]"
        return f"{self.module_path}.{base}" if self.module_path else base

    def get(self, *path: str | int) -> Any:
        """A nested argument: blocks appear as lists of mappings; the first block is used."""
        value: Any = self.attrs
        for step in path:
            value = decoded(value)
            if isinstance(value, list) and isinstance(step, str):
                value = value[0] if value else None
                value = decoded(value)
            if isinstance(value, dict):
                value = value.get(step)
            elif isinstance(value, list) and isinstance(step, int):
                value = value[step] if step < len(value) else None
            else:
                return None
        return decoded(value)

    def block(self, name: str) -> Mapping[str, Any]:
        """The first nested block of that type (blocks are lists of mappings), or an empty mapping."""
        value = decoded(self.attrs.get(name))
        if isinstance(value, list):
            value = decoded(value[0]) if value else None
        return value if isinstance(value, dict) else {}

    def line_of(self, name: str) -> int:
        return self.attr_lines.get(name, self.line)

    @property
    def tags(self) -> Mapping[str, Any]:
        """Tags including provider default_tags (tags_all)."""
        return {**self.default_tags, **as_mapping(self.attrs.get("tags"))}


@dataclass(frozen=True)
class ProviderRequirement:
    name: str
    source: str
    version: str
    root: str
    file: Path
    line: int


@dataclass
class HelmValues:
    """The effective values a helm_release passes, with where each key came from."""

    values: dict[str, Any]
    sources: dict[tuple[str, ...], Location]


@dataclass
class TerraformModel:
    resources: list[TfResource] = field(default_factory=list)
    providers: list[ProviderRequirement] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # root -> output -> value
    files: list[Path] = field(default_factory=list)

    def of_type(self, *types: str, mode: str = "resource") -> list[TfResource]:
        return [r for r in self.resources if r.type in types and r.mode == mode]


@dataclass
class Manifest:
    """One Kubernetes object as a document with its file, first line and line per field path."""

    doc: dict[str, Any]
    file: Path
    line: int
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    origin: str = ""  # how an effective manifest was produced (ApplicationSet, kustomize), "" for a file as written
    sources: dict[tuple[Any, ...], Location] = field(default_factory=dict)  # fields set by patches elsewhere

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    def map(self, *path: Any) -> dict[str, Any]:
        """A mapping field, or {} when absent or of another type (user input may be anything)."""
        return as_dict(self.get(*path))

    def list(self, *path: Any) -> list[Any]:
        """A list field, or [] when absent or of another type."""
        return as_list(self.get(*path))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def name(self) -> str:
        return str(self.map("metadata").get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.map("metadata").get("namespace", "") or "")

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}" + (f" ({self.origin})" if self.origin else "")

    def get(self, *path: Any) -> Any:
        value: Any = self.doc
        for step in path:
            if isinstance(value, dict):
                value = value.get(step)
            elif isinstance(value, list) and isinstance(step, int) and step < len(value):
                value = value[step]
            else:
                return None
        return value

    def where(self, *path: Any) -> Location:
        """File and line of the deepest known prefix of a field path (a patch's line if a patch set it)."""
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            if prefix in self.sources:
                return self.sources[prefix]
            if prefix in self.lines:
                return Location(self.file, self.lines[prefix])
        return Location(self.file, self.line)


@dataclass
class Suppression:
    rule_id: str
    reason: str
    file: Path
    line: int  # the comment's own line
    applies_to: frozenset[int]


@dataclass
class Reference:
    """Pinned upstream data (never judged, only compared against)."""

    crd_schemas: dict[tuple[str, str, str], dict[str, Any]]  # (group, version, kind) -> openAPIV3Schema
    crd_kinds: dict[tuple[str, str], list[str]]  # (group, kind) -> served versions
    chart_values: dict[str, tuple[str, dict[str, Any]]]  # chart name -> (version, default values)
    iam_actions: dict[str, set[str]]  # "karpenter" / "aws-load-balancer-controller" -> allowed actions
    compatibility: dict[str, Any]
    validators: dict[Any, Any] = field(default_factory=dict)  # schema validators built from it, kept with it
    # controller -> upstream Allow statements: {"actions": [...], "resources": [...], "conditions": [[op, key, [v]]]}
    iam_statements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    chart_app_versions: dict[str, str] = field(default_factory=dict)  # chart name -> its Chart.yaml appVersion
    chart_kube_versions: dict[str, str] = field(default_factory=dict)  # chart name -> its Chart.yaml kubeVersion


@dataclass
class ClusterSecret:
    """An Argo CD cluster secret (from Terraform or from a manifest) as the cluster generator sees it."""

    name: str
    server: str
    labels: dict[str, str]
    annotations: dict[str, Any]
    location: Location


@dataclass
class Rendered:
    """What harness.gate.effective makes of the chain: the effective objects, and facts rules need about the chain."""

    objects: list[Manifest]
    applications: list[Manifest]  # Applications as written or rendered from ApplicationSets
    consumed: set[Path] = field(default_factory=set)  # files that only reach the cluster through an Application
    missing_paths: list[tuple[Manifest, str]] = field(default_factory=list)  # (Application, source path)
    delivered_by: dict[int, Manifest] = field(default_factory=dict)  # id(effective object) -> its Application
    cluster_secrets: list[ClusterSecret] = field(default_factory=list)
    unapplied_patches: list[tuple[Location, str]] = field(default_factory=list)  # an Application's, and why
    patch_problems: list[tuple[Location, str]] = field(default_factory=list)  # patches kustomize would refuse


@dataclass
class Model:
    terraform: TerraformModel
    manifests: list[Manifest]  # as written
    effective: list[Manifest]  # what the cluster receives (ApplicationSet/kustomize chain applied)
    reference: Reference
    versions: dict[str, str]
    versions_file: Path | None
    versions_lines: dict[str, int]
    suppressions: list[Suppression]
    gitops_roots: list[Path]
    repo_root: Path | None
    rendered: Rendered
    helm: dict[str, HelmValues] = field(default_factory=dict)  # helm_release address -> values
    # Objects of charts in the checked tree that helm_releases install (harness.gate.local_charts).
    local_charts: list[Manifest] = field(default_factory=list)
    local_chart_notes: list[str] = field(default_factory=list)  # templates of those charts the gate could not render
    # --render-charts: one harness.gate.charts.Rendering per release; None when not asked (or helm is missing)
    renderings: list[Any] | None = None
    notes: list[str] = field(default_factory=list)  # what the gate could not check, for the report's notes
    # component -> data folder: what pinned Go modules ship beside the binaries (charts, IAM policies, CRDs)
    shipped: dict[str, Path] = field(default_factory=dict)
    shipped_charts: set[str] = field(default_factory=set)  # charts a pinned module publishes, built or not

    def helm_releases(self) -> Iterator[tuple[TfResource, HelmValues]]:
        for release in self.terraform.of_type("helm_release"):
            yield release, self.helm[release.address]

    def release_for(self, chart: str) -> tuple[TfResource, HelmValues] | None:
        for release, values in self.helm_releases():
            if chart_name(release) == chart:
                return release, values
        return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def chart_name(release: TfResource) -> str:
    chart = release.get("chart")
    if isinstance(chart, str):
        return chart.rstrip("/").rsplit("/", 1)[-1]
    return ""


def text(value: Any) -> str | None:
    """A static string value, or None when unknown or not a string."""
    if isinstance(value, Unknown) or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None
