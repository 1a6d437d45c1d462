"""Schema validity and the gate's own suppression comments."""

from __future__ import annotations

from collections.abc import Iterator

from harness.gate.model import Location, Model
from harness.gate.rules import Issue, rule
from harness.gate.rules.versions import REMOVED_APIS
from harness.gate.schema import DEFAULT_KUBERNETES, SchemaValidator

# Configuration files of tools, never applied to a cluster.
_TOOL_GROUPS = ("kustomize.config.k8s.io",)


@rule("EKS001", "manifests are valid for the pinned Kubernetes version and the pinned CRDs")
def schema_validity(model: Model) -> Iterator[Issue]:
    """Every manifest the cluster receives must validate: core kinds against the strict schemas of the
    Kubernetes version pinned in versions.yaml (`kubernetes`), custom resources against the
    openAPIV3Schema of the pinned CRD from the reference data, with unknown fields rejected (the API
    server would silently prune them, so a typo such as `amiSelectorTerm` passes kubectl and changes
    nothing); a custom resource's `metadata` is checked as ObjectMeta, as the API server reads it. A kind
    that neither the Kubernetes version nor a pinned CRD defines is an error too: Argo CD would fail the
    sync with "resource mapping not found". Fix the field the message names, or the apiVersion/kind;
    removed API versions (Karpenter v1beta1, networking.k8s.io/v1beta1, ...) are reported with their
    replacement."""
    validator = SchemaValidator(
        model.versions.get("kubernetes", DEFAULT_KUBERNETES), model.reference.crd_schemas, model.reference.validators
    )
    for manifest in model.effective:
        if manifest.group in _TOOL_GROUPS:
            continue
        if manifest.api_version in REMOVED_APIS:
            yield Issue(
                f"{manifest.label}: apiVersion {manifest.api_version} was removed",
                manifest.where("apiVersion"),
                f"use {REMOVED_APIS[manifest.api_version]}",
            )
            continue
        for problem in validator.problems(manifest.doc):
            message = problem.message if len(problem.message) < 300 else problem.message[:297] + "..."
            yield Issue(
                f"{manifest.label}: {message}",
                manifest.where(*problem.path),
                "correct the field to match the schema (see `kubectl explain` for the kind)",
            )


@rule("EKS026", "suppressions name a known rule and give a reason")
def suppression_reasons(model: Model) -> Iterator[Issue]:
    """`# harness:ignore EKS012 reason text` (YAML or HCL, `//` works in HCL) silences one rule on the line
    it is on or the next line of content. A suppression without a reason suppresses nothing and is itself
    a finding: the next reader must know why the contract is broken on purpose. A suppression naming a
    rule that does not exist is reported too (a typo would otherwise hide nothing, silently)."""
    from harness.gate.rules import RULES

    for suppression in model.suppressions:
        where = Location(suppression.file, suppression.line)
        if suppression.rule_id not in RULES:
            yield Issue(
                f"harness:ignore names unknown rule {suppression.rule_id}",
                where,
                "use a rule id listed by `harness check --explain`",
            )
        elif not suppression.reason:
            yield Issue(
                f"harness:ignore {suppression.rule_id} gives no reason",
                where,
                f"write why after the rule id: `harness:ignore {suppression.rule_id} <reason>`",
            )
