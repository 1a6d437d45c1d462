"""A run's whole platform: the platform Stack, the add-ons root beside it, the boto3 clients and the Kubernetes
client both need, and the full, re-runnable teardown of a run (`harness down`; the e2e's last stage).

Clock and sleep are injectable; nothing here decides a verdict (harness.targets.teardown plans and judges).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape

from harness.aws import authorization
from harness.aws.leaks import is_gone
from harness.errors import EnvironmentProblem
from harness.kube import rbac
from harness.kube.api import KubeClient
from harness.project import KUBERNETES_CAPABILITY, TargetCapabilities, repo_root, versions
from harness.results import Result
from harness.run import Run
from harness.targets import local, pod_identity
from harness.targets import teardown as td
from harness.targets.controlplane import ControlPlane
from harness.targets.stack import Stack
from harness.terraform.providers import ProviderSource, addons_provider_source, provider_pins
from harness.terraform.runner import Terraform

# Where EKS's own agent serves the credentials.
EKS_POD_IDENTITY = "EKS Pod Identity serves the controllers' credentials: one without them fails what it could not do"
# Where the API server is EKS's: its audit log goes to CloudWatch Logs, which the harness does not read.
IAM_IN_ACCOUNT = "IAM itself decides in the account (its denials are in CloudTrail, not read here)"
AUDIT_NOT_READ = "EKS's audit log is in CloudWatch Logs, not read here: a refused controller fails what it could not do"


@dataclass
class FullStack:
    """The platform Stack of one run plus its add-ons Terraform root, boto3 clients and a Kubernetes client."""

    stack: Stack
    console: Console
    gitops: tuple[str, str] = ("", "")  # (repo URL, commit SHA) Argo CD syncs gitops/ from; else the run's record
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _kube: KubeClient | None = None
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
    @cached_property
    def addons_providers(self) -> ProviderSource | None:
        """Where `terraform init infra/addons` gets its providers here; None where nothing serves them."""
        return addons_provider_source(self.run.path("terraform"), provider_pins(versions()))

    def addons_terraform(self) -> Terraform:
        if self._addons is None:
            emulator = self.stack.emulator(start=False)
            self._addons = Terraform(
                repo_root() / "infra" / "addons",
                self.run.dir,
                name="addons",
                env=emulator.child_env(self.stack.region) if emulator else dict(os.environ),
                provider=self.addons_providers or self.stack.terraform.provider,
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
            "kube_token_command": kube_token_command(),
        }

    def destroy(self, root: str) -> str | None:
        if root == "addons" and self.caps.local_kubernetes:
            applied = self.run.settings.get(local.ADDONS_BY_TERRAFORM)
            plane = local.cluster(self.run)
            destroyed = False
            # Applied by Terraform: destroyed by it, as on EKS, proving its order (the bootstrap's finalizer first).
            if isinstance(applied, dict) and plane is not None and plane.serving():
                with self.stack.step("terraform destroy infra/addons"):
                    runner = self.addons_terraform()
                    if not runner.initialized:
                        runner.init()
                    runner.destroy(applied)
                destroyed = True
            # The rest lives in the run's own etcd, and the controllers are its processes: stopping the processes
            # removes them all, as destroying the EKS cluster would.
            stopped = len(local.records(self.run))
            with self.stack.step("stop the local cluster and its controllers"):
                local.stop(self.run)
            return (
                f"{'terraform destroyed infra/addons, then ' if destroyed else ''}stopped the run's {stopped} local "
                "processes; the add-ons were in its etcd"
            )
        runner = self.addons_terraform() if root == "addons" else self.stack.terraform
        with self.stack.step(f"terraform destroy infra/{root}"):
            if not runner.initialized:
                runner.init()
            runner.destroy(self.addons_variables() if root == "addons" else self.stack.variables())
        return None

    # --- the cluster
    def kube(self) -> KubeClient:
        if self._kube is None:
            # The Kubernetes client library: only once a cluster is reached.
            from harness.kube.client import connect, connect_kubeconfig

            if self.caps.local_kubernetes:
                # Not local_cluster(): with a controller dead the API server still answers (the teardown needs it).
                plane = local.cluster(self.run)
                if plane is None:
                    raise EnvironmentProblem(f"run {self.run.id} has no local cluster")
                self._kube = connect_kubeconfig(plane.kubeconfig)
            else:
                self._kube = connect(self.cluster_name(), session=self.stack.aws_target().session)
        return self._kube

    def local_cluster(self) -> ControlPlane:
        """The run's local control plane, refusing when it or any process of the run is gone."""
        plane = local.cluster(self.run)
        if plane is None:
            raise EnvironmentProblem(f"run {self.run.id} has no local cluster: `harness up --run-id {self.run.id}`")
        local.require_running(self.run)
        return plane

    def identities_honoured(self) -> list[Result]:
        """On local, whether the controllers' identities held: the API server refused none of their calls (its
        audit log, by their ServiceAccounts) and the Pod Identity agent gave each its role's credentials. A
        refusal there is one on EKS too."""
        plane = local.cluster(self.run) if self.caps.local_kubernetes else None
        if plane is None:
            return [
                Result.not_applicable(rbac.REFUSALS_CHECK, self.run.target, AUDIT_NOT_READ),
                Result.not_applicable(pod_identity.CREDENTIALS_CHECK, self.run.target, EKS_POD_IDENTITY),
                Result.not_applicable(authorization.IAM_CHECK, self.run.target, IAM_IN_ACCOUNT),
            ]
        return local.identities_honoured(self.run, plane)

    def dead_processes(self) -> dict[str, str]:
        """On local, each process of the run that died, and each controller whose pod's container exited, -> one
        line with its log's last words; elsewhere none."""
        return local.crashed(self.run) if self.caps.local_kubernetes else {}

    def down_processes(self) -> dict[str, str]:
        """dead_processes, less the controllers the kubelet restarts within seconds (the teardown waits for them): what
        the teardown cannot count on."""
        return local.crashed(self.run, current=True) if self.caps.local_kubernetes else {}

    def cluster_name(self) -> str:
        name = self.run.settings.get("cluster_name") or self.stack.variables()["cluster_name"]
        return str(name)

    def cluster_exists(self) -> bool:
        try:
            self.clients("eks").describe_cluster(name=self.cluster_name())
        except ClientError as exc:
            if is_gone(exc):
                return False
            raise EnvironmentProblem(f"cannot read EKS cluster {self.cluster_name()}: {exc}") from None
        return True

    # --- teardown
    def teardown_facts(self) -> td.TeardownFacts:
        platform_applied = bool(self.stack.terraform.managed_resources())
        if self.caps.local_kubernetes:
            addons_applied = bool(local.records(self.run)) and bool(self.run.settings.get(local.ADDONS))
            plane = local.cluster(self.run)
            return td.TeardownFacts(
                kubernetes_unsupported="",
                target=self.run.target,
                addons_applied=addons_applied,
                platform_applied=platform_applied,
                cluster_exists=plane is not None and plane.serving(),
            )
        # The add-ons need a Kubernetes API: on a target without one they were never applied.
        addons_applied = self.caps.supports(KUBERNETES_CAPABILITY) and bool(self.addons_terraform().managed_resources())
        return td.TeardownFacts(
            kubernetes_unsupported=self.caps.reason(KUBERNETES_CAPABILITY),
            target=self.run.target,
            addons_applied=addons_applied,
            platform_applied=platform_applied,
            cluster_exists=self.cluster_exists() if addons_applied else True,
        )

    def set_addons_state_aside(self) -> None:
        """The cluster is gone, so nothing in the add-ons state exists any more; keep the file for the record."""
        state = self.addons_terraform().state_path
        if state.exists():
            state.rename(state.with_name(state.name + ".orphaned"))
            self.say(f"teardown: {td.ADDONS_WENT_WITH_CLUSTER}; add-ons state kept as {state.name}.orphaned")


def teardown_run(full: FullStack) -> list[Result]:
    """The full, re-runnable teardown of a run; also what `harness down` does. Stops the emulator last."""
    stack = full.stack
    emulator = stack.emulator(start=False)
    if stack.capabilities.emulated and (emulator is None or not emulator.alive()):
        stack.down()  # the emulator held everything in memory: nothing can be left
        gone = Result.passed("teardown", "the run's emulator is stopped, and everything it held went with it")
        full.say(f"teardown: {gone.why}")
        return [gone]
    try:
        plan = td.plan_teardown(full.teardown_facts())
        if any(step.skip_reason == td.ADDONS_WENT_WITH_CLUSTER for step in plan):
            full.set_addons_state_aside()  # so a re-run converges instead of failing on an unreachable API
        teardown = td.Teardown(
            full.run,
            full.clients,
            full.kube,
            full.destroy,
            dead_processes=full.down_processes,
            clock=full.clock,
            sleep=full.sleep,
            on_start=lambda step: full.say(f"teardown {step} ..."),
            on_step=lambda r: full.say(f"teardown {r.name}: {r.status.value}: {r.why}"),
        )
        return teardown.execute(plan)
    finally:
        stack.down()  # nothing left in state by now: this only stops the run's processes and its emulator


def kube_token_command() -> list[str]:
    """What prints the add-ons providers' EKS token: the AWS CLI where installed, else this harness itself."""
    if shutil.which("aws"):
        return ["aws", "eks", "get-token"]
    return [sys.executable, "-m", "harness", "eks-token"]
