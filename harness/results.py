"""The verdict every judgement returns, in every tier (unit, emulator, e2e)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # still progressing: a wait loop polls again
    NOT_APPLICABLE = "n/a"  # the target cannot serve what the judgement needs


@dataclass(frozen=True)
class Result:
    """A judgement that explains itself: what was checked, the verdict, why, and the evidence."""

    name: str
    status: Status
    why: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASS, Status.NOT_APPLICABLE)

    @classmethod
    def passed(cls, name: str, why: str, **evidence: Any) -> Result:
        return cls(name, Status.PASS, why, evidence)

    @classmethod
    def failed(cls, name: str, why: str, **evidence: Any) -> Result:
        return cls(name, Status.FAIL, why, evidence)

    @classmethod
    def pending(cls, name: str, why: str, **evidence: Any) -> Result:
        return cls(name, Status.PENDING, why, evidence)

    @classmethod
    def not_applicable(cls, name: str, target: str, reason: str) -> Result:
        return cls(name, Status.NOT_APPLICABLE, f"not applicable on {target}: {reason}", {})


def all_ok(results: Iterable[Result]) -> bool:
    return all(r.ok for r in results)


def first_failure(results: Iterable[Result]) -> str | None:
    """Why the first failed result failed, or None when none did."""
    return next((r.why for r in results if r.status is Status.FAIL), None)
