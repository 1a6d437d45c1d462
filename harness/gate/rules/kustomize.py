"""Kustomize as kustomize and Argo CD apply it: patches that would fail the build."""

from __future__ import annotations

from collections.abc import Iterator

from harness.gate.model import Model
from harness.gate.rules import Issue, rule


@rule("EKS040", "JSON6902 patches apply under RFC 6902")
def json6902(model: Model) -> Iterator[Issue]:
    """JSON6902 patches (`patches`, `patchesJson6902` of a kustomization, an Application's
    `source.kustomize.patches`) must apply as RFC 6902 says: a `replace` or `remove` of a path that does not
    exist, an `add` under a parent that does not exist, or a failed `test` is an error. kustomize (and Argo CD,
    which runs it) fails the whole build on all of these ("error in remove for path", "add operation does not
    apply: doc is missing path"), so nothing of that Application syncs; a `replace` of a missing key is the
    one case kustomize 5 lets through, as an `add` (evanphx/json-patch v4), which leaves the field the patch
    meant to change as it was and adds a misspelt sibling beside it. A misspelt patch path is the usual
    cause. The gate applies the patches with the jsonpatch library, reports each one RFC 6902 refuses, and
    judges the object as kustomize builds it (an oracle test compares with the pinned kustomize)."""
    seen: set[tuple[str, int, str]] = set()
    for where, why in model.rendered.patch_problems:
        key = (str(where.file), where.line, why)
        if key in seen:  # one base built for several Applications reports once
            continue
        seen.add(key)
        yield Issue(why, where, "fix the patch path (use `add` to create a field that may be absent)")
