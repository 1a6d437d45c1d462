"""Tear a run down without leaks, in the order the controllers need.

Terraform knows nothing of what the controllers created: the AWS Load Balancer Controller's ALB, target
groups and security groups, Karpenter's instances, launch templates and instance profiles. Destroying the
add-ons first would kill the controllers and strand all of that, and those leftovers (ENIs, security
groups) then block the VPC's destroy. So, while the controllers still run:

1. remove-gitops     delete the root Applications (so nothing re-creates the ApplicationSets), then the
                     ApplicationSets; their Applications' finalizers delete what they synced; wait until
                     no Application is left.
2. remove-ingresses  delete any Ingress still there; wait until the run's ALBs, target groups and the
                     controller's security groups are gone from AWS.
3. remove-nodepools  delete NodePools (Karpenter drains and terminates its nodes) and wait until no
                     Karpenter instance of the run is left; then delete the EC2NodeClasses and wait until
                     the launch templates and instance profiles Karpenter made for them are gone.
4. destroy-addons    terraform destroy infra/addons.
5. destroy-platform  terraform destroy infra/platform.
6. sweep             delete anything still tagged with the run id (harness.aws.sweep) and prove nothing is left.

Every step runs even when an earlier one failed (a later step or the sweep may still clean up), and every
step is idempotent and judges what exists: a kind the API does not serve (a run interrupted before Argo CD or
Karpenter installed their CRDs) has nothing to remove, while any other error (403, 500, unreachable) fails the
step: re-running after a crash, from another shell, is always safe. `plan_teardown` decides
which steps apply (pure); `Teardown` carries them out through injected clients, clock and sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.aws import leaks, sweep
from harness.aws.leaks import ClientFactory
from harness.errors import HarnessError
from harness.keys import NODECLASS_TAG, NODEPOOL_LABEL
from harness.kube.api import (
    APPLICATION,
    APPLICATION_SET,
    EC2_NODE_CLASS,
    NODE_POOL,
    CustomResource,
    KubeClient,
    KubeObject,
    NotServed,
)
from harness.results import Result, Status
from harness.run import Run
from harness.targets import controlplane, node_registrar
from harness.waits import wait_for

ARGOCD_NAMESPACE = "argocd"
LB_CONTROLLER_TAG = "elbv2.k8s.aws/cluster"
KUBERNETES_STEPS = ("remove-gitops", "remove-ingresses", "remove-nodepools")
STEPS = (*KUBERNETES_STEPS, "destroy-addons", "destroy-platform", "sweep")
RECORD = "teardown.json"


@dataclass(frozen=True)
class TeardownTimeouts:
    """Seconds to wait for each controller to finish (ALB deletion ~1-2 min; node drain up to the
    NodePool's terminationGracePeriod of 10 min)."""

    applications: float = 900.0  # includes the ALB and node deletions their finalizers wait for
    load_balancers: float = 600.0
    karpenter_nodes: float = 900.0


@dataclass(frozen=True)
class TeardownFacts:
    """What is known about the run before tearing it down."""

    kubernetes_unsupported: str  # the target's reason, "" when it serves Kubernetes
    target: str
    addons_applied: bool
    platform_applied: bool
    cluster_exists: bool = True  # False once EKS says the cluster is gone (e.g. a half-finished destroy)


@dataclass(frozen=True)
class PlannedStep:
    name: str
    skip_reason: str = ""  # empty: run it


# The controllers' workloads, as the ops nodes' kubelet names them (their pods' app.kubernetes.io/name).
APPLICATION_CONTROLLER = "argocd-application-controller"
LB_CONTROLLER = "aws-load-balancer-controller"
KARPENTER = "karpenter"
# The run's processes and workloads (local target) each step's wait needs alive: with one dead, what it waits for
# cannot happen.
STEP_PROCESSES: Mapping[str, tuple[str, ...]] = {
    # Argo CD's finalizer deletes what it synced: the game's Ingress waits on the LB controller's finalizer, the
    # NodePool and EC2NodeClass on Karpenter's.
    "remove-gitops": (
        APPLICATION_CONTROLLER,
        LB_CONTROLLER,
        KARPENTER,
        controlplane.CONTROLLER_MANAGER,
    ),
    "remove-ingresses": (LB_CONTROLLER,),
    "remove-nodepools": (KARPENTER, node_registrar.PROCESS),
}

CLUSTER_GONE = "the EKS cluster no longer exists"
ADDONS_WENT_WITH_CLUSTER = "the cluster is gone, and the add-ons (in-cluster only) went with it"


def plan_teardown(facts: TeardownFacts) -> list[PlannedStep]:
    """Which steps run and why the others do not. The order is fixed (see the module docstring)."""
    cluster_gone = facts.addons_applied and (not facts.platform_applied or not facts.cluster_exists)
    if facts.kubernetes_unsupported:
        kube_skip = f"not applicable on {facts.target}: {facts.kubernetes_unsupported}"
    elif not facts.platform_applied and not facts.addons_applied:
        kube_skip = "no cluster: the platform state is empty (never applied, or already destroyed)"
    elif cluster_gone:
        kube_skip = CLUSTER_GONE
    elif not facts.addons_applied:
        kube_skip = "no controllers: the add-ons state is empty (never applied, or already destroyed)"
    else:
        kube_skip = ""
    if facts.kubernetes_unsupported:
        addons_skip = kube_skip
    elif cluster_gone:
        addons_skip = ADDONS_WENT_WITH_CLUSTER  # a destroy could never reach the API: set the state aside
    else:
        addons_skip = "" if facts.addons_applied else "the add-ons state is empty"
    return [
        *(PlannedStep(name, kube_skip) for name in KUBERNETES_STEPS),
        PlannedStep("destroy-addons", addons_skip),
        PlannedStep("destroy-platform", "" if facts.platform_applied else "the platform state is empty"),
        PlannedStep("sweep"),
    ]


# ---------------------------------------------------------------- what the controllers left in AWS


def alb_leftovers(clients: ClientFactory, run_id: str) -> list[str]:
    """The run's load balancers, target groups and the security groups the LB controller made for them."""
    found = [leak.label() for leak in leaks.find_load_balancers(clients, run_id)]
    found += [leak.label() for leak in leaks.find_target_groups(clients, run_id)]
    ec2 = clients("ec2")
    controller = {"Name": "tag-key", "Values": [LB_CONTROLLER_TAG]}
    for group in leaks.ec2_run_items(ec2, "describe_security_groups", "SecurityGroups", run_id, controller):
        found.append(f"security_group {group['GroupId']} ({group.get('GroupName', '')})")
    return found


def karpenter_leftovers(clients: ClientFactory, run_id: str) -> list[str]:
    """Instances of the run that Karpenter launched and that are not yet terminated."""
    ec2 = clients("ec2")
    filters = [
        *leaks.run_filters(run_id),
        {"Name": "tag-key", "Values": [NODEPOOL_LABEL]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]},
    ]
    found = []
    for reservation in leaks.pages(ec2, "describe_instances", "Reservations", Filters=filters):
        for instance in reservation.get("Instances", []):
            if leaks.tags_match(instance.get("Tags"), run_id):
                found.append(f"instance {instance['InstanceId']} ({instance['State']['Name']})")
    return found


# Karpenter names its launch templates after its API group and tags the instance profiles it makes for an
# EC2NodeClass with the class's name (NODECLASS_TAG).
KARPENTER_LAUNCH_TEMPLATE_PREFIX = "karpenter.k8s.aws/"


def karpenter_class_leftovers(clients: ClientFactory, run_id: str) -> list[str]:
    """The launch templates and instance profiles of the run that Karpenter made for its EC2NodeClasses."""
    found = [
        leak.label()
        for leak in leaks.find_launch_templates(clients, run_id)
        if leak.name.startswith(KARPENTER_LAUNCH_TEMPLATE_PREFIX)
    ]
    iam = clients("iam")
    for leak in leaks.find_instance_profiles(clients, run_id):
        profile = iam.get_instance_profile(InstanceProfileName=leak.ref)["InstanceProfile"]
        if NODECLASS_TAG in leaks.tag_map(profile.get("Tags")):
            found.append(leak.label())
    return found


def judge_gone(name: str) -> Callable[[Sequence[str]], Result]:
    """A judge for wait_for: PASS when nothing is left, PENDING (naming what is) otherwise."""

    def judge(left: Sequence[str]) -> Result:
        if not left:
            return Result.passed(name, "none left")
        return Result.pending(name, f"{len(left)} left: {', '.join(left[:5])}", left=list(left))

    judge.__name__ = name
    return judge


# ---------------------------------------------------------------- the teardown itself


@dataclass
class Teardown:
    """Carries out plan_teardown for one run. `connect_kube` is called once, lazily; `destroy(root)` runs
    terraform destroy of infra/<root> (or returns what it did instead); `on_start` and `on_step` see each step
    start and its Result (progress)."""

    run: Run
    clients: ClientFactory
    connect_kube: Callable[[], KubeClient]
    destroy: Callable[[str], str | None]
    timeouts: TeardownTimeouts = field(default_factory=TeardownTimeouts)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    sweep_policy: sweep.RetryPolicy = field(default_factory=sweep.RetryPolicy)
    on_start: Callable[[str], None] = lambda _step: None
    on_step: Callable[[Result], None] = lambda _result: None
    # The run's dead processes (name -> one line with its log's last words); none on a managed cluster.
    dead_processes: Callable[[], Mapping[str, str]] = dict
    _kube: KubeClient | None = None

    def kube(self) -> KubeClient:
        if self._kube is None:
            self._kube = self.connect_kube()
        return self._kube

    def execute(self, plan: Sequence[PlannedStep]) -> list[Result]:
        actions: dict[str, Callable[[], Result]] = {
            "remove-gitops": self.remove_gitops,
            "remove-ingresses": self.remove_ingresses,
            "remove-nodepools": self.remove_nodepools,
            "destroy-addons": lambda: self.destroy_root("addons"),
            "destroy-platform": lambda: self.destroy_root("platform"),
            "sweep": self.sweep,
        }
        results = []
        for step in plan:
            if step.skip_reason:
                result = Result(step.name, Status.NOT_APPLICABLE, step.skip_reason)
            else:
                self.on_start(step.name)
                try:
                    result = actions[step.name]()
                except HarnessError as exc:  # one step failing must not stop the rest of the teardown
                    result = Result.failed(step.name, str(exc))
            results.append(result)
            self.on_step(result)
            self._record(results)
        return results

    def _record(self, results: Sequence[Result]) -> None:
        rows = [{"step": r.name, "status": r.status.value, "why": r.why} for r in results]
        self.run.path(RECORD).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")

    def _wait(self, step: str, name: str, fetch: Callable[[], Sequence[str]], timeout: float) -> Result:
        """Until `fetch` finds nothing left; at once, naming it, when a process the step needs has died."""

        def hopeless(_: Sequence[str]) -> str | None:
            dead = self.dead_processes()
            return next((dead[p] for p in STEP_PROCESSES.get(step, ()) if p in dead), None)

        return wait_for(fetch, judge_gone(name), timeout, clock=self.clock, sleep=self.sleep, terminal=hopeless)

    def remove_gitops(self) -> Result:
        kube = self.kube()
        apps = existing(kube, APPLICATION, ARGOCD_NAMESPACE)
        # Roots first: a root Application left alive would re-create the ApplicationSets we delete next.
        roots = [app for app in apps if not _owned_by_application_set(app)]
        deleted = [
            f"application/{_name(app)}"
            for app in roots
            if kube.delete_custom(APPLICATION, _name(app), ARGOCD_NAMESPACE)
        ]
        for appset in existing(kube, APPLICATION_SET, ARGOCD_NAMESPACE):
            if kube.delete_custom(APPLICATION_SET, _name(appset), ARGOCD_NAMESPACE):
                deleted.append(f"applicationset/{_name(appset)}")
        waited = self._wait(
            "remove-gitops",
            "applications gone",
            lambda: [f"application/{_name(a)}" for a in existing(kube, APPLICATION, ARGOCD_NAMESPACE)],
            self.timeouts.applications,
        )
        return _step_result("remove-gitops", waited, deleted=deleted)

    def remove_ingresses(self) -> Result:
        kube = self.kube()
        deleted = []
        for ingress in kube.list_ingresses(None):
            namespace, name = ingress["metadata"]["namespace"], _name(ingress)
            if kube.delete_ingress(namespace, name):
                deleted.append(f"{namespace}/{name}")
        waited = self._wait(
            "remove-ingresses",
            "load balancers gone",
            lambda: alb_leftovers(self.clients, self.run.id),
            self.timeouts.load_balancers,
        )
        return _step_result("remove-ingresses", waited, deleted_ingresses=deleted)

    def remove_nodepools(self) -> Result:
        kube = self.kube()
        deleted = [f"nodepool/{_name(p)}" for p in existing(kube, NODE_POOL) if kube.delete_custom(NODE_POOL, _name(p))]
        waited = self._wait(
            "remove-nodepools",
            "karpenter instances gone",
            lambda: karpenter_leftovers(self.clients, self.run.id),
            self.timeouts.karpenter_nodes,
        )
        # After the nodes: Karpenter removes the launch templates and the instance profile it made for a class when
        # the class goes.
        for node_class in existing(kube, EC2_NODE_CLASS):
            if kube.delete_custom(EC2_NODE_CLASS, _name(node_class)):
                deleted.append(f"ec2nodeclass/{_name(node_class)}")
        if waited.ok:
            waited = self._wait(
                "remove-nodepools",
                "karpenter launch templates and instance profiles gone",
                lambda: karpenter_class_leftovers(self.clients, self.run.id),
                self.timeouts.karpenter_nodes,
            )
        return _step_result("remove-nodepools", waited, deleted=deleted)

    def destroy_root(self, root: str) -> Result:
        done = self.destroy(root)
        return Result.passed(f"destroy-{root}", done or f"terraform destroy of infra/{root} finished")

    def sweep(self) -> Result:
        report = sweep.sweep(self.clients, self.run.id, policy=self.sweep_policy, sleep=self.sleep)
        self.run.path("sweep.txt").write_text("\n".join(report.lines()) + "\n", encoding="utf-8")
        evidence: dict[str, Any] = {
            "deleted": [o.leak.label() for o in report.outcomes if o.deleted],
            "failed": [f"{o.leak.label()}: {o.error}" for o in report.outcomes if not o.deleted],
            "remaining": [leak.label() for leak in report.remaining + report.undeletable],
        }
        if report.clean:
            found = len(report.found)
            why = "nothing tagged with the run id was left" if not found else f"deleted {found} leftover(s); none left"
            return Result.passed("sweep", why, **evidence)
        return Result.failed(
            "sweep", f"{len(evidence['remaining'])} resource(s) still tagged with the run id", **evidence
        )


def existing(kube: KubeClient, resource: CustomResource, namespace: str | None = None) -> list[KubeObject]:
    """The objects of a kind; none when the API does not serve the kind (its CRD was never installed)."""
    try:
        return kube.list_custom(resource, namespace)
    except NotServed:
        return []


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _owned_by_application_set(app: dict[str, Any]) -> bool:
    owners = (app.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("kind") == "ApplicationSet" for owner in owners)


def _step_result(step: str, waited: Result, **evidence: Any) -> Result:
    return Result(step, waited.status, f"{waited.name}: {waited.why}", {**waited.evidence, **evidence})


def teardown_ok(results: Sequence[Result]) -> bool:
    return all(result.ok for result in results)
