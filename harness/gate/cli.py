"""`harness check`: the offline conformance gate between Terraform, Helm values and GitOps manifests."""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import project
from harness.errors import InputError
from harness.gate import report as reporters
from harness.gate.api import check, select_rules
from harness.gate.rules import Rule

DESCRIPTION = (
    "Check the contracts between the layers offline. Exit 0: no errors; 1: errors found; 2: input could not be read."
)


def register(subparsers: Any) -> None:
    summary = "offline conformance gate: Terraform <-> Helm values <-> GitOps manifests"
    parser = subparsers.add_parser("check", help=summary, description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--infra",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="Terraform directory (repeatable; default: infra/ of this repo)",
    )
    parser.add_argument(
        "--gitops",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="GitOps directory (repeatable; default: gitops/ of this repo)",
    )
    parser.add_argument("--reference", type=Path, metavar="DIR", help="pinned upstream data (CRDs, chart values, IAM)")
    parser.add_argument(
        "--plan-json",
        type=Path,
        metavar="FILE",
        action="append",
        help="`terraform show -json` output of a root: every value of that root comes from it "
        "(repeat for several roots)",
    )
    parser.add_argument(
        "--render-charts",
        action="store_true",
        help="render the pinned charts with the pinned helm and check the objects (EKS044, EKS045)",
    )
    parser.add_argument("--format", choices=sorted(reporters.FORMATS), default="text")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--select", action="append", default=[], metavar="RULE", help="run only these rules")
    parser.add_argument("--ignore", action="append", default=[], metavar="RULE", help="skip these rules")
    parser.add_argument("--explain", metavar="RULE", help="show a rule's documentation ('all' lists every rule)")
    parser.set_defaults(func=run)


def collect_garbage_only_at_exit() -> None:
    """For a process that runs one check and exits. A check creates many long-lived objects and little cyclic
    garbage: the garbage collector's passes free next to nothing, yet they and the collection at interpreter
    shutdown cost a fifth of the run. Objects still alive at exit are frozen so that last collection skips them."""
    gc.disable()
    atexit.register(gc.freeze)


def explain(rule_id: str) -> str:
    rules = select_rules()
    if rule_id.lower() == "all":
        return "\n".join(f"{r.id}  {r.severity.value:7}  {r.title}" for r in rules) + "\n"
    found = [r for r in rules if r.id == rule_id.upper()]
    if not found:
        raise InputError(f"unknown rule {rule_id} (see `harness check --explain all`)")
    return rule_markdown(found[0])


def rule_markdown(rule: Rule) -> str:
    return f"### {rule.id}: {rule.title}\n\nSeverity: **{rule.severity.value}**\n\n{rule.doc}\n"


def run(args: argparse.Namespace) -> int:
    out = Console(highlight=False, soft_wrap=True)
    if args.explain:
        doc = explain(args.explain)
        if args.explain.lower() == "all":
            out.print(doc.rstrip("\n"), markup=False)
        else:
            from rich.markdown import Markdown  # here: importing it costs a check 30 ms

            out.print(Markdown(doc))
        return 0
    infra, gitops = list(args.infra), list(args.gitops)
    if not infra and not gitops:
        root = project.repo_root()
        infra, gitops = [root / "infra"], [root / "gitops"]
    result = check(
        infra,
        gitops,
        args.reference,
        select=set(args.select),
        ignore=set(args.ignore),
        plan_json=args.plan_json,
        render_charts=args.render_charts,
    )
    for note in result.notes:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"note: {note}", markup=False)
    rendered = reporters.FORMATS[args.format](result)
    if args.output is not None:
        try:
            args.output.write_text(rendered, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write ({exc.__class__.__name__})") from None
        if args.format != "text":
            out.print(reporters.text(result).splitlines()[-1], markup=False)
    else:
        sys.stdout.write(rendered)
    return 1 if result.errors else 0
