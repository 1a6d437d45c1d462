#!/usr/bin/env python3
"""Record the Kubernetes objects the harness's judges read, from a live cluster, as unit-test fixtures.

    python scripts/capture_kube_objects.py --run-id r20261129-0211-ab12 --out tests/fixtures/kube/recorded/synced
    python scripts/capture_kube_objects.py --kubeconfig ~/.kube/config --out /tmp/snapshot

Each file is one GET of a list endpoint through `kubectl get --raw`, so it is the API server's own response:
core lists (NodeList, PodList, EventList) carry no ``kind`` on their items, custom resources do. Two things
are changed, both said in the file's header: ``metadata.managedFields`` is dropped (server bookkeeping that
`kubectl get -o yaml` hides too, and no judge reads it), and absolute paths of the machine that recorded
them (the run directory, this checkout, the home folder) become placeholders. Run ids, ports,
uids and timestamps stay as the API served them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HEADER = "# recorded from a local-target run by scripts/capture_kube_objects.py"
# (file, API path) of every list the judges read (harness.kube.core/argocd/ingress/karpenter).
CORE_LISTS = (
    ("nodes", "/api/v1/nodes"),
    ("pods_kube-system", "/api/v1/namespaces/kube-system/pods"),
    ("pods_argocd", "/api/v1/namespaces/argocd/pods"),
    ("pods_game-2048", "/api/v1/namespaces/game-2048/pods"),
    ("applications", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"),
    ("applicationsets", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applicationsets"),
    ("ingresses", "/apis/networking.k8s.io/v1/ingresses"),
    ("events_game-2048", "/api/v1/namespaces/game-2048/events"),
    ("events_argocd", "/api/v1/namespaces/argocd/events"),
    ("events_default", "/api/v1/namespaces/default/events"),
)
# Karpenter's kinds, recorded only where their CRDs are installed: (file, CRD name, API path).
KARPENTER_LISTS = (
    ("nodepools", "nodepools.karpenter.sh", "/apis/karpenter.sh/v1/nodepools"),
    ("ec2nodeclasses", "ec2nodeclasses.karpenter.k8s.aws", "/apis/karpenter.k8s.aws/v1/ec2nodeclasses"),
    ("nodeclaims", "nodeclaims.karpenter.sh", "/apis/karpenter.sh/v1/nodeclaims"),
)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


class CaptureError(Exception):
    """A one-line reason the capture cannot go on."""


def placeholders(kubeconfig: Path, run_dir: Path | None) -> list[tuple[str, str]]:
    """This machine's paths to scrub, longest first, each with the placeholder written in its place. Only these:
    the paths inside containers (``/tmp``, ``/home/argocd``) are part of the objects and stay."""
    pairs = [
        (run_dir, "<run-dir>"),
        (run_dir.parent if run_dir else None, "<runs-dir>"),
        (kubeconfig.parent, "<kubeconfig-dir>"),
        (REPO, "<repo>"),
        (Path.home(), "~"),
    ]
    found = {str(path.resolve()): text for path, text in pairs if path is not None and str(path.resolve()) != "/"}
    return sorted(found.items(), key=lambda pair: -len(pair[0]))


def scrub(value: Any, paths: list[tuple[str, str]]) -> Any:
    """``value`` without ``managedFields`` and with this machine's paths replaced by placeholders."""
    if isinstance(value, dict):
        return {key: scrub(item, paths) for key, item in value.items() if key != "managedFields"}
    if isinstance(value, list):
        return [scrub(item, paths) for item in value]
    if isinstance(value, str):
        for path, text in paths:
            value = re.sub(rf"{re.escape(path)}(?=/|$|[^\w.-])", text, value)
        return value
    return value


def get(kubectl: str, kubeconfig: Path, path: str) -> dict[str, Any] | None:
    """The API's JSON for ``path``, or None on 404; CaptureError on anything else."""
    done = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "get", "--raw", path],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        if "NotFound" in done.stderr or "(NotFound)" in done.stderr:
            return None
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CaptureError(f"kubectl get --raw {path} failed: {last}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def capture(
    kubectl: str, kubeconfig: Path, out: Path, run_dir: Path | None, note: str, only: list[str] | None = None
) -> list[str]:
    """Write one YAML file per list into ``out`` (only those named in ``only``, if given); returns the files."""
    crds = get(kubectl, kubeconfig, CRDS) or {"items": []}
    installed = {crd["metadata"]["name"] for crd in crds.get("items", [])}
    lists = [*CORE_LISTS, *((name, path) for name, crd, path in KARPENTER_LISTS if crd in installed)]
    lists = [(name, path) for name, path in lists if not only or name in only]
    paths = placeholders(kubeconfig, run_dir)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.mkdir(parents=True, exist_ok=True)
    # All lists at once: the files are one moment of the cluster as near as separate GETs allow (a scale-out's
    # pods, NodeClaims and nodes move within a second).
    with ThreadPoolExecutor(max_workers=len(lists) or 1) as pool:
        responses = list(pool.map(lambda listed: get(kubectl, kubeconfig, listed[1]), lists))
    written = []
    for (name, path), served in zip(lists, responses, strict=True):
        if served is None:
            continue
        header = [
            f"{HEADER} at {when}: GET {path}",
            "# metadata.managedFields dropped; this machine's paths scrubbed (to <run-dir>, <repo>, ~ where any).",
            *(f"# {line}" for line in note.splitlines() if line.strip()),
        ]
        body = yaml.safe_dump(scrub(served, paths), sort_keys=False, width=120)
        (out / f"{name}.yaml").write_text("\n".join(header) + "\n" + body, encoding="utf-8")
        written.append(f"{name}.yaml")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="a local-target run (its cluster/kubeconfig under HARNESS_RUNS_DIR)")
    source.add_argument("--kubeconfig", type=Path, help="any kubeconfig")
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/kube/recorded", help="folder to write")
    parser.add_argument("--note", default="", help="a line for the header: the state the cluster was in")
    names = [name for name, _ in CORE_LISTS] + [name for name, _, _ in KARPENTER_LISTS]
    parser.add_argument("--only", action="append", choices=names, help="record only this list (repeatable)")
    args = parser.parse_args(argv)
    try:
        from harness.run import load_run
        from harness.toolchain.build import locate

        run_dir = None
        if args.run_id:
            run_dir = load_run(args.run_id).dir
            kubeconfig = run_dir / "cluster" / "kubeconfig"
        else:
            kubeconfig = args.kubeconfig.expanduser()
        if not kubeconfig.is_file():
            raise CaptureError(f"{kubeconfig}: no kubeconfig there (is the run's cluster up?)")
        kubectl = os.environ.get("KUBECTL") or str(locate("kubectl"))
        written = capture(
            kubectl, kubeconfig.resolve(), args.out, run_dir.resolve() if run_dir else None, args.note, args.only
        )
    except (CaptureError, OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"capture_kube_objects: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the harness's own errors (InputError, EnvironmentProblem) are one line too
        print(f"capture_kube_objects: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} file(s) to {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
