"""Rule registry: each rule is a pure function over the model that yields issues; its docstring is its doc."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.gate.model import Location, Model, Severity


@dataclass(frozen=True)
class Issue:
    """What a rule reports; the runner adds the rule id and severity."""

    message: str
    location: Location
    fix: str


Check = Callable[[Model], Iterable[Issue]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    doc: str
    check: Check


RULES: dict[str, Rule] = {}
# Rule modules, imported for their @rule registrations.
_MODULES = (
    "schema",
    "network",
    "identity",
    "scheduling",
    "ingress",
    "gitops",
    "versions",
    "security",
    "argocd",
    "addons",
    "kustomize",
    "iam",
    "deprecations",
    "literals",
    "rendering",
    "service_accounts",
    "upgrade",
)


def rule(rule_id: str, title: str, severity: Severity = Severity.ERROR) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"duplicate rule id {rule_id}")
        RULES[rule_id] = Rule(rule_id, title, severity, inspect.cleandoc(check.__doc__ or ""), check)
        return check

    return register


def all_rules() -> dict[str, Rule]:
    for name in _MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return dict(sorted(RULES.items()))
