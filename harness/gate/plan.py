"""A Terraform plan (`terraform show -json PLAN`) as the source of every value of the root it was made for.

When a plan is given for a root, that root's input variables, resource arguments and outputs come from the plan,
and so does what another root reads from it through `terraform_remote_state`. The `.tf` files still give the
structure (which resources, where they are written); the other roots keep their static evaluation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.gate.hcl import Encoded, Unknown, _parse_documents
from harness.gate.model import TerraformModel, TfResource
from harness.gate.text import read_text

# Arguments holding YAML/JSON documents as text, parsed as static evaluation parses them (harness.gate.terraform).
DOCUMENT_ARGS = frozenset({"values", "policy", "assume_role_policy", "inline_policy"})


@dataclass
class Plan:
    file: Path
    variables: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> values (Unknown where unknown)
    outputs: dict[str, Any] = field(default_factory=dict)
    variable_names: set[str] = field(default_factory=set)  # declared by the planned configuration
    root_addresses: set[str] = field(default_factory=set)  # resources of its root module (no module. prefix)


def read_plan(path: Path) -> Plan:
    """`terraform show -json PLAN` -> variables, resource values and outputs, unknowns as Unknown."""
    try:
        document = json.loads(read_text(path))
    except ValueError as exc:
        raise InputError(f"{path}: invalid JSON ({exc})") from None
    planned = document.get("planned_values") if isinstance(document, dict) else None
    if not isinstance(planned, dict):
        raise InputError(f"{path}: not a plan (no planned_values; produce it with `terraform show -json PLAN`)")
    plan = Plan(path)
    for name, entry in _mapping(document.get("variables")).items():
        if isinstance(entry, dict) and "value" in entry:
            plan.variables[str(name)] = entry["value"]
    unknown: dict[str, Any] = {}
    for change in document.get("resource_changes") or []:
        if isinstance(change, dict) and isinstance(change.get("change"), dict):
            unknown[str(change.get("address"))] = change["change"].get("after_unknown")
    prior = _mapping(_mapping(document.get("prior_state")).get("values"))
    for module in (prior.get("root_module"), planned.get("root_module")):  # data sources read at plan time first
        for address, values in _module_resources(module):
            plan.resources[address] = _with_unknowns(values, unknown.get(address), address)
    for name, entry in _mapping(planned.get("outputs")).items():
        plan.outputs[str(name)] = entry.get("value") if isinstance(entry, dict) and "value" in entry else None
    for name, change in _mapping(document.get("output_changes")).items():
        if isinstance(change, dict):
            plan.outputs[str(name)] = _with_unknowns(change.get("after"), change.get("after_unknown"), f"output.{name}")
    configuration = _mapping(_mapping(document.get("configuration")).get("root_module"))
    plan.variable_names = {str(n) for n in _mapping(configuration.get("variables"))} or set(plan.variables)
    plan.root_addresses = {str(r.get("address")) for r in configuration.get("resources") or [] if isinstance(r, dict)}
    plan.root_addresses |= {_base(a) for a in plan.resources if not a.startswith("module.")}
    return plan


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _base(address: str) -> str:
    """The resource block an instance address belongs to: `aws_subnet.private[0]` -> `aws_subnet.private`."""
    return address.split("[", 1)[0]


def _module_resources(module: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(module, dict):
        return []
    found = [
        (str(r.get("address")), r["values"])
        for r in module.get("resources") or []
        if isinstance(r, dict) and isinstance(r.get("values"), dict)
    ]
    for child in module.get("child_modules") or []:
        found.extend(_module_resources(child))
    return found


def _with_unknowns(value: Any, mask: Any, where: str) -> Any:
    """Planned values with the parts `after_unknown` marks as unknown made Unknown (planned_values omits them)."""
    if mask is True:
        return Unknown(where)
    if isinstance(mask, dict):
        result = dict(value) if isinstance(value, dict) else {}
        for key, inner in mask.items():
            result[key] = _with_unknowns(result.get(key), inner, f"{where}.{key}")
        return result
    if isinstance(mask, list) and isinstance(value, list):
        return [_with_unknowns(v, mask[i] if i < len(mask) else None, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def root_of(plan: Plan, roots: Mapping[str, tuple[set[str], set[str]]]) -> str:
    """The root a plan was made for: the one whose variables and root-module resources it shares most.
    `roots`: root name -> (variable names, resource addresses of its root module)."""
    scores = {
        name: len(plan.variable_names & variables) + len(plan.root_addresses & addresses)
        for name, (variables, addresses) in roots.items()
    }
    best = max(scores.values(), default=0)
    chosen = [name for name, score in scores.items() if score == best]
    if best == 0 or len(chosen) != 1:
        raise InputError(
            f"{plan.file}: the plan matches no single Terraform root under --infra "
            f"(roots: {', '.join(sorted(roots)) or 'none'})"
        )
    return chosen[0]


def plan_attrs(values: Mapping[str, Any]) -> dict[str, Any]:
    """A planned resource's values as the rules read arguments: documents (Helm values, policies) parsed."""
    attrs = dict(values)
    for name in DOCUMENT_ARGS & attrs.keys():
        attrs[name] = _documents(attrs[name])
    return attrs


def _documents(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return Encoded(json.loads(value), "json")
        except ValueError:
            pass
    if isinstance(value, list):
        return [_documents(v) for v in value]
    return _parse_documents(value)


def overlay(model: TerraformModel, plans: Mapping[str, Plan]) -> None:
    """Every resource of a planned root takes its values from the plan; a count or for_each becomes the
    instances the plan lists. Resources the plan does not list (a registry module's, summarized differently by
    the gate) keep their static values."""
    expanded: list[TfResource] = []
    for resource in model.resources:
        plan = plans.get(resource.root)
        if plan is None:
            expanded.append(resource)
            continue
        planned = plan.resources
        instances: list[tuple[TfResource, dict[str, Any] | None]] = [(resource, planned.get(resource.address))]
        if resource.address not in planned and resource.index is None:
            prefix = resource.address + "["
            keys = [address[len(prefix) : -1] for address in planned if address.startswith(prefix)]
            instances = [
                (
                    dataclasses.replace(
                        resource, index=int(key) if key.isdigit() else key.strip('"'), count_unknown=False
                    ),
                    planned[f"{prefix}{key}]"],
                )
                for key in keys
            ] or instances
        for instance, values in instances:
            if values is not None:
                instance.attrs = plan_attrs(values)
            expanded.append(instance)
    model.resources[:] = expanded


def check_unique(plans: Sequence[tuple[str, Plan]]) -> dict[str, Plan]:
    by_root: dict[str, Plan] = {}
    for root, plan in plans:
        if root in by_root:
            raise InputError(f"{plan.file}: a second plan for root {root} ({by_root[root].file})")
        by_root[root] = plan
    return by_root
