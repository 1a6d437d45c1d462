"""A run: its id, its directory (state, logs, evidence, report) and the tags on everything it causes."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.project import repo_root

RUNS_ENV = "HARNESS_RUNS_DIR"
PROJECT_TAG = ("project", "eks-platform")
RUN_ID_TAG = "run-id"
EXPIRES_TAG = "expires-at"
RUN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,30}$")


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M")
    return f"r{stamp}-{secrets.token_hex(2)}"


def validate_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise InputError(f"run id {run_id!r}: use 3-31 lowercase letters, digits and hyphens")
    return run_id


def runs_dir() -> Path:
    return Path(os.environ[RUNS_ENV]) if os.environ.get(RUNS_ENV) else repo_root() / ".runs"


@dataclass
class Run:
    """Everything about a run that another shell needs to resume or tear it down."""

    id: str
    target: str
    dir: Path
    created_at: str
    expires_at: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        key, value = PROJECT_TAG
        return {key: value, RUN_ID_TAG: self.id, EXPIRES_TAG: self.expires_at}

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def save(self) -> None:
        """Write run.json whole or not at all: another process (`harness down`, a test) may read it meanwhile."""
        data = asdict(self)
        data["dir"] = str(self.dir)
        written = self.path("run.json.tmp")
        written.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(written, self.path("run.json"))


def create_run(target: str, run_id: str | None = None, max_hours: float = 4.0, base: Path | None = None) -> Run:
    run_id = validate_run_id(run_id) if run_id else new_run_id()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    directory = (base or runs_dir()) / run_id
    if (directory / "run.json").exists():
        return load_run(run_id, base)
    directory.mkdir(parents=True, exist_ok=True)
    run = Run(
        id=run_id,
        target=target,
        dir=directory,
        created_at=now.isoformat(),
        expires_at=(now + timedelta(hours=max_hours)).isoformat(),
    )
    run.save()
    return run


def load_run(run_id: str, base: Path | None = None) -> Run:
    directory = (base or runs_dir()) / validate_run_id(run_id)
    meta = directory / "run.json"
    if not meta.is_file():
        raise InputError(f"no run {run_id!r} under {directory.parent} (run.json missing)")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        data["dir"] = directory
        return Run(**data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{meta}: unreadable run metadata ({exc})") from None
