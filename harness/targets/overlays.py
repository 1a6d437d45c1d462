"""The local target's overlays (infra/targets.yaml local_target.overlays) as files: what gitops/ would hold on the
local target, for whatever serves gitops/ to Argo CD there (the Git endpoint's snapshot). On AWS the files are
served as they are."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.project import LocalTarget


def overlaid_files(gitops: Path, target: LocalTarget) -> dict[Path, str]:
    """Each YAML file under `gitops` that an overlay changes, with its overlaid text (comments are not kept)."""
    changed: dict[Path, str] = {}
    for path in sorted([*gitops.rglob("*.yaml"), *gitops.rglob("*.yml")]):
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
        overlaid = [target.overlaid(doc) if isinstance(doc, dict) else doc for doc in docs]
        if overlaid != docs:
            changed[path] = yaml.safe_dump_all(overlaid, sort_keys=False)
    return changed
