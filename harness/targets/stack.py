"""One run of the platform root on one target: up, verify, down.

Used by the CLI (`harness up|verify|down|demo`: harness.targets.cli), the pytest plugin and the e2e. Everything
another shell needs to continue a run (emulator pid and endpoint, region, input variables) lives in the run's
settings, so `harness up` and a later `harness verify/down --run-id X` work from different processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from harness.aws import authorization
from harness.aws import emulator as emu
from harness.aws.checks import Expectations, OpsNodeGroupSpec, karpenter_interruption_events, verify_platform
from harness.aws.clients import AwsTarget, region_for, require_account_opt_in
from harness.aws.run_tags import taggable_resources
from harness.errors import EnvironmentProblem, HarnessError, InputError
from harness.project import TargetCapabilities, capabilities, reference_dir, repo_root, versions
from harness.results import Result
from harness.run import Run, create_run, load_run
from harness.targets import TARGETS, local
from harness.terraform.providers import find_machine_mirror, provider_source
from harness.terraform.runner import Terraform, check_root, find_cli, state_resources

# Run setting and infra/platform variable: the cluster stands at versions.yaml upgrade_from_kubernetes.
STAND_AT_UPGRADE_FROM = "stand_at_upgrade_from"
API_CIDRS_ENV = "HARNESS_API_PUBLIC_CIDRS"
# RFC 5737 documentation range: the emulated API endpoint is never reachable, so nothing real is opened.
EMULATOR_API_CIDRS = ("198.51.100.0/24",)
CLUSTER_NAME_MAX = 32  # infra/platform's cluster_name validation


def platform_root() -> Path:
    return repo_root() / "infra" / "platform"


def cluster_name_for(run_id: str) -> str:
    return f"eks-{run_id}"[:CLUSTER_NAME_MAX].rstrip("-")


class Stack:
    """The platform root applied for one run on one target."""

    def __init__(
        self,
        run: Run,
        *,
        root: Path | None = None,
        live: bool = False,
        console: Console | None = None,
        api_public_cidrs: Sequence[str] | None = None,
    ) -> None:
        if run.target not in TARGETS:
            raise InputError(f"unknown target {run.target!r} (known: {', '.join(TARGETS)})")
        self.run = run
        self.root = Path(root or run.settings.get("root") or platform_root())
        self.live = live
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.capabilities: TargetCapabilities = capabilities(run.target)
        self.timings: dict[str, float] = {}
        self.progress: Progress | None = None
        self._emulator: emu.Emulator | None = None
        self._aws_target: AwsTarget | None = None
        # A reason to stop the platform's Terraform besides the emulator's death (the run's watchdog while applying).
        self.watchdog: Callable[[], str | None] | None = None
        if api_public_cidrs:
            self.run.settings["api_public_cidrs"] = list(api_public_cidrs)

    # --- construction ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, target: str, run_id: str | None = None, **kwargs: Any) -> Stack:
        """A new run (or the existing one with that id) on `target`."""
        if target not in TARGETS:
            raise InputError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
        find_cli()  # no Terraform, no run: fail before anything is created
        if capabilities(target).local_kubernetes and (reason := local.unavailable()):
            raise EnvironmentProblem(f"the {target} target cannot run here: {reason}")
        run = create_run(target, run_id)
        if run.target != target:
            raise InputError(f"run {run.id} is on target {run.target}, not {target}")
        return cls(run, **kwargs)

    @classmethod
    def load(cls, run_id: str, target: str | None = None, **kwargs: Any) -> Stack:
        """An existing run, from another shell."""
        run = load_run(run_id)
        if target is not None and target != run.target:
            raise InputError(f"run {run_id} is on target {run.target}, not {target}")
        return cls(run, **kwargs)

    # --- derived values --------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        return self.run.target

    @property
    def region(self) -> str:
        if "region" not in self.run.settings:
            self.run.settings["region"] = region_for(self.target)
        return str(self.run.settings["region"])

    def variables(self) -> dict[str, Any]:
        """infra/platform's input variables for this run (saved, so `down` from another shell uses the same)."""
        cidrs = self.run.settings.get("api_public_cidrs")
        if not cidrs:
            cidrs = list(EMULATOR_API_CIDRS) if self.capabilities.emulated else _cidrs_from_env()
        return {
            "region": self.region,
            "cluster_name": cluster_name_for(self.run.id),
            "target": self.target,
            "api_public_cidrs": list(cidrs),
            "run_id": self.run.id,
            "expires_at": self.run.expires_at,
            "tags": {},
            STAND_AT_UPGRADE_FROM: bool(self.run.settings.get(STAND_AT_UPGRADE_FROM, False)),
        }

    # --- the emulator ----------------------------------------------------------------------------------
    def emulator(self, *, start: bool = False) -> emu.Emulator | None:
        """The run's emulator (None on aws): the recorded one, AWS_ENDPOINT_URL, or (start=True) a new one."""
        if not self.capabilities.emulated:
            return None
        if self._emulator is not None:
            return self._emulator
        recorded = self.run.settings.get("emulator")
        if recorded:
            self._emulator = emu.Emulator.from_settings(recorded)
            if start and not self._emulator.alive():
                raise EnvironmentProblem(
                    f"the emulator of run {self.run.id} ({self._emulator.endpoint}) is no longer running: "
                    f"its resources are gone; run `harness down --run-id {self.run.id}`"
                )
            return self._emulator
        if not start:
            return None
        self._emulator = emu.external() or emu.start(
            self.run.path("logs", "emulator.log"), iam_decisions=self.run.path(authorization.DECISIONS_FILE)
        )
        self.run.settings["emulator"] = self._emulator.settings()
        self.run.save()
        if "terraform" in self.__dict__:
            # Made before the emulator existed: point it at the emulator, never at the shell's own credentials.
            self.terraform.use_env(self._emulator.child_env(self.region))
        return self._emulator

    def aws_target(self) -> AwsTarget:
        """boto3 clients bound to this run's target (the emulator must be running); one per endpoint, so that its
        clients are made once (a boto3 session and client cost 0.1-0.5 s, and the teardown asks for one per call)."""
        emulator = self.emulator(start=False)
        if self.capabilities.emulated and (emulator is None or not emulator.alive()):
            raise EnvironmentProblem(
                f"run {self.run.id} has no running emulator: `harness up --run-id {self.run.id}` first"
            )
        endpoint = emulator.endpoint if emulator else None
        if self._aws_target is None or self._aws_target.endpoint_url != endpoint:
            self._aws_target = AwsTarget(self.capabilities, self.region, endpoint)
        return self._aws_target

    # --- Terraform -------------------------------------------------------------------------------------
    @cached_property
    def terraform(self) -> Terraform:
        emulator = self.emulator(start=False)
        env = emulator.child_env(self.region) if emulator else dict(os.environ)
        source = provider_source(self.run.path("terraform"), find_machine_mirror(versions()["aws_provider"]), env)
        return Terraform(
            self.root,
            self.run.dir,
            name="platform",
            env=env,
            provider=source,
            live=self.live,
            console=self.console,
            watchdog=self._abort_reason,
        )

    def _abort_reason(self) -> str | None:
        # Read when Terraform polls, not when it is built: the emulator may start after the runner exists.
        emulator = self._emulator
        return (emulator.death_notice() if emulator else None) or (self.watchdog() if self.watchdog else None)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        """Time a step (self.timings) and show it on the attached rich Progress, if any."""
        task = self.progress.add_task(description, total=1) if self.progress else None
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[description] = time.monotonic() - started
            if self.progress is not None and task is not None:
                self.progress.update(task, completed=1)

    # --- lifecycle -------------------------------------------------------------------------------------
    def up(self) -> dict[str, Any]:
        """Apply the platform; on any failure or Ctrl-C tear down what was started, then re-raise."""
        # Bad input fails here, before anything is started.
        self.root = check_root(self.root)
        self.run.settings["root"] = str(self.root)
        variables = self.variables()
        self.run.settings["api_public_cidrs"] = variables["api_public_cidrs"]
        self.run.save()
        try:
            if self.target == "aws":
                with self.step("confirm the AWS account"):
                    require_account_opt_in(self.aws_target())
            else:
                with self.step("start the emulator"):
                    self.emulator(start=True)
            with self.step("terraform init"):
                self.terraform.init()
            with self.step("terraform apply"):
                self.terraform.apply(variables)
            outputs = self.outputs()
            if self.capabilities.local_kubernetes:
                # What EKS and the node group are on aws: an API server, and the ops Nodes joined to it.
                with self.step("start the local control plane and the ops nodes"):
                    local.start_cluster(self.run, outputs, self.aws_target().client)
            return outputs
        except BaseException:
            with contextlib.suppress(HarnessError):
                self.down()
            raise

    def outputs(self) -> dict[str, Any]:
        return self.terraform.output()

    def expectations(self, outputs: dict[str, Any]) -> Expectations:
        """What verify compares against: outputs, the ops node group's configuration, the run's tags and what the
        state says the run created."""
        state = self.terraform.state()
        nodegroup = _configured_nodegroup(state, str(outputs["ops_node_group_name"]))
        ops = OpsNodeGroupSpec(
            labels=dict(outputs["ops_node_labels"]),
            taints=[
                {"key": t["key"], "value": t.get("value") or "", "effect": t["effect"]}
                for t in nodegroup.get("taint") or []
            ],
            capacity_type=str(nodegroup.get("capacity_type") or "ON_DEMAND"),
            instance_types=list(outputs["ops_instance_types"]),
        )
        try:
            events: frozenset[tuple[str, str]] | None = karpenter_interruption_events(reference_dir()) or None
        except InputError:
            events = None
        return Expectations(
            outputs=outputs,
            ops=ops,
            run_tags=self.run.tags,
            interruption_events=events,
            created=taggable_resources(state),
        )

    def verify(self) -> list[Result]:
        """Every AWS assertion; the results are also written to the run directory (verify.json)."""
        with self.step("verify"):
            target = self.aws_target()
            results = verify_platform(target, self.expectations(self.outputs()))
        _save_results(self.run.path("verify.json"), results)
        return results

    def down(self) -> None:
        """Stop the run's local processes, destroy what the run created and stop its emulator. Safe to repeat;
        works from another shell."""
        emulator = self.emulator(start=False)
        if local.records(self.run):
            with self.step("stop the local processes"):
                local.stop(self.run)
        try:
            if emulator is not None and emulator.owned and not emulator.alive():
                # The emulator kept everything in memory: with the process gone, so are the resources.
                self._forget_state("its emulator is gone, and everything it held with it")
            elif self.terraform.managed_resources():
                with self.step("terraform destroy"):
                    if not self.terraform.initialized:
                        self.terraform.init()
                    self.terraform.destroy(self.variables())
        finally:
            if emulator is not None:
                with self.step("stop the emulator"):
                    emulator.stop()
                self.run.settings.pop("emulator", None)
                self._emulator = None
                self.run.save()

    def _forget_state(self, why: str) -> None:
        state = self.terraform.state_path
        if state.exists():
            state.rename(state.with_name(state.name + ".orphaned"))
        self.console.print(f"run {self.run.id}: {why}", markup=False)


def _configured_nodegroup(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The aws_eks_node_group named `name`, as its Terraform configuration set it (from `show -json`)."""
    for resource in state_resources(state):
        values = resource.get("values") or {}
        if resource.get("type") == "aws_eks_node_group" and values.get("node_group_name") == name:
            return dict(values)
    raise InputError(f"the Terraform state has no aws_eks_node_group named {name!r}")


def _cidrs_from_env() -> list[str]:
    value = os.environ.get(API_CIDRS_ENV, "")
    cidrs = [c.strip() for c in value.split(",") if c.strip()]
    if not cidrs:
        raise InputError(
            f"the aws target needs the CIDRs allowed to reach the Kubernetes API: --api-cidr <your-ip>/32 "
            f"or {API_CIDRS_ENV}=<cidr>[,<cidr>]"
        )
    return cidrs


def _save_results(path: Path, results: Sequence[Result]) -> None:
    rows = [{"name": r.name, "status": r.status.value, "why": r.why, "evidence": dict(r.evidence)} for r in results]
    path.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
