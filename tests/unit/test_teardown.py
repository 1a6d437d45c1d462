"""Controller-aware teardown order, with moto for AWS and a fake Kubernetes API whose controllers lag:
Argo CD, the ALB controller and Karpenter finish their deletions only some polls after being asked."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from harness.aws.sweep import RetryPolicy
from harness.errors import EnvironmentProblem
from harness.keys import NODECLASS_TAG
from harness.kube.api import APPLICATION, APPLICATION_SET, EC2_NODE_CLASS, NODE_POOL, CustomResource, NotServed
from harness.results import Status
from harness.run import create_run
from harness.targets import teardown
from harness.targets.teardown import PlannedStep, Teardown, TeardownFacts, TeardownTimeouts, plan_teardown

REGION = "eu-west-1"


KARPENTER_PROFILE = "eks-platform_1234"


def kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class World:
    """A fake clock plus the controllers' pending work: each `sleep` advances time and lets them act."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []
        self.pending: list[tuple[float, str, Callable[[], None]]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        due = [p for p in self.pending if p[0] <= self.now]
        self.pending = [p for p in self.pending if p[0] > self.now]
        for _, what, action in due:
            self.log.append(f"controller: {what}")
            action()

    def later(self, seconds: float, what: str, action: Callable[[], None]) -> None:
        self.pending.append((self.now + seconds, what, action))


class FakeCluster:
    """The KubeClient calls the teardown makes, over an in-memory store, with Argo CD, the ALB controller
    and Karpenter simulated as delayed reactions (`lag` seconds, or never when None)."""

    def __init__(
        self,
        world: World,
        aws: Any,
        *,
        alb_lag: float | None = 90,
        karpenter_lag: float | None = 120,
        class_lag: float | None = 30,
        listing_fails: Exception | None = None,
    ) -> None:
        self.world, self.aws = world, aws
        self.alb_lag, self.karpenter_lag, self.class_lag = alb_lag, karpenter_lag, class_lag
        self.listing_fails = listing_fails  # what listing a custom resource raises instead of answering
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        owner = [{"kind": "ApplicationSet", "name": "x"}]
        self.put(APPLICATION, "argocd", "bootstrap", {})
        self.put(APPLICATION_SET, "argocd", "game", {})
        self.put(APPLICATION_SET, "argocd", "ops", {})
        self.put(APPLICATION, "argocd", "game-2048", {"ownerReferences": owner})
        self.put(APPLICATION, "argocd", "ops-karpenter", {"ownerReferences": owner})
        self.put(NODE_POOL, None, "apps", {})
        self.put(EC2_NODE_CLASS, None, "apps", {})
        self.ingresses = {("game-2048", "game-2048")}

    def put(self, resource: CustomResource, namespace: str | None, name: str, meta: dict[str, Any]) -> None:
        self.objects[(resource.plural, namespace, name)] = {"metadata": {"name": name, "namespace": namespace, **meta}}

    def list_custom(
        self, resource: CustomResource, namespace: str | None = None, label_selector: str = ""
    ) -> list[Any]:
        if self.listing_fails is not None:
            raise self.listing_fails
        return [
            obj
            for (plural, ns, _), obj in sorted(self.objects.items())
            if plural == resource.plural and ns == namespace
        ]

    def delete_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> bool:
        self.world.log.append(f"delete {resource.plural}/{name}")
        if self.objects.pop((resource.plural, namespace, name), None) is None:
            return False
        if resource is APPLICATION_SET and name == "game":  # Argo: the Application, then (finalizer) the Ingress
            self.world.later(20, "argo deletes game-2048", lambda: self._argo_delete("game-2048", ingress=True))
        if resource is APPLICATION_SET and name == "ops":
            self.world.later(
                20, "argo deletes ops-karpenter", lambda: self._argo_delete("ops-karpenter", nodepool=True)
            )
        if resource is NODE_POOL:
            self._karpenter_drains()
        if resource is EC2_NODE_CLASS and self.class_lag is not None:
            self.world.later(
                self.class_lag, "karpenter deletes the class's launch templates and instance profile", self.drop_class
            )
        return True

    def drop_class(self) -> None:
        ec2, iam = self.aws("ec2"), self.aws("iam")
        for template in ec2.describe_launch_templates()["LaunchTemplates"]:
            if template["LaunchTemplateName"].startswith(teardown.KARPENTER_LAUNCH_TEMPLATE_PREFIX):
                ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
        iam.delete_instance_profile(InstanceProfileName=KARPENTER_PROFILE)

    def _argo_delete(self, app: str, ingress: bool = False, nodepool: bool = False) -> None:
        self.objects.pop((APPLICATION.plural, "argocd", app), None)
        if ingress and self.ingresses:
            self.delete_ingress("game-2048", "game-2048")
        if nodepool and self.objects.pop((NODE_POOL.plural, None, "apps"), None) is not None:
            self._karpenter_drains()

    def _karpenter_drains(self) -> None:
        if self.karpenter_lag is not None:
            self.world.later(self.karpenter_lag, "karpenter terminates its nodes", self._terminate_karpenter_nodes)

    def _terminate_karpenter_nodes(self) -> None:
        ec2 = self.aws("ec2")
        ids = [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]}])[
                "Reservations"
            ]
            for i in r["Instances"]
        ]
        ec2.terminate_instances(InstanceIds=ids)

    def list_ingresses(self, namespace: str | None = None) -> list[Any]:
        return [{"metadata": {"namespace": ns, "name": name}} for ns, name in sorted(self.ingresses)]

    def delete_ingress(self, namespace: str, name: str) -> bool:
        self.world.log.append(f"delete ingress/{name}")
        if (namespace, name) not in self.ingresses:
            return False
        self.ingresses.discard((namespace, name))
        if self.alb_lag is not None:
            self.world.later(self.alb_lag, "alb controller deletes the ALB", self._delete_alb)
        return True

    def _delete_alb(self) -> None:
        elbv2, ec2 = self.aws("elbv2"), self.aws("ec2")
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
            elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        for tg in elbv2.describe_target_groups()["TargetGroups"]:
            elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
        for group in ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["elbv2.k8s.aws/cluster"]}])[
            "SecurityGroups"
        ]:
            ec2.delete_security_group(GroupId=group["GroupId"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        cache: dict[str, Any] = {}
        yield lambda service: cache.setdefault(service, boto3.client(service, region_name=REGION))


def plant_controller_resources(aws: Callable[[str], Any], tags: dict[str, str]) -> None:
    ec2, elbv2 = aws("ec2"), aws("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": kv(tags)}])["Vpc"][
        "VpcId"
    ]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(
        GroupName="k8s-game",
        Description="alb",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": kv({**tags, "elbv2.k8s.aws/cluster": "eks-platform"})}
        ],
    )["GroupId"]
    elbv2.create_load_balancer(Name="k8s-game", Subnets=subnets, SecurityGroups=[sg], Tags=kv(tags))
    elbv2.create_target_group(Name="k8s-game", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip", Tags=kv(tags))
    # What Karpenter makes for the EC2NodeClass: a launch template and an instance profile, with the class's tags.
    ec2.create_launch_template(
        LaunchTemplateName=f"{teardown.KARPENTER_LAUNCH_TEMPLATE_PREFIX}1234",
        LaunchTemplateData={},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": kv(tags)}],
    )
    aws("iam").create_instance_profile(InstanceProfileName=KARPENTER_PROFILE, Tags=kv({**tags, NODECLASS_TAG: "apps"}))
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(
        ImageId=image,
        MinCount=2,
        MaxCount=2,
        SubnetId=subnets[0],
        TagSpecifications=[{"ResourceType": "instance", "Tags": kv({**tags, "karpenter.sh/nodepool": "apps"})}],
    )


class Harness:
    def __init__(self, tmp_path: Path, aws: Callable[[str], Any], **cluster: Any) -> None:
        self.world = World()
        self.run = create_run("aws", "r-teardown-1", base=tmp_path)
        plant_controller_resources(aws, self.run.tags)
        self.cluster = FakeCluster(self.world, aws, **cluster)
        self.aws = aws
        self.snapshots: dict[str, tuple[list[str], list[str]]] = {}
        self.teardown = Teardown(
            self.run,
            aws,
            lambda: self.cluster,
            self.destroy,
            TeardownTimeouts(300, 300, 300),
            clock=self.world.clock,
            sleep=self.world.sleep,
            sweep_policy=RetryPolicy(3, 1),
        )

    def destroy(self, root: str) -> None:
        self.world.log.append(f"terraform destroy {root}")
        self.snapshots[root] = (
            teardown.alb_leftovers(self.aws, self.run.id),
            teardown.karpenter_leftovers(self.aws, self.run.id),
        )


FULL = TeardownFacts(kubernetes_unsupported="", target="aws", addons_applied=True, platform_applied=True)


def test_controllers_finish_before_terraform_destroys_them(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    h = Harness(tmp_path, aws)
    results = h.teardown.execute(plan_teardown(FULL))

    assert [r.name for r in results] == list(teardown.STEPS)
    assert all(r.status is Status.PASS for r in results), [(r.name, r.why) for r in results]
    log = h.world.log
    # Roots before ApplicationSets (else the root re-creates them); destroys only after controllers finished.
    assert log.index("delete applications/bootstrap") < log.index("delete applicationsets/game")
    assert log.index("controller: alb controller deletes the ALB") < log.index("terraform destroy addons")
    assert log.index("controller: karpenter terminates its nodes") < log.index("terraform destroy addons")
    assert log.index("controller: karpenter deletes the class's launch templates and instance profile") < log.index(
        "terraform destroy addons"
    )
    assert log.index("terraform destroy addons") < log.index("terraform destroy platform")
    assert h.snapshots["addons"] == ([], [])  # nothing of the controllers' left when their add-ons go


def test_sweep_after_fake_destroy_removes_what_terraform_would_have(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    h = Harness(tmp_path, aws)
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    assert results["sweep"].status is Status.PASS
    assert aws("ec2").describe_vpcs(Filters=[{"Name": "tag:run-id", "Values": [h.run.id]}])["Vpcs"] == []


def test_a_stuck_alb_controller_fails_its_step_but_the_sweep_still_cleans_up(
    tmp_path: Path, aws: Callable[[str], Any]
) -> None:
    h = Harness(tmp_path, aws, alb_lag=None)
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}

    stuck = results["remove-ingresses"]
    assert stuck.status is Status.FAIL
    assert "timed out after 300s" in stuck.why and "load_balancer" in stuck.why
    assert results["destroy-addons"].status is Status.PASS  # later steps still ran
    assert results["sweep"].status is Status.PASS and any(
        "load_balancer" in d for d in results["sweep"].evidence["deleted"]
    )
    assert teardown.alb_leftovers(aws, h.run.id) == []
    assert not teardown.teardown_ok(list(results.values()))


def test_a_class_whose_launch_templates_and_profile_karpenter_keeps_fails_its_step(
    tmp_path: Path, aws: Callable[[str], Any]
) -> None:
    h = Harness(tmp_path, aws, class_lag=None)
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    kept = results["remove-nodepools"]
    assert kept.status is Status.FAIL and "timed out after 300s" in kept.why, kept.why
    assert f"instance_profile {KARPENTER_PROFILE}" in kept.why and "launch_template" in kept.why, kept.why
    assert results["sweep"].status is Status.PASS  # the sweep still removes them
    assert teardown.karpenter_class_leftovers(aws, h.run.id) == []


def test_a_dead_controller_ends_only_the_steps_that_wait_on_it_at_once_and_the_sweep_cleans_up(
    tmp_path: Path, aws: Callable[[str], Any]
) -> None:
    """Karpenter's process died (local target): what carries its finalizers (the NodePool Argo CD deletes, the
    NodeClaims) can never go, so remove-gitops and remove-nodepools fail at their first poll in the process's last
    words instead of waiting out their 300 s; remove-ingresses, which needs only the LB controller, runs as usual."""
    h = Harness(tmp_path, aws, karpenter_lag=None, class_lag=None)
    last_words = "karpenter (pid 4242) is not running: panic: runtime error (log: karpenter.log)"
    h.teardown.dead_processes = lambda: {teardown.KARPENTER: last_words}
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    for step, waited in (("remove-gitops", "applications gone"), ("remove-nodepools", "karpenter instances gone")):
        dead = results[step]
        assert dead.status is Status.FAIL and dead.why == f"{waited}: {last_words}", dead.why
        assert dead.evidence["waited_s"] == 0 and dead.evidence["polls"] == 1
    assert results["remove-ingresses"].ok  # the LB controller is alive
    assert results["sweep"].status is Status.PASS  # the sweep terminates the instances Karpenter left
    assert teardown.karpenter_leftovers(aws, h.run.id) == []


def test_unreachable_cluster_fails_kubernetes_steps_and_terraform_and_sweep_still_run(
    tmp_path: Path, aws: Callable[[str], Any]
) -> None:
    h = Harness(tmp_path, aws)

    def unreachable() -> Any:
        raise EnvironmentProblem("cannot reach Kubernetes API https://x while listing applications: timeout")

    h.teardown.connect_kube = unreachable
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    assert results["remove-gitops"].status is Status.FAIL and "cannot reach" in results["remove-gitops"].why
    assert [
        step for step in ("destroy-addons", "destroy-platform") if f"terraform destroy {step[8:]}" in h.world.log
    ] == ["destroy-addons", "destroy-platform"]
    assert results["sweep"].status is Status.PASS  # it deleted the stranded ALB and instances directly
    assert teardown.karpenter_leftovers(aws, h.run.id) == []


def test_kinds_the_api_does_not_serve_have_nothing_to_remove(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    # Interrupted in the add-ons stage: the cluster is up, but Argo CD's and Karpenter's CRDs never went in.
    h = Harness(tmp_path, aws, listing_fails=NotServed("Kubernetes API https://x does not serve applications"))
    h.cluster.objects.clear()
    ec2 = aws("ec2")  # and Karpenter never launched a node
    launched = ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]}])
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for r in launched["Reservations"] for i in r["Instances"]])
    h.cluster.drop_class()  # nor made a launch template or an instance profile for a class
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    assert all(r.status is Status.PASS for r in results.values()), [(r.name, r.why) for r in results.values()]
    assert results["remove-gitops"].evidence["deleted"] == [] and results["remove-nodepools"].evidence["deleted"] == []


def test_a_forbidden_listing_still_fails_its_step(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    forbidden = EnvironmentProblem("Kubernetes API https://x forbids listing applications.argoproj.io (403): no")
    h = Harness(tmp_path, aws, listing_fails=forbidden)
    results = {r.name: r for r in h.teardown.execute(plan_teardown(FULL))}
    assert results["remove-gitops"].status is Status.FAIL and "403" in results["remove-gitops"].why
    assert results["remove-nodepools"].status is Status.FAIL
    assert not teardown.teardown_ok(list(results.values()))


def test_progress_is_recorded_in_the_run_dir_after_every_step(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    h = Harness(tmp_path, aws)
    seen: list[int] = []
    h.teardown.on_step = lambda _r: seen.append(
        len(json.loads(h.run.path("teardown.json").read_text())) if h.run.path("teardown.json").exists() else 0
    )
    h.teardown.execute(plan_teardown(FULL))
    assert seen == [0, 1, 2, 3, 4, 5]  # recorded right after on_step sees each result
    assert h.run.path("sweep.txt").read_text().startswith(f"sweep of run {h.run.id}")


def test_each_executed_step_is_announced_before_it_runs(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    h = Harness(tmp_path, aws)
    events: list[str] = []
    h.teardown.on_start = lambda step: events.append(f"start {step}")
    h.teardown.on_step = lambda r: events.append(f"done {r.name}")
    h.teardown.execute(plan_teardown(TeardownFacts("", "aws", addons_applied=False, platform_applied=True)))
    assert events == [
        "done remove-gitops",
        "done remove-ingresses",
        "done remove-nodepools",
        "done destroy-addons",
        "start destroy-platform",
        "done destroy-platform",
        "start sweep",
        "done sweep",
    ]  # skipped steps are reported, never started


def test_rerun_after_a_complete_teardown_is_a_no_op(tmp_path: Path, aws: Callable[[str], Any]) -> None:
    h = Harness(tmp_path, aws)
    h.teardown.execute(plan_teardown(FULL))
    again = h.teardown.execute(plan_teardown(TeardownFacts("", "aws", addons_applied=False, platform_applied=False)))
    assert [r.status for r in again] == [Status.NOT_APPLICABLE] * 5 + [Status.PASS]
    assert again[-1].why == "nothing tagged with the run id was left"


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (FULL, ["", "", "", "", "", ""]),
        (
            TeardownFacts("the emulated cluster has no Kubernetes API server behind it", "emulator", False, True),
            ["not applicable on emulator: the emulated cluster has no Kubernetes API server behind it"] * 4 + ["", ""],
        ),
        (
            TeardownFacts("", "aws", addons_applied=False, platform_applied=True),
            ["no controllers: the add-ons state is empty (never applied, or already destroyed)"] * 3
            + ["the add-ons state is empty", "", ""],
        ),
        (
            TeardownFacts("", "aws", addons_applied=True, platform_applied=False),
            [teardown.CLUSTER_GONE] * 3 + [teardown.ADDONS_WENT_WITH_CLUSTER, "the platform state is empty", ""],
        ),
        (  # a destroy that deleted the cluster but not the VPC: Kubernetes steps and add-ons can only fail
            TeardownFacts("", "aws", addons_applied=True, platform_applied=True, cluster_exists=False),
            [teardown.CLUSTER_GONE] * 3 + [teardown.ADDONS_WENT_WITH_CLUSTER, "", ""],
        ),
    ],
)
def test_plan_teardown(facts: TeardownFacts, expected: list[str]) -> None:
    plan = plan_teardown(facts)
    assert [step.name for step in plan] == list(teardown.STEPS)
    assert [step.skip_reason for step in plan] == expected
    assert plan[-1] == PlannedStep("sweep")  # the sweep always runs
