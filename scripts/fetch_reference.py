#!/usr/bin/env python3
"""Download the pinned upstream reference data (CRDs, chart values, IAM policies) that `harness check` reads.

Standard library only, so a fresh CI runner can call it before anything is installed:

    python3 scripts/fetch_reference.py --dest ../shared/reference

Every file comes from an exact tag (or commit) of its upstream repository. The Argo CD CRDs are Helm
templates upstream; their template lines are removed so the result is plain YAML. Files are downloaded
into a scratch folder first and moved into --dest only when all of them arrived, so a failed run never
leaves a half-updated copy. compatibility.yaml is transcribed by hand from upstream docs and is not
downloaded: keep the one you have.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
KARPENTER = ("aws/karpenter-provider-aws", "v1.14.1")
ARGO_HELM = ("argoproj/argo-helm", "argo-cd-10.1.1")
LB_CONTROLLER = ("kubernetes-sigs/aws-load-balancer-controller", "v3.5.0")
# The getting-started CloudFormation template only lives on main; this commit is the pinned snapshot.
KARPENTER_DOCS = ("aws/karpenter-provider-aws", "1d927085")


@dataclass(frozen=True)
class Pinned:
    """One upstream file: where it goes under --dest and where it comes from."""

    dest: str
    repo: str
    ref: str
    path: str
    strip_helm: bool = False

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/{self.ref}/{self.path}"


PINNED = (
    Pinned("crds/karpenter.sh_nodepools.yaml", *KARPENTER, "pkg/apis/crds/karpenter.sh_nodepools.yaml"),
    Pinned("crds/karpenter.sh_nodeclaims.yaml", *KARPENTER, "pkg/apis/crds/karpenter.sh_nodeclaims.yaml"),
    Pinned(
        "crds/karpenter.k8s.aws_ec2nodeclasses.yaml", *KARPENTER, "pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml"
    ),
    Pinned(
        "crds/argoproj.io_application.yaml",
        *ARGO_HELM,
        "charts/argo-cd/templates/crds/crd-application.yaml",
        strip_helm=True,
    ),
    Pinned(
        "crds/argoproj.io_applicationset.yaml",
        *ARGO_HELM,
        "charts/argo-cd/templates/crds/crd-applicationset.yaml",
        strip_helm=True,
    ),
    Pinned(
        "crds/argoproj.io_appproject.yaml",
        *ARGO_HELM,
        "charts/argo-cd/templates/crds/crd-appproject.yaml",
        strip_helm=True,
    ),
    Pinned("charts/karpenter-1.14.1.values.yaml", *KARPENTER, "charts/karpenter/values.yaml"),
    Pinned("charts/argo-cd-10.1.1.values.yaml", *ARGO_HELM, "charts/argo-cd/values.yaml"),
    Pinned(
        "charts/aws-load-balancer-controller-3.5.0.values.yaml",
        *LB_CONTROLLER,
        "helm/aws-load-balancer-controller/values.yaml",
    ),
    Pinned("iam/aws-load-balancer-controller-v3.5.0.iam_policy.json", *LB_CONTROLLER, "docs/install/iam_policy.json"),
    Pinned(
        "iam/karpenter-v1.14-getting-started.cloudformation.yaml",
        *KARPENTER_DOCS,
        "website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml",
    ),
)


class FetchError(Exception):
    """One line for the user: which file, from where, and what went wrong."""


def strip_helm_template_lines(text: str) -> str:
    """Drop the lines that are only Helm template actions ({{- if ... }}, {{- end }}, ...); keep the YAML."""
    kept = [line for line in text.splitlines(keepends=True) if not _is_template_line(line)]
    return "".join(kept)


def _is_template_line(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("{{") and stripped.endswith("}}")


def download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason} (does the pinned tag/path still exist?)") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"{url}: cannot connect ({exc.reason}); are you offline or behind a proxy?") from None
    except (TimeoutError, OSError) as exc:
        raise FetchError(f"{url}: download failed ({exc}); are you offline or behind a proxy?") from None


def render(item: Pinned, body: bytes, url: str) -> bytes:
    """Check the payload is what the pin promises and turn Helm templates into plain YAML."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError(f"{url}: not UTF-8 text; is the base URL a raw-file server?") from None
    if item.strip_helm:
        text = strip_helm_template_lines(text)
    if item.dest.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise FetchError(f"{url}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    elif "{{" in text and item.dest.startswith("crds/"):
        line = text[: text.index("{{")].count("\n") + 1
        raise FetchError(f"{url}: Helm template left at line {line} after stripping")
    return text.encode("utf-8")


def fetch_all(dest: Path, base_url: str, timeout: float, log: bool = True) -> list[Path]:
    """Download every pinned file; move them into dest only when all of them arrived."""
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix=".fetch-reference-", dir=dest) as scratch:
        for item in PINNED:
            url = item.url(base_url)
            staged = Path(scratch, item.dest)
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_bytes(render(item, download(url, timeout), url))
            if log:
                print(f"fetched {item.dest}  <- {item.repo}@{item.ref}:{item.path}")
        for item in PINNED:
            target = dest / item.dest
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(scratch, item.dest), target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True, help="folder to write crds/, charts/, iam/ into")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("REFERENCE_BASE_URL", DEFAULT_BASE_URL),
        help="raw-file server laid out as <base>/<owner>/<repo>/<ref>/<path> (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per download (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        written = fetch_all(args.dest, args.base_url, args.timeout)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.dest}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"{len(written)} files in {args.dest}")
    if not (args.dest / "compatibility.yaml").is_file():
        print(
            f"note: {args.dest}/compatibility.yaml is missing; it is transcribed from upstream docs, not downloaded",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
