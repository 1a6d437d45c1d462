"""IAM's evaluation of identity-based policies for one request: explicit deny, else an allow, else implicit deny.

A request names its action, one resource (its ARN, or "*" for an action that has no resource-level permissions)
and its request context: the condition keys and values AWS would put there. A condition key the request does not
carry is absent, as on AWS, unless the key belongs to the action (or is global) and the caller could not compute
it: that key is *unknown*, and a statement that depends on it is neither counted as matching nor as not matching.
A decision that rests on an unknown key is ``UNDETERMINED`` and names the keys, so that a judge reports it instead
of allowing or denying it silently.

Pure functions over policy documents (JSON text or parsed); nothing here calls AWS.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any

# Policy variables (${aws:username}) and the special characters ${*}, ${?}, ${$}.
VARIABLE = re.compile(r"\$\{([^}]+)\}")
SPECIAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}
UNKNOWN_RESOURCE = "the call's resource"


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"  # explicitly, by a Deny statement
    NOT_ALLOWED = "not allowed"  # implicitly: no statement allows it
    UNDETERMINED = "undetermined"


REFUSED = frozenset({Verdict.DENIED, Verdict.NOT_ALLOWED})  # what AWS answers with an error


@dataclass(frozen=True)
class Request:
    """One authorization AWS makes for a call (a call can need several: one per resource it touches).

    ``context`` maps condition keys (any case) to their values. ``computed`` and ``applicable`` are glob
    patterns of keys: a key the caller computes is absent when not in ``context``; a key that applies to the
    action (``applicable``, or any ``aws:`` global key) but is not computed is unknown."""

    action: str
    resource: str  # "" when the caller cannot tell it: unknown, as a key can be
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)
    computed: Sequence[str] = ()
    applicable: Sequence[str] = ()

    def values(self, key: str) -> list[str] | None:
        """The key's values, None when absent; raises UnknownKey when the key cannot be known here."""
        lowered = key.lower()
        for name, values in self.context.items():
            if name.lower() == lowered:
                return list(values)
        if any(fnmatchcase(lowered, p.lower()) for p in self.computed):
            return None
        if lowered.startswith("aws:") or any(fnmatchcase(lowered, p.lower()) for p in self.applicable):
            raise UnknownKey(key)
        return None


class UnknownKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    statement: str = ""  # the Sid (or index) of the deciding statement
    unknown_keys: tuple[str, ...] = ()


def documents(raw: Sequence[str | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Parsed policy documents (IAM stores them as JSON text)."""
    return [json.loads(doc) if isinstance(doc, str) else doc for doc in raw]


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements(policy: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found = _listed(policy.get("Statement"))
    return [(str(s.get("Sid") or f"statement {i}"), s) for i, s in enumerate(found)]


def _substitute(pattern: str, request: Request) -> str:
    """The pattern with its policy variables replaced by the request's values (UnknownKey if not known)."""

    def value(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(", '")
        if name in SPECIAL_VARIABLES:
            return SPECIAL_VARIABLES[name]
        found = request.values(name)
        if found:
            return found[0]
        if default:
            return default.rstrip("'")
        raise UnknownKey(name)

    return VARIABLE.sub(value, pattern)


def _action_matches(patterns: list[Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), str(p).lower()) for p in patterns)


def _resource_matches(patterns: list[Any], resource: str, request: Request) -> bool:
    return any(fnmatchcase(resource, _substitute(str(p), request)) for p in patterns)


def _date(text: str) -> float:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _ip_in(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


Compare = Callable[[str, str], bool]
# Operator -> (compare one context value with one policy value, negated). Negated operators hold when no policy
# value matches; a key that is absent makes a positive operator false and a negated one true.
OPERATORS: dict[str, tuple[Compare, bool]] = {
    "StringEquals": (lambda v, p: v == p, False),
    "StringNotEquals": (lambda v, p: v == p, True),
    "StringEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), True),
    "StringLike": (lambda v, p: fnmatchcase(v, p), False),
    "StringNotLike": (lambda v, p: fnmatchcase(v, p), True),
    "ArnEquals": (lambda v, p: v == p, False),
    "ArnNotEquals": (lambda v, p: v == p, True),
    "ArnLike": (lambda v, p: fnmatchcase(v, p), False),
    "ArnNotLike": (lambda v, p: fnmatchcase(v, p), True),
    "NumericEquals": (lambda v, p: float(v) == float(p), False),
    "NumericNotEquals": (lambda v, p: float(v) == float(p), True),
    "NumericLessThan": (lambda v, p: float(v) < float(p), False),
    "NumericLessThanEquals": (lambda v, p: float(v) <= float(p), False),
    "NumericGreaterThan": (lambda v, p: float(v) > float(p), False),
    "NumericGreaterThanEquals": (lambda v, p: float(v) >= float(p), False),
    "DateEquals": (lambda v, p: _date(v) == _date(p), False),
    "DateNotEquals": (lambda v, p: _date(v) == _date(p), True),
    "DateLessThan": (lambda v, p: _date(v) < _date(p), False),
    "DateLessThanEquals": (lambda v, p: _date(v) <= _date(p), False),
    "DateGreaterThan": (lambda v, p: _date(v) > _date(p), False),
    "DateGreaterThanEquals": (lambda v, p: _date(v) >= _date(p), False),
    "Bool": (lambda v, p: v.lower() == p.lower(), False),
    "IpAddress": (_ip_in, False),
    "NotIpAddress": (_ip_in, True),
}


def _condition_holds(operator: str, key: str, expected: list[Any], request: Request) -> bool:
    """One key of one condition operator (``ForAllValues:StringEquals``, ``StringLikeIfExists``, ``Null``...)."""
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists") and base != "IfExists"
    base = base.removesuffix("IfExists") if if_exists else base
    found = request.values(key)
    wanted = [_substitute(str(p).lower() if base == "Bool" else str(p), request) for p in expected]
    if base == "Null":
        return (found is None or found == []) == (str(expected[0]).lower() == "true")
    if base not in OPERATORS:
        raise UnknownKey(f"{key} (operator {operator})")
    compare, negated = OPERATORS[base]

    def one(value: str) -> bool:
        hit = any(compare(value, p) for p in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in found or [])
    if qualifier == "ForAnyValue":
        return any(one(v) for v in found or [])
    if not found:
        return if_exists or negated
    return any(one(v) for v in found)


def _conditions(statement: Mapping[str, Any], request: Request) -> tuple[bool, list[str]]:
    """(False, []) when a condition fails; else (True, the unknown keys the statement's match rests on)."""
    unknown = []
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            try:
                if not _condition_holds(operator, key, _listed(expected), request):
                    return False, []
            except UnknownKey as exc:
                unknown.append(exc.key)
    return True, unknown


def _applies(statement: Mapping[str, Any], request: Request) -> tuple[bool, list[str]]:
    """Whether the statement covers the request (its action, resource and conditions), and the unknown keys
    that the answer True rests on."""
    if "Action" in statement:
        if not _action_matches(_listed(statement["Action"]), request.action):
            return False, []
    elif _action_matches(_listed(statement.get("NotAction")), request.action):
        return False, []
    if not request.resource:  # the caller could not tell the call's resource: only "*" covers it for sure
        if "*" in _listed(statement.get("Resource")):
            return _conditions(statement, request)
        return True, [UNKNOWN_RESOURCE]
    try:
        if "Resource" in statement:
            if not _resource_matches(_listed(statement["Resource"]), request.resource, request):
                return False, []
        elif "NotResource" in statement and _resource_matches(
            _listed(statement["NotResource"]), request.resource, request
        ):
            return False, []
    except UnknownKey as exc:
        return True, [exc.key]
    return _conditions(statement, request)


def evaluate(policies: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    """IAM's decision for one request under the caller's identity-based policies (one account, no boundary,
    no session policy, no SCP)."""
    allowed = ""
    uncertain: dict[str, list[tuple[str, list[str]]]] = {"Allow": [], "Deny": []}
    for policy in policies:
        for sid, statement in _statements(policy):
            applies, unknown = _applies(statement, request)
            effect = str(statement.get("Effect"))
            if not applies or effect not in uncertain:
                continue
            if unknown:
                uncertain[effect].append((sid, unknown))
            elif effect == "Deny":
                return Decision(Verdict.DENIED, sid)
            elif not allowed:
                allowed = sid
    # What a known key cannot settle: a deny that may match an allowed request, an allow that may match
    # a request nothing else allows.
    pending = uncertain["Deny"] if allowed else uncertain["Allow"]
    if pending:
        keys = tuple(sorted({key for _, unknown in pending for key in unknown}))
        return Decision(Verdict.UNDETERMINED, pending[0][0], keys)
    return Decision(Verdict.ALLOWED, allowed) if allowed else Decision(Verdict.NOT_ALLOWED)
