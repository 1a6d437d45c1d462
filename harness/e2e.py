"""`harness e2e` and `harness sweep`: the staged end-to-end run on a real account (or the emulator), and
the tag sweep on its own.

Stages, in order (each skippable with --skip, selectable with --only, resumable with --resume: a stage
that passed is recorded in the run directory's stages.json and not repeated):

1. platform   terraform apply infra/platform (harness.stack.Stack)
2. addons     terraform apply infra/addons (LB controller, Argo CD, Karpenter, bootstrap Application)
3. access     EKS endpoint + token with boto3; a 0600 kubeconfig in the run directory for your kubectl
4. checks     every AWS judgement (harness.aws_checks) and the Kubernetes ones: Argo CD synced, ops
              placement, the ALB chain up to the game's page
5. karpenter  scale game-2048 to the documented count, judge the spot scale-out and its timeline, scale
              back, judge consolidation
6. teardown   harness.teardown: controller-aware order, terraform destroy, tag sweep

Before anything is created: the account named by E2E_AWS_ACCOUNT_ID must be the credentials' account
(STS), the region must be explicit, and the user confirms what will be created and its rough hourly cost
(or passes --yes; without a terminal the run refuses). A watchdog stops the run past --max-minutes and
tears down. Teardown runs after any failure; on Ctrl-C too (a second Ctrl-C leaves it to
`make e2e-down RUN_ID=...`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import report as rpt
from harness import sweep as sweeper
from harness import teardown as td
from harness.errors import EnvironmentProblem, HarnessError, InputError
from harness.project import TargetCapabilities, capabilities, read_yaml, repo_root, versions
from harness.results import Result, Status
from harness.run import Run, load_run, runs_dir, validate_run_id

if TYPE_CHECKING:  # harness.stack imports this module for `harness down`
    from harness.karpenter import ScaleOutTimeline
    from harness.kube import KubeReader
    from harness.stack import Stack
    from harness.terraform import Terraform

T = TypeVar("T")
STAGES = ("platform", "addons", "access", "checks", "karpenter", "teardown")
KUBERNETES_STAGES = frozenset({"addons", "access", "karpenter"})
KUBERNETES_CAPABILITY = "kubernetes"
STAGES_FILE = "stages.json"
ACCOUNT_ENV = "E2E_AWS_ACCOUNT_ID"
EMULATOR_ACCOUNT = "123456789012"  # moto's fixed account id
DEFAULT_MAX_MINUTES = 120.0
GITOPS_REPO_ENV = "HARNESS_GITOPS_REPO_URL"
GITOPS_REVISION_ENV = "HARNESS_GITOPS_REVISION"
GAME_NAMESPACE, GAME_DEPLOYMENT = "game-2048", "game-2048"
GAME_IMAGE_PIN = "game_2048_image"  # versions.yaml key of the image the Deployment must run
SCALE_OUT_ANNOTATION = "eks-platform/scale-out-replicas"
KARPENTER_NODEPOOL = "apps"
EXPECTED_APPLICATIONS = ("ops-karpenter", "game-2048")

# Rough on-demand list prices in USD per hour (us-east-1/eu-west-1 are within ~10% of these).
HOURLY_PRICES = {
    "eks_control_plane": 0.10,
    "ops_node_m7i_large": 0.1008,
    "nat_gateway": 0.045,
    "public_ipv4": 0.005,
    "alb": 0.0225 + 0.008,  # hour + one LCU
    "spot_node_xlarge": 0.07,  # c/m/r xlarge spot, typical
}


# ---------------------------------------------------------------- safety (pure decisions + thin reads)


def expected_account(target: str, env: Mapping[str, str]) -> str:
    """The account the caller named. On the emulator moto's fixed id unless named; on aws it must be named."""
    named = env.get(ACCOUNT_ENV, "").strip()
    if named:
        if not (named.isdigit() and len(named) == 12):
            raise InputError(f"{ACCOUNT_ENV}={named!r}: an AWS account id is 12 digits")
        return named
    if target == "emulator":
        return EMULATOR_ACCOUNT
    raise EnvironmentProblem(
        f"the aws target creates billable resources: set {ACCOUNT_ENV}=<12-digit account id> to name the account"
    )


def check_account(expected: str, actual: str, target: str) -> None:
    if actual != expected:
        raise EnvironmentProblem(
            f"the credentials are for account {actual}, but {ACCOUNT_ENV} names {expected}: refusing to touch {target}"
        )


def caller_account(sts: Any, target: str) -> str:
    try:
        return str(sts.get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        first = str(exc).splitlines()[0]
        raise EnvironmentProblem(f"cannot confirm the {target} account with sts:GetCallerIdentity: {first}") from None


def resolve_region(target: str, explicit: str | None, env: Mapping[str, str], emulator_region: str) -> str:
    """--region, else AWS_REGION; never a silent default on aws (the emulator's region is its own)."""
    region = explicit or env.get("AWS_REGION", "").strip()
    if region:
        return region
    if target == "emulator":
        return emulator_region
    raise EnvironmentProblem("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1); there is no default")


@dataclass(frozen=True)
class CostLine:
    what: str
    count: float
    hourly: float

    @property
    def total(self) -> float:
        return self.count * self.hourly


def cost_lines(ops_nodes: int = 2, spot_nodes: int = 2, stages: Sequence[str] = STAGES) -> list[CostLine]:
    """What the run creates that costs money per hour (pure; rough list prices, see HOURLY_PRICES)."""
    lines = [
        CostLine("EKS control plane", 1, HOURLY_PRICES["eks_control_plane"]),
        CostLine("ops node group instances (m7i.large, on-demand)", ops_nodes, HOURLY_PRICES["ops_node_m7i_large"]),
        CostLine("NAT gateway (plus $0.045/GB processed)", 1, HOURLY_PRICES["nat_gateway"]),
        CostLine("public IPv4 addresses (NAT, ALB)", 3, HOURLY_PRICES["public_ipv4"]),
    ]
    if "addons" in stages:
        lines.append(CostLine("Application Load Balancer for game-2048", 1, HOURLY_PRICES["alb"]))
    if "karpenter" in stages:
        lines.append(
            CostLine(
                "Karpenter spot nodes during the experiment (c/m/r xlarge)",
                spot_nodes,
                HOURLY_PRICES["spot_node_xlarge"],
            )
        )
    return lines


def creation_summary(run: Run, region: str, account: str, stages: Sequence[str], max_minutes: float) -> list[str]:
    lines = cost_lines(stages=stages)
    hourly = sum(line.total for line in lines)
    out = [
        f"run {run.id}: target {run.target}, account {account}, region {region}",
        f"stages: {', '.join(stages)}",
        f"creates (every resource tagged project=eks-platform, run-id={run.id}, expires-at={run.expires_at}):",
        "  VPC (public and private subnets across zones, 1 NAT gateway), EKS cluster with KMS secrets encryption",
        "  and control-plane log group, ops managed node group, IAM roles (Pod Identity), Karpenter interruption queue",
    ]
    if "addons" in stages:
        out.append("  add-ons: AWS Load Balancer Controller, Argo CD, Karpenter; Argo CD then creates the game's ALB")
    if "karpenter" in stages:
        out.append("  Karpenter spot instances for the scale-out experiment (removed again by consolidation)")
    out += [f"  ~${line.total:.3f}/h  {line.what}" + (f" x{line.count:g}" if line.count != 1 else "") for line in lines]
    watchdog_cost = hourly * max_minutes / 60
    if run.target == "emulator":
        out.append(f"cost: none on the emulator (the same on aws: ~${hourly:.2f}/hour)")
    else:
        out.append(
            f"rough cost: ~${hourly:.2f}/hour; the watchdog tears down after {max_minutes:g} min "
            f"(<= ~${watchdog_cost:.2f})"
        )
    return out


def confirm(yes: bool, stdin: TextIO, ask: Callable[[str], str], account: str) -> None:
    """--yes, or the user types the account id at a terminal; no terminal and no --yes: refuse."""
    if yes:
        return
    if not stdin.isatty():
        raise InputError("no terminal to confirm on (stdin is not a TTY): pass --yes to create these resources")
    answer = ask(f"type the account id {account} to create these resources (anything else aborts): ").strip()
    if answer != account:
        raise InputError("not confirmed: nothing was created")


# ---------------------------------------------------------------- stage selection (pure)


@dataclass(frozen=True)
class Selection:
    stage: str
    status: str = ""  # "" = run it; else the report status (skipped / n/a) with `why`
    why: str = ""


def select_stages(
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    resume: bool = False,
    passed_before: Sequence[str] = (),
    target: str,
    kubernetes_unsupported: str = "",
) -> list[Selection]:
    """Which stages run, and why the others do not. Teardown runs unless excluded, even after failures."""
    unknown = sorted((set(only) | set(skip)) - set(STAGES))
    if unknown:
        raise InputError(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(STAGES)}")
    chosen = []
    for stage in STAGES:
        if only and stage not in only:
            chosen.append(Selection(stage, rpt.SKIPPED, f"not selected (--only {','.join(only)})"))
        elif stage in skip:
            chosen.append(Selection(stage, rpt.SKIPPED, f"skipped (--skip {stage})"))
        elif kubernetes_unsupported and stage in KUBERNETES_STAGES:
            chosen.append(Selection(stage, rpt.NOT_APPLICABLE, f"not applicable on {target}: {kubernetes_unsupported}"))
        elif resume and stage in passed_before and stage != "teardown":
            chosen.append(Selection(stage, rpt.SKIPPED, "passed in an earlier attempt (--resume)"))
        else:
            chosen.append(Selection(stage))
    return chosen


# ---------------------------------------------------------------- watchdog and stage records


@dataclass
class Watchdog:
    """Stops the run past `max_seconds`: stages check it before starting, waits get `remaining()` as their
    bound and Terraform polls `reason()` while it runs (it then stops gracefully)."""

    max_seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return max(0.0, self.max_seconds - self.elapsed())

    def reason(self) -> str | None:
        if self.elapsed() >= self.max_seconds:
            return f"watchdog: the run exceeded --max-minutes {self.max_seconds / 60:g}"
        return None

    def bound(self, timeout: float) -> float:
        """A wait's timeout, cut to what the watchdog leaves (at least 1 s so the wait can still judge once)."""
        return max(1.0, min(timeout, self.remaining()))


@dataclass(frozen=True)
class StageOutcome:
    why: str
    results: tuple[Result, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def read_stage_log(run: Run) -> dict[str, dict[str, Any]]:
    path = run.path(STAGES_FILE)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: unreadable stage record ({exc})") from None
    return {str(k): dict(v) for k, v in data.items()}


def write_stage_log(run: Run, records: Sequence[rpt.StageRecord]) -> None:
    log = read_stage_log(run)
    for record in records:
        log[record.name] = {
            "status": record.status,
            "why": record.why,
            "seconds": record.seconds,
            "at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        }
    run.path(STAGES_FILE).write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")


def passed_stages(run: Run) -> list[str]:
    return [name for name, row in read_stage_log(run).items() if row.get("status") == rpt.PASSED]


def execute_stages(
    selections: Sequence[Selection],
    actions: Mapping[str, Callable[[], StageOutcome]],
    watchdog: Watchdog,
    *,
    on_record: Callable[[rpt.StageRecord], None] = lambda _r: None,
    clock: Callable[[], float] = time.monotonic,
) -> list[rpt.StageRecord]:
    """Run the selected stages in order. After a failure, an interrupt or the watchdog, the remaining
    stages are "not run", except teardown, which always runs when selected."""
    records: list[rpt.StageRecord] = []
    stop_reason = ""
    interrupted = False
    for selection in selections:
        stage = selection.stage
        if selection.status:
            record = rpt.StageRecord(stage, selection.status, selection.why)
        elif stop_reason and stage != "teardown":
            record = rpt.StageRecord(stage, rpt.NOT_RUN, f"not run: {stop_reason}")
        elif stage != "teardown" and (reason := watchdog.reason()):
            stop_reason = reason
            record = rpt.StageRecord(stage, rpt.NOT_RUN, f"not run: {reason}")
        else:
            started = clock()
            try:
                outcome = actions[stage]()
                status = rpt.PASSED if outcome.ok else rpt.FAILED
                why, results = outcome.why, outcome.results
                if not outcome.ok:
                    failed = [r for r in results if not r.ok]
                    why = f"{len(failed)} of {len(results)} judgement(s) failed: {failed[0].name}: {failed[0].why}"
            except HarnessError as exc:
                status, why, results = rpt.FAILED, str(exc), ()
            except Exception as exc:  # a bug or an unexpected API error must never skip the teardown
                why = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                status, results = rpt.FAILED, (Result.failed(stage, why, traceback=traceback.format_exc()),)
            except KeyboardInterrupt:
                if interrupted or stage == "teardown":
                    raise
                interrupted = True
                status, why, results = rpt.FAILED, "interrupted (Ctrl-C): tearing down; Ctrl-C again to stop", ()
            record = rpt.StageRecord(stage, status, why, round(clock() - started, 3), tuple(results))
            if status == rpt.FAILED and not stop_reason:
                stop_reason = f"stage {stage} failed"
                if (reason := watchdog.reason()) is not None:
                    stop_reason = reason
        records.append(record)
        on_record(record)
    return records


# ---------------------------------------------------------------- the run's I/O


def git_value(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def gitops_source(explicit_url: str | None, explicit_revision: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """Where Argo CD reads gitops/ from: --gitops-repo-url/--gitops-revision, env, else this checkout's origin."""
    url = explicit_url or env.get(GITOPS_REPO_ENV, "") or git_value(["remote", "get-url", "origin"])
    revision = explicit_revision or env.get(GITOPS_REVISION_ENV, "") or "main"
    if not url.startswith(("https://", "git@", "ssh://")):
        raise InputError(
            f"Argo CD needs a git URL it can clone for gitops/: pass --gitops-repo-url or set {GITOPS_REPO_ENV} "
            f"(got {url!r})"
        )
    return url, revision


def scale_out_replicas(deployment: Mapping[str, Any] | None) -> int:
    """The documented scale-out count: the Deployment's eks-platform/scale-out-replicas annotation."""
    source = deployment
    if source is None:
        source = read_yaml(repo_root() / "gitops" / "apps" / "game-2048" / "deployment.yaml")
    value = ((source or {}).get("metadata") or {}).get("annotations", {}).get(SCALE_OUT_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"game-2048 Deployment: annotation {SCALE_OUT_ANNOTATION} missing or not a number") from None


@dataclass
class E2E:
    """One e2e run's stages over the harness-core Stack (platform), an add-ons Terraform runner, boto3
    clients and a Kubernetes reader. Clock and sleep are injectable; nothing here decides a verdict."""

    stack: Stack
    console: Console
    watchdog: Watchdog
    gitops: tuple[str, str] = ("", "")
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    run_started: float = 0.0
    time_to_green: float | None = None
    scale_in_seconds: float | None = None
    timeline: ScaleOutTimeline | None = None
    _kube: KubeReader | None = None
    _addons: Terraform | None = None

    @property
    def run(self) -> Run:
        run: Run = self.stack.run
        return run

    @property
    def caps(self) -> TargetCapabilities:
        caps: TargetCapabilities = self.stack.capabilities
        return caps

    def clients(self, service: str) -> Any:
        return self.stack.aws_target().client(service)

    def say(self, text: str) -> None:
        self.console.print(escape(text))

    # --- Terraform roots
    def addons_terraform(self) -> Terraform:
        if self._addons is None:
            from harness.terraform import Terraform

            emulator = self.stack.emulator(start=False)
            self._addons = Terraform(
                repo_root() / "infra" / "addons",
                self.run.dir,
                name="addons",
                env=emulator.child_env(self.stack.region) if emulator else dict(os.environ),
                provider=self.stack.terraform.provider,
                live=self.stack.live,
                console=self.console,
                watchdog=emulator.death_notice if emulator else None,
            )
        return self._addons

    def addons_variables(self) -> dict[str, Any]:
        url, revision = self.gitops
        return {
            "platform_state_path": str(self.stack.terraform.state_path),
            "run_id": self.run.id,
            "expires_at": self.run.expires_at,
            "gitops_repo_url": url or self.run.settings.get("gitops_repo_url", ""),
            "gitops_revision": revision or self.run.settings.get("gitops_revision", "main"),
        }

    def destroy(self, root: str) -> None:
        runner = self.addons_terraform() if root == "addons" else self.stack.terraform
        with self.stack.step(f"terraform destroy infra/{root}"):
            if not runner.initialized:
                runner.init()
            runner.destroy(self.addons_variables() if root == "addons" else self.stack.variables())

    # --- stages
    @contextlib.contextmanager
    def guarded(self, runner: Terraform) -> Iterator[None]:
        """Let the watchdog stop a Terraform apply; never a destroy (teardown must be allowed to finish)."""
        own = runner.watchdog
        runner.watchdog = _either(own, self.watchdog.reason)
        try:
            yield
        finally:
            runner.watchdog = own

    def platform(self) -> StageOutcome:
        with self.guarded(self.stack.terraform):
            outputs = self.stack.up()
        self.run.settings["cluster_name"] = outputs.get("cluster_name", "")
        self.run.save()
        return StageOutcome(f"applied infra/platform: cluster {outputs.get('cluster_name', '?')}")

    def addons(self) -> StageOutcome:
        terraform = self.addons_terraform()
        self.run.settings["gitops_repo_url"], self.run.settings["gitops_revision"] = self.gitops
        self.run.save()
        with self.guarded(terraform):
            terraform.init()
            terraform.apply(self.addons_variables())
        return StageOutcome("applied infra/addons: LB controller, Argo CD, Karpenter, bootstrap")

    def wait(self, fetch: Callable[[], T], judge: Callable[[T], Result], timeout: float) -> Result:
        """wait_for with the run's clock and sleep, bounded by what the watchdog leaves."""
        from harness.waits import wait_for

        return wait_for(fetch, judge, self.watchdog.bound(timeout), clock=self.clock, sleep=self.sleep)

    def kube(self) -> KubeReader:
        if self._kube is None:
            from harness import kube

            self._kube = kube.connect(self.cluster_name(), session=self.stack.aws_target().session)
        return self._kube

    def cluster_name(self) -> str:
        name = self.run.settings.get("cluster_name") or self.stack.variables()["cluster_name"]
        return str(name)

    def access(self) -> StageOutcome:
        from harness import kube

        session = self.stack.aws_target().session
        cluster = kube.describe_cluster(self.cluster_name(), session=session)
        token = kube.eks_token(cluster.name, session=session, region=cluster.region)
        path = kube.write_kubeconfig(self.run.path("kubeconfig"), cluster, token)
        nodes = self.kube().list_nodes()
        result = Result.passed(
            "kubernetes API reachable with an EKS token", f"{len(nodes)} node(s) listed", endpoint=cluster.endpoint
        )
        return StageOutcome(f"kubeconfig (token valid 15 min): {path.name} in the run directory", (result,))

    def checks(self) -> StageOutcome:
        results = list(self.stack.verify())
        if not self.caps.supports(KUBERNETES_CAPABILITY):
            reason = self.caps.reason(KUBERNETES_CAPABILITY)
            results += [Result.not_applicable(name, self.run.target, reason) for name in KUBERNETES_CHECK_NAMES]
        else:
            results += self.kubernetes_checks()
        if all(r.ok for r in results):
            self.time_to_green = round(self.clock() - self.run_started, 3)
        return StageOutcome(f"{sum(r.status is Status.PASS for r in results)} passed of {len(results)}", tuple(results))

    def kubernetes_checks(self) -> list[Result]:
        from harness import argocd, ingress, kube, kube_checks

        k = self.kube()
        results = [
            self.wait(
                lambda: k.list_custom(kube.APPLICATION, td.ARGOCD_NAMESPACE),
                lambda apps: argocd.judge_applications(apps, expected=EXPECTED_APPLICATIONS),
                900,
            ),
            kube_checks.judge_ops_nodes(k.list_nodes()),
        ]
        nodes = k.list_nodes()
        pods = {g.name: k.list_pods(g.namespace, g.label_selector) for g in kube_checks.CONTROLLER_PODS}
        results.append(kube_checks.judge_controllers_on_ops(pods, nodes))
        game = kube_checks.GAME_PODS
        results.append(kube_checks.judge_workload_off_ops(k.list_pods(game.namespace, game.label_selector), nodes))
        address = self.wait(
            lambda: (
                k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT),
                k.list_events(GAME_NAMESPACE, "involvedObject.kind=Ingress"),
            ),
            lambda seen: ingress.judge_ingress_address(*seen),
            600,
        )
        results.append(address)
        hostname = ingress.ingress_hostname(k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT))
        if hostname:
            facts = ingress.fetch_load_balancer(self.clients("elbv2"), self.clients("ec2"), hostname)
            results.append(ingress.judge_load_balancer(facts))
            results.append(
                self.wait(
                    lambda: ingress.fetch_load_balancer(self.clients("elbv2"), self.clients("ec2"), hostname),
                    ingress.judge_target_groups,
                    600,
                )
            )
            results.append(
                self.wait(
                    lambda: ingress.probe_http(f"http://{hostname}/"),
                    ingress.judge_game_page,
                    600,
                )
            )
        return results

    def karpenter(self) -> StageOutcome:
        from harness import karpenter, kube, kube_checks
        from harness.kube_checks import GAME_PODS

        k = self.kube()
        deployment = k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT)
        if deployment is None:
            raise EnvironmentProblem(f"deployment {GAME_NAMESPACE}/{GAME_DEPLOYMENT} not found: did Argo CD sync it?")
        baseline = int((deployment.get("spec") or {}).get("replicas") or 0)
        replicas = scale_out_replicas(deployment)

        def observe() -> tuple[Any, Any, Any]:
            return (
                k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector),
                k.list_custom(kube.NODE_CLAIM),
                k.list_nodes(),
            )

        checked: list[Result] = []
        self.say(f"scaling {GAME_DEPLOYMENT} from {baseline} to {replicas} replicas")
        k.scale_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT, replicas)
        try:
            out = self.wait(
                observe,
                lambda seen: karpenter.judge_scale_out(
                    seen[0], seen[1], seen[2], replicas=replicas, nodepool=KARPENTER_NODEPOOL
                ),
                900,
            )
            pods, claims, nodes = observe()
            self.timeline = karpenter.build_timeline(pods, claims, nodes)
            self.run.path("karpenter-timeline.json").write_text(
                json.dumps(_timeline_rows(self.timeline), indent=2, default=str) + "\n", encoding="utf-8"
            )
            if out.ok:  # the new nodes pulled the image themselves: did they get the same bits?
                pinned = versions().get(GAME_IMAGE_PIN, "")
                checked.append(self.wait(
                    lambda: k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector),
                    lambda pods: kube_checks.judge_pinned_image(pods, pinned),
                    300,
                ))
        finally:
            self.say(f"scaling {GAME_DEPLOYMENT} back to {baseline}")
            k.scale_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT, baseline)
        scaled_back = self.clock()
        back = self.wait(
            lambda: (k.list_custom(kube.NODE_CLAIM), k.list_nodes(), k.list_pods(GAME_NAMESPACE)),
            lambda seen: karpenter.judge_scale_in(seen[0], seen[1], nodepool=KARPENTER_NODEPOOL, pods=seen[2]),
            900,
        )
        if back.ok:
            self.scale_in_seconds = round(self.clock() - scaled_back, 3)
        return StageOutcome(f"scaled to {replicas} and back to {baseline}", (out, *checked, back))

    def teardown_facts(self) -> td.TeardownFacts:
        # The add-ons need a Kubernetes API: on a target without one they were never applied.
        addons_applied = self.caps.supports(KUBERNETES_CAPABILITY) and bool(self.addons_terraform().managed_resources())
        return td.TeardownFacts(
            kubernetes_unsupported=self.caps.reason(KUBERNETES_CAPABILITY),
            target=self.run.target,
            addons_applied=addons_applied,
            platform_applied=bool(self.stack.terraform.managed_resources()),
            cluster_exists=self.cluster_exists() if addons_applied else True,
        )

    def cluster_exists(self) -> bool:
        try:
            self.clients("eks").describe_cluster(name=self.cluster_name())
        except ClientError as exc:
            if sweeper.is_gone(exc):
                return False
            raise EnvironmentProblem(f"cannot read EKS cluster {self.cluster_name()}: {exc}") from None
        return True

    def set_addons_state_aside(self) -> None:
        """The cluster is gone, so nothing in the add-ons state exists any more; keep the file for the record."""
        state = self.addons_terraform().state_path
        if state.exists():
            state.rename(state.with_name(state.name + ".orphaned"))
            self.say(f"teardown: {td.ADDONS_WENT_WITH_CLUSTER}; add-ons state kept as {state.name}.orphaned")

    def teardown(self) -> StageOutcome:
        return StageOutcome("controller-aware teardown, terraform destroy, tag sweep", tuple(teardown_stack(self)))

    def collect_evidence(self) -> Path:
        """Events, controller logs, NodeClaims, Applications, the last plan and outputs: best effort, each
        piece on its own (one unreachable source must not hide the others)."""
        folder = self.run.path("evidence")
        folder.mkdir(exist_ok=True)
        pieces: dict[str, Callable[[], Any]] = {
            "terraform-outputs-platform.json": lambda: self.stack.terraform.output(),
        }
        if self.caps.supports(KUBERNETES_CAPABILITY) and self.run.settings.get("cluster_name"):
            from harness import kube, kube_checks

            pieces |= {
                "events.json": lambda: self.kube().list_events(None),
                "nodeclaims.json": lambda: self.kube().list_custom(kube.NODE_CLAIM),
                "nodepools.json": lambda: self.kube().list_custom(kube.NODE_POOL),
                "applications.json": lambda: self.kube().list_custom(kube.APPLICATION, td.ARGOCD_NAMESPACE),
                "nodes.json": lambda: self.kube().list_nodes(),
            }
            for group in kube_checks.CONTROLLER_PODS:
                pieces[f"logs-{group.name}.txt"] = _logs_of(self, group.namespace, group.label_selector)
        for name, fetch in pieces.items():
            try:
                value = fetch()
                text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
            except (HarnessError, BotoCoreError, ClientError, OSError) as exc:
                text = f"could not collect: {exc}"
            folder.joinpath(name).write_text(text + "\n", encoding="utf-8")
        logs = sorted(self.run.path("logs").glob("*plan*.log")) if self.run.path("logs").is_dir() else []
        if logs:
            shutil.copy(logs[-1], folder / "last-plan.log")
        return folder


KUBERNETES_CHECK_NAMES = (
    "argo cd applications synced and healthy",
    "ops nodes ready, labelled and tainted",
    "controllers run on ops nodes",
    "game-2048 stays off ops nodes",
    "ingress has an ALB address",
    "ALB internet-facing in public subnets",
    "target groups healthy",
    "game page served through the ALB",
)


def _logs_of(e2e: E2E, namespace: str, selector: str) -> Callable[[], str]:
    def fetch() -> str:
        pods = e2e.kube().list_pods(namespace, selector)
        return "\n".join(
            f"==> {namespace}/{p['metadata']['name']}\n" + e2e.kube().pod_logs(namespace, p["metadata"]["name"])
            for p in pods
        )

    return fetch


def _either(first: Callable[[], str | None] | None, second: Callable[[], str | None]) -> Callable[[], str | None]:
    return lambda: (first() if first else None) or second()


def _timeline_rows(timeline: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "start": timeline.start,
        "pods": [asdict(p) for p in timeline.pods],
        "nodes": [asdict(n) for n in timeline.nodes],
    }


def teardown_stack(e2e: E2E) -> list[Result]:
    """The full, re-runnable teardown of a run; also what `harness down` does. Stops the emulator last."""
    stack = e2e.stack
    emulator = stack.emulator(start=False)
    if stack.target == "emulator" and (emulator is None or not emulator.alive()):
        stack.down()  # the emulator held everything in memory: nothing can be left
        gone = Result.passed("teardown", "the run's emulator is stopped, and everything it held went with it")
        e2e.say(f"teardown: {gone.why}")
        return [gone]
    try:
        plan = td.plan_teardown(e2e.teardown_facts())
        if any(step.skip_reason == td.ADDONS_WENT_WITH_CLUSTER for step in plan):
            e2e.set_addons_state_aside()  # so a re-run converges instead of failing on an unreachable API
        teardown = td.Teardown(
            e2e.run,
            e2e.clients,
            e2e.kube,
            e2e.destroy,
            clock=e2e.clock,
            sleep=e2e.sleep,
            on_start=lambda step: e2e.say(f"teardown {step} ..."),
            on_step=lambda r: e2e.say(f"teardown {r.name}: {r.status.value}: {r.why}"),
        )
        return teardown.execute(plan)
    finally:
        stack.down()  # nothing left in state by now: this only stops the run's emulator


# ---------------------------------------------------------------- CLI


def preflight(stack: Any, stages: Sequence[str]) -> None:
    """Mistakes that would otherwise surface after money is spent: no Terraform, missing platform inputs
    (e.g. the API CIDRs), no add-ons root."""
    from harness.terraform import find_cli

    if {"platform", "addons", "teardown"} & set(stages):
        find_cli()
    if "platform" in stages:
        stack.variables()
    if "addons" in stages and not (repo_root() / "infra" / "addons" / "main.tf").is_file():
        raise InputError("infra/addons/main.tf not found: the add-ons stage needs the add-ons root")


def build_report(e2e: E2E, records: Sequence[rpt.StageRecord], region: str, notes: Sequence[str]) -> rpt.RunReport:
    figures = rpt.figures_from(e2e.timeline, time_to_green=e2e.time_to_green, scale_in=e2e.scale_in_seconds)
    return rpt.RunReport(
        e2e.run.id, e2e.run.target, region, e2e.run.created_at, tuple(records), figures, e2e.timeline, tuple(notes)
    )


def stage_table(records: Sequence[rpt.StageRecord], title: str) -> Table:
    table = Table(title=title)
    for column in ("stage", "result", "seconds", "why"):
        table.add_column(column)
    colour = {rpt.PASSED: "green", rpt.FAILED: "red", rpt.NOT_APPLICABLE: "yellow"}
    for r in records:
        seconds = "" if r.seconds is None else f"{r.seconds:.0f}"
        table.add_row(r.name, f"[{colour.get(r.status, 'dim')}]{r.status}[/]", seconds, escape(r.why))
    return table


@contextlib.contextmanager
def progress_shown(stack: Stack, console: Console, live: bool) -> Iterator[None]:
    """Long Terraform steps as spinners with elapsed time (unless --live streams Terraform's own output)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        stack.progress = None if live else bar
        try:
            yield
        finally:
            stack.progress = None


def cmd_e2e(args: argparse.Namespace) -> int:
    from harness.aws import AwsTarget
    from harness.stack import Stack

    console = Console(highlight=False, soft_wrap=True)
    env = dict(os.environ)
    if args.resume and not args.run_id:
        raise InputError("--resume needs --run-id (the run to continue)")
    caps = capabilities(args.target)
    # Everything that can refuse, refuses before anything is created.
    account = expected_account(args.target, env)
    if args.target == "aws":
        region = resolve_region(args.target, args.region, env, "")
        check_account(account, caller_account(AwsTarget(caps, region).client("sts"), "aws"), "aws")
    stack = Stack.create(args.target, args.run_id, live=args.live, console=console, api_public_cidrs=args.api_cidrs)
    run = stack.run
    selections = select_stages(
        only=args.only or (),
        skip=args.skip or (),
        resume=args.resume,
        passed_before=passed_stages(run),
        target=args.target,
        kubernetes_unsupported=caps.reason(KUBERNETES_CAPABILITY),
    )
    to_run = [s.stage for s in selections if not s.status]
    gitops = gitops_source(args.gitops_repo_url, args.gitops_revision, env) if "addons" in to_run else ("", "")
    watchdog = Watchdog(args.max_minutes * 60)
    e2e = E2E(stack, console, watchdog, gitops=gitops)
    try:
        if args.target == "emulator":
            stack.emulator(start=True)
            region = resolve_region(args.target, args.region, env, stack.region)
            check_account(account, caller_account(e2e.clients("sts"), "emulator"), "emulator")
        run.settings["region"] = region
        run.save()
        preflight(stack, to_run)
        for line in creation_summary(run, region, account, to_run, args.max_minutes):
            console.print(escape(line))
        confirm(args.yes, sys.stdin, input, account)
        # The watchdog and time to green count from here, not from the prompt.
        e2e.watchdog = watchdog = Watchdog(args.max_minutes * 60)
        e2e.run_started = time.monotonic()
    except BaseException:
        if args.target == "emulator":
            stack.down()  # stop the emulator this command started; nothing else exists yet
        raise
    console.print(f"run directory: {run.dir}", markup=False)

    def record(r: rpt.StageRecord) -> None:
        write_stage_log(run, [r])
        console.print(f"stage {r.name}: {r.status}: {escape(r.why)}")

    try:
        with progress_shown(stack, console, args.live):
            records = execute_stages(
                selections, {stage: getattr(e2e, stage) for stage in STAGES}, watchdog, on_record=record
            )
    except KeyboardInterrupt:
        console.print(f"teardown interrupted: finish it with `make e2e-down RUN_ID={run.id}`", markup=False)
        raise
    notes = []
    if any(r.status == rpt.FAILED for r in records):
        notes.append(f"evidence bundle: {e2e.collect_evidence().relative_to(run.dir)}/ in the run directory")
    if "teardown" not in to_run:
        notes.append(f"the run is still up: tear it down with `make e2e-down RUN_ID={run.id}`")
    written = rpt.write_all(build_report(e2e, records, region, notes), run.dir)
    console.print(stage_table(records, f"e2e run {run.id} on {run.target}"))
    for note in notes:
        console.print(escape(note))
    console.print(f"report: {written['markdown']}  junit: {written['junit']}", markup=False)
    return 0 if all(r.status in rpt.OK_STAGE_STATES for r in records) else 1


def cmd_down(stack: Any, console: Console) -> int:
    """`harness down`: the full teardown of a run (called by harness.stack's `down` command)."""
    e2e = E2E(stack, console, Watchdog(float("inf")))
    if stack.target == "aws":  # the sweep deletes by tag: make sure these are the account's tags we mean
        check_account(expected_account("aws", os.environ), caller_account(e2e.clients("sts"), "aws"), "aws")
    with progress_shown(stack, console, stack.live):
        results = teardown_stack(e2e)  # prints each step as it finishes
    ok = td.teardown_ok(results)
    console.print(
        f"down: run {stack.run.id} " + ("torn down, nothing left" if ok else "NOT clean (see above)"), markup=False
    )
    return 0 if ok else 1


def sweep_clients(run_id: str, target: str | None, region: str | None) -> tuple[Callable[[str], Any], str, str]:
    """Clients for the sweep from the run's record, or (no record on this machine) from the environment."""
    from harness.aws import AwsTarget
    from harness.emulator import Emulator, external

    env = dict(os.environ)
    run: Run | None = None
    if (runs_dir() / run_id / "run.json").is_file():
        run = load_run(run_id)
    target = target or (run.target if run else "aws")
    recorded_region = str(run.settings.get("region", "")) if run else ""
    if target == "emulator":
        recorded = run.settings.get("emulator") if run else None
        emulator = Emulator.from_settings(recorded) if recorded else external(env)
        if emulator is None or not emulator.alive():
            raise EnvironmentProblem(
                f"no running emulator for run {run_id}: nothing can be left in it "
                "(set AWS_ENDPOINT_URL to sweep another emulator)"
            )
        aws_target = AwsTarget(capabilities("emulator"), region or recorded_region or "us-east-1", emulator.endpoint)
    else:
        resolved = resolve_region(target, region or recorded_region or None, env, "")
        aws_target = AwsTarget(capabilities("aws"), resolved)
    account = expected_account(target, env)
    check_account(account, caller_account(aws_target.client("sts"), target), target)
    return aws_target.client, target, aws_target.region


def cmd_sweep(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    run_id = validate_run_id(args.run_id)
    clients, target, region = sweep_clients(run_id, args.target, args.region)
    console.print(
        f"sweeping run {run_id} on {target} ({region})" + (" - dry run" if args.dry_run else ""), markup=False
    )
    result = sweeper.sweep(clients, run_id, dry_run=args.dry_run)
    for line in result.lines():
        console.print(escape(line))
    return 0 if result.clean else 1


def register(subparsers: Any) -> None:
    e2e = subparsers.add_parser("e2e", help="staged end-to-end run on a real AWS account (or the emulator)")
    e2e.add_argument(
        "--target",
        choices=("aws", "emulator"),
        default="aws",
        help="aws (needs E2E_AWS_ACCOUNT_ID and a region) or emulator",
    )
    e2e.add_argument("--run-id", help="name the run (default: a new id); with --resume, the run to continue")
    e2e.add_argument("--region", help="AWS region (else AWS_REGION; there is no default on aws)")
    e2e.add_argument("--yes", action="store_true", help="do not ask before creating resources")
    e2e.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULT_MAX_MINUTES,
        help=f"watchdog: stop and tear down after this long (default {DEFAULT_MAX_MINUTES:g})",
    )
    e2e.add_argument("--skip", action="append", choices=STAGES, help="skip a stage (repeatable)")
    e2e.add_argument("--only", action="append", choices=STAGES, help="run only these stages (repeatable)")
    e2e.add_argument("--resume", action="store_true", help="skip stages that passed in an earlier attempt")
    e2e.add_argument("--api-cidr", action="append", dest="api_cidrs", help="CIDR allowed to the Kubernetes API (aws)")
    e2e.add_argument(
        "--gitops-repo-url",
        help=f"git URL Argo CD syncs gitops/ from (else ${GITOPS_REPO_ENV}, else this checkout's origin)",
    )
    e2e.add_argument("--gitops-revision", help=f"branch, tag or commit (else ${GITOPS_REVISION_ENV}, else main)")
    e2e.add_argument("--live", action="store_true", help="stream Terraform's output")
    e2e.set_defaults(func=cmd_e2e)

    sweep = subparsers.add_parser("sweep", help="list (--dry-run) or delete everything tagged with a run id")
    sweep.add_argument("--run-id", required=True, help="the run whose leftovers to find")
    sweep.add_argument("--target", choices=("aws", "emulator"), help="default: the run's target, else aws")
    sweep.add_argument("--region", help="AWS region (else the run's, else AWS_REGION)")
    sweep.add_argument("--dry-run", action="store_true", help="only list; delete nothing")
    sweep.set_defaults(func=cmd_sweep)
