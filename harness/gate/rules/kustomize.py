"""Kustomize as kustomize and Argo CD apply it: patches that would fail the build."""

from __future__ import annotations

from collections.abc import Iterator

from harness.gate.model import Model
from harness.gate.rules import Issue, rule


@rule("EKS040", "JSON6902 patches apply under RFC 6902")
def json6902(model: Model) -> Iterator[Issue]:
    """kustomize and Argo CD apply JSON6902 patches (`patches`, `patchesJson6902` of a kustomization, an
    Application's `source.kustomize.patches`) exactly as RFC 6902 says: a `replace` or `remove` of a path
    that does not exist, an `add` under a parent that does not exist, or a failed `test` is an error, and
    the whole build fails ("replace operation does not apply: doc is missing key"), so Argo CD syncs
    nothing of that Application. A misspelt field in a patch path is the usual cause. The gate applies the
    patches with the same semantics (the jsonpatch library) and reports each one that cannot apply; the
    object is then judged as it was before the patch."""
    seen: set[tuple[str, int, str]] = set()
    for where, why in model.rendered.patch_problems:
        key = (str(where.file), where.line, why)
        if key in seen:  # one base built for several Applications reports once
            continue
        seen.add(key)
        yield Issue(why, where, "fix the patch path (use `add` to create a field that may be absent)")
