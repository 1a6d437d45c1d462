"""`harness bench gate`: the gate's speed, side by side with other tools in one run, and its cost per manifest.

On this repo's infra/ + gitops/, one after the other: `harness check` (the CLI, interpreter start included),
checkov (terraform + kubernetes frameworks) and kubernetes-validate (gitops/ only: it reads no Terraform).
Then synthetic repos of N manifests (Deployments, Services, Ingresses, NodePools + EC2NodeClasses and a
Terraform root), generated into a temporary folder, through the CLI and through `check()` in process.

Targets: this repo < 0.5 s wall; >= 5x faster than checkov on the same tree; 10,000 manifests < 10 s.
A missed target prints the hotspots (cProfile) of the slow case.

Settings (environment, since sections take no flags):
  HARNESS_BENCH_GATE_SIZES   manifests per synthetic repo, comma-separated (default 100,1000,10000)
  HARNESS_BENCH_REPEAT       runs per measurement on this repo; the best counts (default 3)
  HARNESS_BENCH_CHECKOV      checkov executable (default: `checkov` beside this Python, then on PATH)
Results go to .runs/bench/gate-<UTC time>.json as well.

Over 600 lines on purpose: about a third is the text of the synthetic repository (Terraform and manifest
templates), which reads best next to the generator that fills it in.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.errors import InputError
from harness.gate.api import check
from harness.gate.loaders import load_manifests
from harness.gate.rules.versions import moving_tag
from harness.gate.schema import DEFAULT_KUBERNETES
from harness.project import reference_dir, repo_root, versions

REPO_TARGET_S = 0.5
CHECKOV_SPEEDUP_TARGET = 5.0
LARGE_MANIFESTS = 10_000
LARGE_TARGET_S = 10.0
DEFAULT_SIZES = (100, 1_000, LARGE_MANIFESTS)
HOTSPOTS = 12


@dataclass
class Measurement:
    """One timed command or call. seconds is None when the tool could not run (then `note` says why)."""

    name: str
    tree: str
    seconds: float | None
    manifests: int = 0
    exit_code: int | None = None
    note: str = ""


@dataclass
class Results:
    repo: list[Measurement] = field(default_factory=list)
    synthetic: list[Measurement] = field(default_factory=list)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    hotspots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# --- running the tools ------------------------------------------------------------------------------------


def timed_command(argv: Sequence[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Best wall time of `repeat` runs, the last exit code and the last stderr line (why it failed, if it did)."""
    best = float("inf")
    code, last_error = 0, ""
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
        best = min(best, time.perf_counter() - started)
        code = done.returncode
        last_error = (done.stderr.strip().splitlines() or [""])[-1]
    return best, code, last_error


def harness_cli(infra: Path, gitops: Path, reference: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness",
        "check",
        "--infra",
        str(infra),
        "--gitops",
        str(gitops),
        "--reference",
        str(reference),
        "--format",
        "json",
        "--output",
        str(output),
    ]


def measure_harness_cli(name: str, tree: str, argv: list[str], repeat: int, manifests: int) -> Measurement:
    seconds, code, error = timed_command(argv, repeat)
    if code not in (0, 1):  # 1 = findings, still a complete run
        return Measurement(name, tree, None, manifests, code, f"exit {code}: {error}")
    return Measurement(name, tree, seconds, manifests, code)


def find_checkov() -> str | None:
    if explicit := os.environ.get("HARNESS_BENCH_CHECKOV"):
        return explicit
    beside = Path(sys.executable).with_name("checkov")
    return str(beside) if beside.is_file() else shutil.which("checkov")


def measure_checkov(infra: Path, gitops: Path, repeat: int, manifests: int) -> Measurement:
    name, tree = "checkov (terraform + kubernetes)", "this repo"
    checkov = find_checkov()
    if checkov is None:
        return Measurement(name, tree, None, manifests, note="not installed: make bench installs it into .venv-bench")
    argv = [
        checkov,
        "-d",
        str(infra),
        "-d",
        str(gitops),
        "--framework",
        "terraform",
        "kubernetes",
        "-o",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
    ]
    # No telemetry, no platform lookups: the run is offline like the gate's.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "ERROR"}
    try:
        seconds, code, error = timed_command(argv, repeat, env)
    except OSError as exc:
        return Measurement(name, tree, None, manifests, note=f"cannot run {checkov}: {exc.strerror or exc}")
    if code not in (0, 1):  # 1 = failed checks
        return Measurement(name, tree, None, manifests, code, f"exit {code}: {error}")
    return Measurement(name, tree, seconds, manifests, code)


def measure_kubernetes_validate(gitops: Path, repeat: int, kubernetes: str, manifests: int) -> Measurement:
    name, tree = "kubernetes-validate --strict (gitops/ only)", "this repo"
    tool = Path(sys.executable).with_name("kubernetes-validate")
    if not tool.is_file():
        return Measurement(name, tree, None, manifests, note="not installed beside this Python")
    files = [str(p) for p in sorted(gitops.rglob("*.yaml"))]
    seconds, code, _error = timed_command([str(tool), "-k", f"{kubernetes}.0", "--strict", "--quiet", *files], repeat)
    # It exits non-zero for kinds it has no schema for (CRDs): the time of a full pass still counts.
    return Measurement(name, tree, seconds, manifests, code, "custom resources reported as unknown")


def count_manifests(gitops: Path) -> int:
    return len(load_manifests([gitops]))


# --- synthetic repositories -------------------------------------------------------------------------------

TERRAFORM_ROOT = """\
terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
  default_tags {
    tags = { project = "eks-platform" }
  }
}

locals {
  cluster_name = "bench"
  azs          = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

resource "aws_vpc" "this" {
  cidr_block = "10.0.0.0/16"
}

resource "aws_subnet" "private" {
  count             = 3
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet("10.0.0.0/16", 2, count.index)
  tags = {
    "kubernetes.io/role/internal-elb" = "1"
    "karpenter.sh/discovery"          = local.cluster_name
  }
}

resource "aws_subnet" "public" {
  count             = 3
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet("10.0.0.0/16", 6, 48 + count.index)
  tags = {
    "kubernetes.io/role/elb" = "1"
  }
}

resource "aws_security_group" "nodes" {
  name   = "${local.cluster_name}-nodes"
  vpc_id = aws_vpc.this.id
  tags = {
    "karpenter.sh/discovery" = local.cluster_name
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${local.cluster_name}-cluster"
  assume_role_policy = jsonencode({ Version = "2012-10-17", Statement = [] })
}

resource "aws_eks_cluster" "this" {
  name     = local.cluster_name
  version  = "KUBERNETES"
  role_arn = aws_iam_role.cluster.arn
  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = false
  }
}

resource "aws_iam_role" "karpenter_node" {
  name               = "${local.cluster_name}-karpenter-node"
  assume_role_policy = jsonencode({ Version = "2012-10-17", Statement = [] })
}
"""

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
    spec:
      nodeSelector:
        eks-platform/pool: {pool}
      tolerations:
        - key: eks-platform/pool
          value: {pool}
          effect: NoSchedule
      containers:
        - name: web
          image: {image}
          ports:
            - name: http
              containerPort: 80
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 128Mi
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: 80
      targetPort: http
"""

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    alb.ingress.kubernetes.io/scheme: internet-facing
    alb.ingress.kubernetes.io/target-type: ip
spec:
  ingressClassName: alb
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {name}
                port:
                  name: http
"""

POOL = """\
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: {pool}
spec:
  template:
    metadata:
      labels:
        eks-platform/pool: {pool}
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: {pool}
      taints:
        - key: eks-platform/pool
          value: {pool}
          effect: NoSchedule
      requirements:
        - key: karpenter.sh/capacity-type
          operator: In
          values: ["spot"]
        - key: kubernetes.io/arch
          operator: In
          values: ["amd64"]
      expireAfter: 24h
  limits:
    cpu: "32"
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 1m
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: {pool}
spec:
  amiSelectorTerms:
    - alias: {ami_alias}
  role: bench-karpenter-node
  subnetSelectorTerms:
    - tags:
        karpenter.sh/discovery: bench
  securityGroupSelectorTerms:
    - tags:
        karpenter.sh/discovery: bench
  metadataOptions:
    httpEndpoint: enabled
    httpPutResponseHopLimit: 1
    httpTokens: required
"""

INGRESS_CLASS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: alb
spec:
  controller: ingress.k8s.aws/alb
"""

APPS_PER_POOL = 25  # one NodePool + EC2NodeClass per 25 apps of 3 manifests: 77 manifests per group
GROUP = APPS_PER_POOL * 3 + 2


def generate_repo(root: Path, manifests: int, pins: dict[str, str]) -> int:
    """A repository of exactly `manifests` Kubernetes objects plus a Terraform root; returns files written."""
    (root / "infra" / "platform").mkdir(parents=True)
    (root / "infra" / "platform" / "main.tf").write_text(
        TERRAFORM_ROOT.replace("KUBERNETES", pins.get("kubernetes", DEFAULT_KUBERNETES)), encoding="utf-8"
    )
    (root / "versions.yaml").write_text("".join(f'{k}: "{v}"\n' for k, v in pins.items()), encoding="utf-8")
    ops, apps = root / "gitops" / "ops", root / "gitops" / "apps"
    ops.mkdir(parents=True)
    apps.mkdir()
    (ops / "ingressclass.yaml").write_text(INGRESS_CLASS, encoding="utf-8")
    # A moving-tag pin (this repo's game_2048_image is :latest) would make EKS028 warn on every Deployment,
    # and the bench would time the reporters rather than the checks.
    image = pins.get("game_2048_image", "")
    image = image if image and not moving_tag(image) else "public.ecr.aws/nginx/nginx:1.27"
    ami_alias = pins.get("karpenter_ami_alias", "al2023@v20260714")
    left, files, app = manifests - 1, 2, 0
    while left > 0:
        pool = f"pool-{app // APPS_PER_POOL:04d}"
        if app % APPS_PER_POOL == 0 and left >= 2:
            (ops / f"{pool}.yaml").write_text(POOL.format(pool=pool, ami_alias=ami_alias), encoding="utf-8")
            left -= 2
            files += 1
        name = f"app-{app:05d}"
        folder = apps / name
        folder.mkdir()
        for template, file in ((APP, "deployment.yaml"), (SERVICE, "service.yaml"), (INGRESS, "ingress.yaml")):
            if left == 0:
                break
            text = template.format(name=name, namespace=f"team-{app % 20:02d}", pool=pool, image=image)
            (folder / file).write_text(text, encoding="utf-8")
            left -= 1
            files += 1
        app += 1
    return files


# --- profiling --------------------------------------------------------------------------------------------


def hotspots(call: Callable[[], object]) -> list[dict[str, Any]]:
    """The functions with the most cumulative time, the gate's own code first."""
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, function), (_calls, ncalls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({function})",
                "calls": ncalls,
                "own_s": round(own, 4),
                "cumulative_s": round(cumulative, 4),
            }
        )
    rows.sort(key=lambda row: row["cumulative_s"], reverse=True)
    ours = [row for row in rows if row["function"].startswith("harness/gate/")]
    theirs = [row for row in rows if not row["function"].startswith(("harness/", "<", "~"))]
    return ours[:HOTSPOTS] + sorted(theirs, key=lambda row: row["own_s"], reverse=True)[:HOTSPOTS]


def _short(file: str) -> str:
    """A profile row's file without this machine's folders: harness/..., site-packages relative, or stdlib."""
    for marker, prefix in (("/harness/", "harness/"), ("/site-packages/", ""), ("/lib/python", "python")):
        if marker in file:
            return prefix + file.rsplit(marker, 1)[1]
    return file


# --- the section ------------------------------------------------------------------------------------------


def sizes_from_env() -> list[int]:
    raw = os.environ.get("HARNESS_BENCH_GATE_SIZES", "")
    if not raw.strip():
        return list(DEFAULT_SIZES)
    try:
        sizes = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise InputError(f"HARNESS_BENCH_GATE_SIZES={raw!r}: expected numbers such as 100,1000,10000") from None
    if not sizes or sizes[0] < 10:
        raise InputError(f"HARNESS_BENCH_GATE_SIZES={raw!r}: sizes must be 10 manifests or more")
    return sizes


def repeat_from_env() -> int:
    raw = os.environ.get("HARNESS_BENCH_REPEAT", "3")
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"HARNESS_BENCH_REPEAT={raw!r}: expected a whole number >= 1")
    return int(raw)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    root, reference = repo_root(), reference_dir()
    infra, gitops = root / "infra", root / "gitops"
    pins, sizes, repeat = versions(root), sizes_from_env(), repeat_from_env()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as scratch:
        work = Path(scratch)
        repo_manifests = count_manifests(gitops)
        console.print(f"gate bench: this repo ({repo_manifests} manifests), best of {repeat} ...")
        results.repo = [
            measure_harness_cli(
                "harness check (CLI)",
                "this repo",
                harness_cli(infra, gitops, reference, work / "repo.json"),
                repeat,
                repo_manifests,
            ),
            measure_checkov(infra, gitops, repeat, repo_manifests),
            measure_kubernetes_validate(gitops, repeat, pins.get("kubernetes", DEFAULT_KUBERNETES), repo_manifests),
        ]
        for size in sizes:
            console.print(f"gate bench: synthetic repo of {size:,} manifests ...")
            tree = work / f"synthetic-{size}"
            files = generate_repo(tree, size, pins)
            label = f"{size:,} manifests, {files:,} files"
            cli = measure_harness_cli(
                "harness check (CLI)",
                label,
                harness_cli(tree / "infra", tree / "gitops", reference, work / f"synthetic-{size}.json"),
                1,
                size,
            )
            started = time.perf_counter()
            report = check([tree / "infra"], [tree / "gitops"], reference)
            in_process = Measurement(
                "check() in process",
                label,
                time.perf_counter() - started,
                size,
                note=f"{len(report.findings)} findings",
            )
            results.synthetic += [cli, in_process]
        judge(results, sizes)
        if not all(target["met"] for target in results.targets.values()):
            profile_misses(results, infra, gitops, reference, work)
    print_results(console, results)
    written = write_json(root, results, sizes, repeat)
    console.print(f"results: {written.relative_to(root)}")
    return 0 if all(target["met"] for target in results.targets.values()) else 1


def _seconds(measurements: list[Measurement], name: str, tree_prefix: str = "") -> float | None:
    for m in measurements:
        if m.name == name and m.tree.startswith(tree_prefix):
            return m.seconds
    return None


def judge(results: Results, sizes: list[int]) -> None:
    ours = _seconds(results.repo, "harness check (CLI)")
    checkov = _seconds(results.repo, "checkov (terraform + kubernetes)")
    results.targets["this repo wall"] = {
        "target": f"< {REPO_TARGET_S} s",
        "value": ours,
        "met": ours is not None and ours < REPO_TARGET_S,
    }
    speedup = checkov / ours if checkov and ours else None
    results.targets["speed-up over checkov"] = {
        "target": f">= {CHECKOV_SPEEDUP_TARGET:g}x",
        "value": speedup,
        "met": speedup is not None and speedup >= CHECKOV_SPEEDUP_TARGET,
        **({} if checkov else {"note": "checkov did not run"}),
    }
    if LARGE_MANIFESTS in sizes:
        large = _seconds(results.synthetic, "harness check (CLI)", f"{LARGE_MANIFESTS:,} ")
        results.targets[f"{LARGE_MANIFESTS:,} manifests wall"] = {
            "target": f"< {LARGE_TARGET_S:g} s",
            "value": large,
            "met": large is not None and large < LARGE_TARGET_S,
        }


def profile_misses(results: Results, infra: Path, gitops: Path, reference: Path, work: Path) -> None:
    if not results.targets["this repo wall"]["met"] or not results.targets["speed-up over checkov"]["met"]:
        results.hotspots["this repo"] = hotspots(lambda: check([infra], [gitops], reference))
    large = results.targets.get(f"{LARGE_MANIFESTS:,} manifests wall")
    if large is not None and not large["met"]:
        tree = work / f"synthetic-{LARGE_MANIFESTS}"
        results.hotspots[f"{LARGE_MANIFESTS:,} manifests"] = hotspots(
            lambda: check([tree / "infra"], [tree / "gitops"], reference)
        )


def linearity(results: Results) -> list[tuple[int, float, float | None]]:
    """(manifests, µs per manifest, marginal µs per manifest since the previous size) for check() in process."""
    points = [(m.manifests, m.seconds) for m in results.synthetic if m.name == "check() in process" and m.seconds]
    rows: list[tuple[int, float, float | None]] = []
    for index, (count, seconds) in enumerate(points):
        marginal = None
        if index:
            previous_count, previous_seconds = points[index - 1]
            marginal = (seconds - previous_seconds) / (count - previous_count) * 1e6
        rows.append((count, seconds / count * 1e6, marginal))
    return rows


def print_results(console: Console, results: Results) -> None:
    ours = _seconds(results.repo, "harness check (CLI)")
    table = Table(title="harness check vs other tools, same tree, same run")
    for column in ("tool", "tree", "manifests", "wall s", "vs harness check"):
        table.add_column(column, justify="right" if column in ("manifests", "wall s", "vs harness check") else "left")
    for m in results.repo:
        ratio = f"{m.seconds / ours:.1f}x" if m.seconds and ours else ""
        wall = f"{m.seconds:.3f}" if m.seconds is not None else f"[yellow]{m.note}[/]"
        table.add_row(m.name, m.tree, str(m.manifests), wall, ratio)
    console.print(table)

    scale = Table(title="synthetic repos: cost per manifest")
    for column in ("measurement", "tree", "wall s", "µs / manifest", "marginal µs / manifest", "note"):
        scale.add_column(column, justify="left" if column in ("measurement", "tree", "note") else "right")
    per_manifest = {count: (each, marginal) for count, each, marginal in linearity(results)}
    for m in results.synthetic:
        each, marginal = per_manifest.get(m.manifests, (None, None)) if m.name == "check() in process" else (None, None)
        scale.add_row(
            m.name,
            m.tree,
            f"{m.seconds:.3f}" if m.seconds is not None else m.note,
            f"{each:.0f}" if each else "",
            f"{marginal:.0f}" if marginal else "",
            m.note if m.seconds is not None else "",
        )
    console.print(scale)
    rows = linearity(results)
    marginals = [marginal for _count, _each, marginal in rows if marginal]
    if len(marginals) >= 2:
        console.print(
            f"linearity: marginal cost of the largest step / of the smallest step = "
            f"{marginals[-1] / marginals[0]:.2f} (1.00 = linear)"
        )

    targets = Table(title="targets")
    for column in ("target", "wanted", "measured", "met"):
        targets.add_column(column)
    for name, target in results.targets.items():
        value = target["value"]
        shown = "n/a" if value is None else (f"{value:.1f}x" if name.startswith("speed") else f"{value:.3f} s")
        targets.add_row(name, target["target"], shown, "[green]yes[/]" if target["met"] else "[red]no[/]")
    console.print(targets)
    for where, rows_ in results.hotspots.items():
        spots = Table(title=f"hotspots: {where} (cProfile; gate code by cumulative time, then libraries by own time)")
        for column in ("function", "calls", "own s", "cumulative s"):
            spots.add_column(column, justify="left" if column == "function" else "right")
        for row in rows_:
            spots.add_row(row["function"], str(row["calls"]), f"{row['own_s']:.3f}", f"{row['cumulative_s']:.3f}")
        console.print(spots)


def write_json(root: Path, results: Results, sizes: list[int], repeat: int) -> Path:
    folder = root / ".runs" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"gate-{stamp}.json"
    data = {
        "section": "gate",
        "when": stamp,
        "machine": {"python": platform.python_version(), "system": platform.platform(), "cpus": os.cpu_count()},
        "sizes": sizes,
        "repeat": repeat,
        "repo": [asdict(m) for m in results.repo],
        "synthetic": [asdict(m) for m in results.synthetic],
        "linearity": [
            {"manifests": c, "us_per_manifest": e, "marginal_us_per_manifest": m} for c, e, m in linearity(results)
        ],
        "targets": results.targets,
        "hotspots": results.hotspots,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
