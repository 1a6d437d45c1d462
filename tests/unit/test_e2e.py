"""The e2e orchestration's decisions: safety checks, stage selection, the stage machine with its watchdog
(injected clock), the stage record for --resume, and the CLI refusing before anything is created."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from harness.aws import clients as aws_clients
from harness.cli import main
from harness.e2e import cli as e2e_cli
from harness.e2e import orchestration, safety, stages
from harness.e2e import report as rpt
from harness.e2e.evidence import collect_evidence
from harness.e2e.orchestration import E2E
from harness.e2e.stages import Selection, StageOutcome, Watchdog, execute_stages, select_stages
from harness.errors import EnvironmentProblem, InputError
from harness.kube.karpenter import SCALE_OUT_ANNOTATION
from harness.project import capabilities, repo_root, versions
from harness.results import Result, Status
from harness.run import create_run
from harness.targets.full_stack import FullStack, teardown_run

KUBE_REASON = "the emulated cluster has no Kubernetes API server behind it"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- safety


def test_aws_needs_the_account_named_and_emulator_defaults_to_motos() -> None:
    with pytest.raises(EnvironmentProblem, match="set E2E_AWS_ACCOUNT_ID"):
        aws_clients.expected_account("aws", {})
    assert aws_clients.expected_account("aws", {"E2E_AWS_ACCOUNT_ID": " 111122223333 "}) == "111122223333"
    assert aws_clients.expected_account("emulator", {}) == "123456789012"
    with pytest.raises(InputError, match="12 digits"):
        aws_clients.expected_account("aws", {"E2E_AWS_ACCOUNT_ID": "prod"})


def test_a_different_account_is_refused() -> None:
    aws_clients.check_account("111122223333", "111122223333", "aws")
    with pytest.raises(EnvironmentProblem, match="credentials are for account 444455556666, but E2E_AWS_ACCOUNT_ID"):
        aws_clients.check_account("111122223333", "444455556666", "aws")


def test_region_is_never_a_silent_default_on_aws() -> None:
    with pytest.raises(EnvironmentProblem, match="no AWS region"):
        aws_clients.resolve_region("aws", None, {"AWS_DEFAULT_REGION": "us-east-1"}, "")
    assert aws_clients.resolve_region("aws", None, {"AWS_REGION": "eu-west-1"}, "") == "eu-west-1"
    assert aws_clients.resolve_region("aws", "eu-north-1", {"AWS_REGION": "eu-west-1"}, "") == "eu-north-1"
    assert aws_clients.resolve_region("emulator", None, {}, "us-east-1") == "us-east-1"


class FakeStdin(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_confirmation() -> None:
    never: Callable[[str], str] = lambda _prompt: pytest.fail("must not ask")  # noqa: E731
    safety.confirm(True, FakeStdin(tty=False), never, "111122223333")
    with pytest.raises(InputError, match="pass --yes"):
        safety.confirm(False, FakeStdin(tty=False), never, "111122223333")
    safety.confirm(False, FakeStdin(tty=True), lambda _p: "111122223333\n", "111122223333")
    with pytest.raises(InputError, match="nothing was created"):
        safety.confirm(False, FakeStdin(tty=True), lambda _p: "yes", "111122223333")


def test_summary_names_tags_resources_and_cost(tmp_path: Path) -> None:
    run = create_run("aws", "r-summary-1", base=tmp_path)
    lines = safety.creation_summary(run, "eu-west-1", "111122223333", list(stages.STAGES), 90)
    text = "\n".join(lines)
    assert f"run-id={run.id}" in text and f"expires-at={run.expires_at}" in text
    assert "Application Load Balancer" in text and "Karpenter spot" in text
    hourly = sum(line.total for line in safety.cost_lines())
    assert 0.3 < hourly < 1.0  # the order of magnitude users should expect
    assert (
        lines[-1] == f"rough cost: ~${hourly:.2f}/hour; the watchdog tears down after 90 min (<= ~${hourly * 1.5:.2f})"
    )
    platform_only = sum(line.total for line in safety.cost_lines(stages=["platform", "checks", "teardown"]))
    assert platform_only < hourly


# ---------------------------------------------------------------- stage selection


def runs(selections: list[Selection]) -> list[str]:
    return [s.stage for s in selections if not s.status]


def test_default_runs_every_stage_in_order() -> None:
    assert runs(select_stages(target="aws")) == list(stages.STAGES)


def test_emulator_marks_kubernetes_stages_not_applicable_with_the_reason() -> None:
    chosen = select_stages(target="emulator", kubernetes_unsupported=KUBE_REASON)
    assert runs(chosen) == ["platform", "checks", "teardown"]
    na = {s.stage: s.why for s in chosen if s.status == rpt.NOT_APPLICABLE}
    assert na == dict.fromkeys(("addons", "access", "karpenter"), f"not applicable on emulator: {KUBE_REASON}")


def test_only_skip_and_resume() -> None:
    assert runs(select_stages(target="aws", only=["checks", "karpenter"])) == ["checks", "karpenter"]
    assert runs(select_stages(target="aws", skip=["teardown"])) == [
        "platform",
        "addons",
        "access",
        "checks",
        "karpenter",
    ]
    resumed = select_stages(target="aws", resume=True, passed_before=["platform", "addons", "teardown"])
    assert runs(resumed) == ["access", "checks", "karpenter", "teardown"]  # teardown is never "already done"
    assert resumed[0] == Selection("platform", rpt.SKIPPED, "passed in an earlier attempt (--resume)")
    with pytest.raises(InputError, match="unknown stage"):
        select_stages(target="aws", only=["deploy"])


# ---------------------------------------------------------------- the stage machine


def actions_log(clock: Clock, outcomes: dict[str, Any], cost: float = 10.0) -> tuple[dict[str, Any], list[str]]:
    called: list[str] = []

    def make(stage: str) -> Callable[[], StageOutcome]:
        def act() -> StageOutcome:
            called.append(stage)
            clock.now += cost
            outcome = outcomes.get(stage, StageOutcome(f"{stage} done"))
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome  # type: ignore[no-any-return]

        return act

    return {stage: make(stage) for stage in stages.STAGES}, called


def test_a_failed_stage_stops_the_rest_but_teardown_still_runs() -> None:
    clock = Clock()
    failing = StageOutcome("judged", (Result.passed("a", "ok"), Result.failed("alb serves", "HTTP 503")))
    actions, called = actions_log(clock, {"checks": failing})
    records = execute_stages(select_stages(target="aws"), actions, Watchdog(3600, clock), clock=clock)
    assert called == ["platform", "addons", "access", "checks", "teardown"]
    by = {r.name: r for r in records}
    assert by["checks"].status == rpt.FAILED and by["checks"].why == "1 of 2 judgement(s) failed: alb serves: HTTP 503"
    assert by["karpenter"].status == rpt.NOT_RUN and by["karpenter"].why == "not run: stage checks failed"
    assert by["teardown"].status == rpt.PASSED and by["platform"].seconds == 10.0


def test_a_harness_error_is_a_one_line_failure() -> None:
    clock = Clock()
    actions, called = actions_log(clock, {"platform": EnvironmentProblem("Terraform not found on PATH")})
    records = execute_stages(select_stages(target="aws"), actions, Watchdog(3600, clock), clock=clock)
    assert records[0].why == "Terraform not found on PATH" and called == ["platform", "teardown"]


def test_an_unexpected_exception_still_tears_down_and_keeps_the_traceback() -> None:
    clock = Clock()
    actions, called = actions_log(clock, {"checks": ValueError("boom\nsecond line")})
    records = execute_stages(select_stages(target="aws"), actions, Watchdog(3600, clock), clock=clock)
    checks = next(r for r in records if r.name == "checks")
    assert checks.status == rpt.FAILED and checks.why == "unexpected ValueError: boom"
    assert "Traceback" in checks.results[0].evidence["traceback"]
    assert called[-1] == "teardown"


def test_watchdog_stops_the_run_and_tears_down() -> None:
    clock = Clock()
    actions, called = actions_log(clock, {}, cost=25 * 60)  # every stage takes 25 minutes
    watchdog = Watchdog(60 * 60, clock)
    records = execute_stages(select_stages(target="aws"), actions, watchdog, clock=clock)
    assert called == ["platform", "addons", "access", "teardown"]  # 75 min > 60: checks never starts
    by = {r.name: r for r in records}
    assert by["checks"].why == "not run: watchdog: the run exceeded --max-minutes 60"
    assert by["karpenter"].status == rpt.NOT_RUN and by["teardown"].status == rpt.PASSED


def test_watchdog_bounds_waits_and_reports_remaining_time() -> None:
    clock = Clock()
    watchdog = Watchdog(600, clock)
    assert watchdog.bound(900) == 600 and watchdog.reason() is None
    clock.now += 550
    assert watchdog.bound(900) == 50 and watchdog.remaining() == 50
    clock.now += 100
    assert watchdog.bound(900) == 1.0  # one last judgement, never a zero timeout
    assert watchdog.reason() == "watchdog: the run exceeded --max-minutes 10"


def test_ctrl_c_tears_down_and_a_second_ctrl_c_stops() -> None:
    clock = Clock()
    actions, called = actions_log(clock, {"addons": KeyboardInterrupt()})
    records = execute_stages(select_stages(target="aws"), actions, Watchdog(3600, clock), clock=clock)
    assert called == ["platform", "addons", "teardown"]
    assert records[1].why.startswith("interrupted (Ctrl-C): tearing down")
    actions, _ = actions_log(clock, {"addons": KeyboardInterrupt(), "teardown": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        execute_stages(select_stages(target="aws"), actions, Watchdog(3600, clock), clock=clock)


def test_stage_records_survive_for_resume(tmp_path: Path) -> None:
    run = create_run("aws", "r-resume-1", base=tmp_path)
    clock = Clock()
    actions, _ = actions_log(clock, {"access": EnvironmentProblem("401")})
    execute_stages(
        select_stages(target="aws"),
        actions,
        Watchdog(3600, clock),
        clock=clock,
        on_record=lambda r: stages.write_stage_log(run, [r]),
    )
    assert stages.passed_stages(run) == ["platform", "addons", "teardown"]
    assert runs(select_stages(target="aws", resume=True, passed_before=stages.passed_stages(run))) == [
        "access",
        "checks",
        "karpenter",
        "teardown",
    ]
    run.path(stages.STAGES_FILE).write_text("{not json")
    with pytest.raises(InputError, match="unreadable stage record"):
        stages.read_stage_log(run)


def test_scale_out_count_comes_from_the_deployment_annotation() -> None:
    assert orchestration.scale_out_replicas(None) == 16  # gitops/apps/game-2048/deployment.yaml documents 16
    assert orchestration.scale_out_replicas({"metadata": {"annotations": {SCALE_OUT_ANNOTATION: "6"}}}) == 6
    with pytest.raises(InputError, match="scale-out-replicas"):
        orchestration.scale_out_replicas({"metadata": {"annotations": {}}})


# ---------------------------------------------------------------- the CLI refuses before creating anything


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for var in ("E2E_AWS_ACCOUNT_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    yield tmp_path / "runs"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_cli_refuses_without_account(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["e2e", "--target", "aws", "--region", "eu-west-1", "--yes"]) == 2
    assert "E2E_AWS_ACCOUNT_ID" in one_line_error(capsys)
    assert not clean_env.exists()  # not even a run directory


def test_cli_refuses_without_region(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "123456789012")
    assert main(["e2e", "--target", "aws", "--yes"]) == 2
    assert "no AWS region" in one_line_error(capsys)
    assert not clean_env.exists()


def test_cli_refuses_the_wrong_account(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "111122223333")
    with mock_aws():  # STS answers 123456789012
        assert main(["e2e", "--target", "aws", "--region", "eu-west-1", "--yes"]) == 2
    assert "credentials are for account 123456789012, but E2E_AWS_ACCOUNT_ID names 111122223333" in one_line_error(
        capsys
    )
    assert not clean_env.exists()


def test_cli_sweep_lists_then_deletes_a_planted_leak(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "123456789012")
    tags = [{"Key": "project", "Value": "eks-platform"}, {"Key": "run-id", "Value": "r-leaky-1"}]
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        sqs.create_queue(QueueName="leaked", tags={t["Key"]: t["Value"] for t in tags})
        sqs.create_queue(QueueName="not-ours", tags={"project": "eks-platform", "run-id": "r-other-1"})
        assert main(["sweep", "--run-id", "r-leaky-1", "--region", "eu-west-1", "--dry-run"]) == 1
        listed = capsys.readouterr().out
        assert "would delete 1 resource(s)" in listed and "leaked" in listed and "not-ours" not in listed
        assert main(["sweep", "--run-id", "r-leaky-1", "--region", "eu-west-1"]) == 0
        assert "clean: nothing tagged with the run id is left" in capsys.readouterr().out
        assert [u.rsplit("/", 1)[-1] for u in sqs.list_queues()["QueueUrls"]] == ["not-ours"]


def test_cli_sweep_refuses_the_wrong_account(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "111122223333")
    with mock_aws():
        assert main(["sweep", "--run-id", "r-leaky-1", "--region", "eu-west-1"]) == 2
    assert "refusing" in one_line_error(capsys)


# ---------------------------------------------------------------- the Karpenter experiment, on a fake cluster


class FakeKarpenterCluster:
    """Scaling game-2048 makes pods pending; Karpenter launches spot nodes `launch_after` seconds later and
    the pods become Ready; scaling back to the baseline (0 here, so that no pod holds a node) lets consolidation
    remove the nodes `consolidate_after` seconds later. Time only moves when the code under test sleeps."""

    def __init__(
        self,
        clock: Clock,
        *,
        launch_after: float | None = 60,
        consolidate_after: float = 120,
        tag_moved: bool = False,
        subnets_found: bool = True,
    ) -> None:
        self.clock, self.launch_after, self.consolidate_after = clock, launch_after, consolidate_after
        self.subnets_found = subnets_found
        self.replicas, self.scaled_at = 0, clock.now
        self.scale_calls: list[int] = []
        self.image = versions()["game_2048_image"]
        # What each kubelet pulled; with tag_moved, every other replica got newer bits under the same tag.
        repository = self.image.split("@")[0].rsplit(":", 1)[0]
        self.pulled = [f"{repository}@sha256:{'a' * 64}", f"{repository}@sha256:{('b' if tag_moved else 'a') * 64}"]

    def sleep(self, seconds: float) -> None:
        self.clock.now += seconds

    def stamp(self, offset: float) -> str:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(self.scaled_at + offset, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def elapsed(self) -> float:
        return self.clock.now - self.scaled_at

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "annotations": {SCALE_OUT_ANNOTATION: "4"}},
            "spec": {"replicas": self.replicas},
        }

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas, self.scaled_at = replicas, self.clock.now
        self.scale_calls.append(replicas)

    def nodes_up(self) -> bool:
        if not self.scale_calls:
            return False  # before the scale-out no pod needs a node
        if self.replicas > 2:
            return self.launch_after is not None and self.elapsed() >= self.launch_after
        return self.elapsed() < self.consolidate_after  # scaled back: nodes linger until consolidation

    def list_custom(self, resource: Any, namespace: str | None = None, label_selector: str = "") -> list[Any]:
        if not self.nodes_up() and self.replicas <= 2:
            return []
        t = {"type": "Launched", "status": "True", "lastTransitionTime": self.stamp(10)}
        ready = (
            [
                {"type": k, "status": "True", "lastTransitionTime": self.stamp(s)}
                for k, s in (("Registered", 40), ("Initialized", 55))
            ]
            if self.nodes_up()
            else []
        )
        return [
            {
                "metadata": {
                    "name": "apps-x",
                    "creationTimestamp": self.stamp(2),
                    "labels": {"karpenter.sh/nodepool": "apps", "karpenter.sh/capacity-type": "spot"},
                },
                "status": {
                    "nodeName": "ip-spot" if self.nodes_up() else None,
                    "conditions": [t, *ready],
                    "allocatable": {"cpu": "3920m"},
                },
            }
        ]

    def list_nodes(self, label_selector: str = "") -> list[Any]:
        if not self.nodes_up():
            return []
        return [
            {
                "metadata": {
                    "name": "ip-spot",
                    "labels": {"karpenter.sh/nodepool": "apps", "karpenter.sh/capacity-type": "spot"},
                },
                "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": self.stamp(50)}]},
            }
        ]

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[Any]:
        pods = []
        for i in range(self.replicas):
            placed = self.nodes_up()
            conditions = [
                {
                    "type": "PodScheduled",
                    "status": "True" if placed else "False",
                    "reason": "" if placed else "Unschedulable",
                    "lastTransitionTime": self.stamp(52),
                }
            ]
            if placed:
                conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": self.stamp(58 + i)})
            pods.append(
                {
                    "metadata": {
                        "name": f"game-2048-{i}",
                        "namespace": "game-2048",
                        "creationTimestamp": self.stamp(0),
                    },
                    "spec": {
                        "nodeName": "ip-spot" if placed else None,
                        "containers": [{"name": "game-2048", "image": self.image}],
                    },
                    "status": {
                        "phase": "Running" if placed else "Pending",
                        "conditions": conditions,
                        "containerStatuses": [{"name": "game-2048", "imageID": self.pulled[i % 2]}] if placed else [],
                    },
                }
            )
        return pods

    def list_events(self, namespace: str | None = None, field_selector: str = "") -> list[Any]:
        decided = self.consolidate_after - 10  # Karpenter decides, then drains and deletes the node
        if namespace == "default" and self.replicas <= 2 and self.scale_calls and self.elapsed() >= decided:
            return [
                {
                    "involvedObject": {"kind": "NodeClaim", "name": "apps-x"},
                    "reason": "DisruptionTerminating",
                    "message": "Disrupting NodeClaim: Empty",
                    "lastTimestamp": self.stamp(decided),
                }
            ]
        if namespace != "game-2048" or self.replicas <= 2:
            return []
        return [  # Karpenter nominates the first pod for the NodeClaim it launches
            {
                "involvedObject": {"kind": "Pod", "name": "game-2048-0", "namespace": "game-2048"},
                "reason": "Nominated",
                "message": "Pod should schedule on: nodeclaim/apps-x",
                "firstTimestamp": self.stamp(5),
            }
        ]

    def get_custom(self, resource: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The NodePool `apps` and its EC2NodeClass, Ready unless the EC2NodeClass's subnet selector finds none."""
        if resource.plural == "nodepools":
            return {
                "kind": "NodePool",
                "metadata": {"name": name},
                "spec": {"template": {"spec": {"nodeClassRef": {"name": "apps"}}}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        subnets = {
            "type": "SubnetsReady",
            "status": "True" if self.subnets_found else "False",
            "reason": "" if self.subnets_found else "SubnetsNotFound",
            "message": "no subnets matched",
        }
        ready = {"type": "Ready", "status": "True" if self.subnets_found else "False"}
        return {"kind": "EC2NodeClass", "metadata": {"name": name}, "status": {"conditions": [subnets, ready]}}


class FakeStack:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.capabilities = capabilities(run.target)
        self.steps: list[str] = []

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        self.steps.append(description)
        yield


def karpenter_e2e(tmp_path: Path, cluster: FakeKarpenterCluster, clock: Clock) -> E2E:
    from rich.console import Console

    run = create_run("aws", "r-karpenter-1", base=tmp_path)
    runner = E2E(
        FakeStack(run),
        Console(file=io.StringIO()),
        watchdog=Watchdog(3600, clock),
        clock=clock,
        sleep=cluster.sleep,
        now=lambda: datetime.fromtimestamp(clock.now, tz=timezone.utc),
        _kube=cluster,
    )
    # Stand-ins for the steps that need AWS (the EC2NodeClass's discovery, the pool's instances, the interruption
    # queue): their judges are tested in test_karpenter.py and the steps for real on the local target (tests/e2e).
    runner.node_class_discovery = lambda: Result.passed("discovery", "stand-in")  # type: ignore[method-assign]
    runner.pool_instances = lambda: [  # type: ignore[method-assign]
        Result.passed("pool instances", "stand-in"),
        Result.passed("spot prices", "stand-in"),
    ]
    runner.spot_interruption = lambda replicas: Result.passed("interruption", "stand-in")  # type: ignore[method-assign]
    return runner


def test_karpenter_stage_scales_out_judges_measures_and_scales_back(tmp_path: Path) -> None:
    clock = Clock()
    cluster = FakeKarpenterCluster(clock)
    runner = karpenter_e2e(tmp_path, cluster, clock)
    outcome = runner.karpenter()
    assert outcome.ok, [(r.name, r.why) for r in outcome.results]
    assert [r.name for r in outcome.results] == [
        "karpenter nodepool and ec2nodeclass ready",
        "discovery",
        "karpenter scales apps out for 4 pod(s)",
        "pool instances",
        "spot prices",
        "game-2048 pods run the pinned image",
        "interruption",
        "karpenter consolidates apps to the bin-packing minimum",
        "the run's processes kept running",  # n/a here (aws): the controllers are EKS's pods
        "the controllers' API calls are allowed by their RBAC",  # n/a here (aws): EKS's audit log is not read
        "the controllers get AWS credentials from their Pod Identity associations",  # n/a here: EKS's own agent
        "the controllers' AWS calls are allowed by their IAM roles",  # n/a here: IAM decides in the account
    ]
    assert outcome.results[2].evidence["events"]  # Karpenter's Nominated event reached the judgement
    assert cluster.scale_calls == [4, 0]  # to the annotated count, then back to the baseline
    assert runner.timeline is not None and len(runner.timeline.pods) == 4 and len(runner.timeline.nodes) == 1
    assert runner.scale_in_seconds == 110.0  # the scale back to Karpenter's decision, not to the next poll
    figures = runner.scale_out_figures
    assert figures is not None and (figures.first_node_ready, figures.all_pods_ready) == (50.0, 61.0)
    assert runner.run.path("karpenter-timeline.json").is_file()


def test_karpenter_stage_fails_when_new_replicas_pulled_other_bits_under_the_same_tag(tmp_path: Path) -> None:
    clock = Clock()
    cluster = FakeKarpenterCluster(clock, tag_moved=True)
    runner = karpenter_e2e(tmp_path, cluster, clock)
    outcome = runner.karpenter()
    pool, _discovery, scale_out, _instances, _prices, image, _interruption, scale_in, *_identity_rows = outcome.results
    assert pool.ok and scale_out.ok and scale_in.ok
    assert image.status is Status.FAIL and "2 different images under the moving tag" in image.why
    assert cluster.scale_calls == [4, 0]


def test_karpenter_stage_scales_back_even_when_no_node_ever_comes(tmp_path: Path) -> None:
    clock = Clock()
    cluster = FakeKarpenterCluster(clock, launch_after=None)
    runner = karpenter_e2e(tmp_path, cluster, clock)
    outcome = runner.karpenter()
    assert not outcome.ok
    scale_out = outcome.results[2]
    assert scale_out.status is Status.FAIL and scale_out.why.startswith("timed out after 900s")
    assert len(outcome.results) == 8  # no image to judge on pods that never ran, no node to interrupt
    assert cluster.scale_calls == [4, 0]
    assert runner.scale_in_seconds == 110.0  # the NodeClaim still launching is consolidated away


# ---------------------------------------------------------------- evidence bundle


class FakeTerraform:
    def __init__(self, outputs: dict[str, Any] | Exception) -> None:
        self.outputs = outputs

    def output(self) -> dict[str, Any]:
        if isinstance(self.outputs, Exception):
            raise self.outputs
        return self.outputs


class EvidenceCluster:
    """Events and objects answer; reading the LB controller's pods fails (as an unreachable API would)."""

    def list_events(self, namespace: str | None = None, field_selector: str = "") -> list[Any]:
        return [{"involvedObject": {"kind": "Pod", "name": "game-2048-0"}, "reason": "FailedScheduling"}]

    def list_custom(self, resource: Any, namespace: str | None = None, label_selector: str = "") -> list[Any]:
        return [{"kind": resource.plural, "metadata": {"name": "x"}}]

    def list_nodes(self, label_selector: str = "") -> list[Any]:
        return []

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[Any]:
        if "load-balancer" in label_selector:
            raise EnvironmentProblem("cannot reach Kubernetes API https://x while listing pods: timeout")
        return [{"metadata": {"name": "karpenter-abc"}}]

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int = 200) -> str:
        return f"log line of {name}"


def test_evidence_bundle_collects_each_piece_on_its_own(tmp_path: Path) -> None:
    from rich.console import Console

    from harness.project import capabilities

    run = create_run("aws", "r-evidence-1", base=tmp_path)
    run.settings["cluster_name"] = "eks-r-evidence-1"
    (run.path("logs")).mkdir()
    run.path("logs", "platform-01-plan.log").write_text("Plan: 42 to add")
    stack = FakeStack(run)
    stack.capabilities = capabilities("aws")  # type: ignore[attr-defined]
    stack.terraform = FakeTerraform({"cluster_name": "eks-r-evidence-1"})  # type: ignore[attr-defined]
    runner = FullStack(stack, Console(file=io.StringIO()), _kube=EvidenceCluster())
    folder = collect_evidence(runner)
    files = {p.name: p.read_text() for p in folder.iterdir()}
    assert "FailedScheduling" in files["events.json"]
    assert '"nodeclaims"' in files["nodeclaims.json"] and '"applications"' in files["applications.json"]
    assert "log line of karpenter-abc" in files["logs-karpenter.txt"]
    assert files["logs-aws-load-balancer-controller.txt"].startswith("could not collect: cannot reach")
    assert "eks-r-evidence-1" in files["terraform-outputs-platform.json"]
    assert files["last-plan.log"] == "Plan: 42 to add"


def test_harness_down_on_aws_refuses_the_wrong_account(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = create_run("aws", "r-down-aws-1", base=clean_env)
    run.settings["region"] = "eu-west-1"
    run.save()
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "111122223333")
    with mock_aws():
        assert main(["down", "--target", "aws", "--run-id", "r-down-aws-1"]) == 2
    assert "credentials are for account 123456789012" in one_line_error(capsys)


# ---------------------------------------------------------------- the watchdog stops applies, never destroys


class RecordingRunner:
    """A Terraform runner stand-in: records whether a watchdog would abort each command."""

    def __init__(self, own: Callable[[], str | None] | None = None) -> None:
        self.watchdog = own
        self.initialized = True
        self.seen: list[tuple[str, str | None]] = []

    def _note(self, command: str) -> None:
        self.seen.append((command, self.watchdog() if self.watchdog else None))

    def destroy(self, variables: Any) -> None:
        self._note("destroy")

    def managed_resources(self) -> list[str]:
        return ["aws_vpc.this"]


class ExpiredStack(FakeStack):
    """As Stack does, its runner polls the stack's own watchdog beside the emulator's death notice."""

    def __init__(self, run: Any, runner: RecordingRunner) -> None:
        super().__init__(run)
        self.watchdog: Callable[[], str | None] | None = None
        own = runner.watchdog
        runner.watchdog = lambda: (own() if own else None) or (self.watchdog() if self.watchdog else None)
        self.terraform = runner

    def up(self) -> dict[str, Any]:
        self.terraform._note("apply")
        raise EnvironmentProblem("terraform apply aborted: watchdog")

    def variables(self) -> dict[str, Any]:
        return {}


def test_the_watchdog_aborts_an_apply_but_not_the_teardown_destroy(tmp_path: Path) -> None:
    from rich.console import Console

    clock = Clock()
    runner = RecordingRunner(own=lambda: None)  # the emulator's death notice: nothing to report
    stack = ExpiredStack(create_run("aws", "r-guard-1", base=tmp_path), runner)
    watchdog = Watchdog(60, clock)
    clock.now += 120  # past --max-minutes 1
    runner_e2e = E2E(stack, Console(file=io.StringIO()), watchdog=watchdog)
    with pytest.raises(EnvironmentProblem):
        runner_e2e.platform()
    runner_e2e.destroy("platform")
    assert runner.seen == [("apply", "watchdog: the run exceeded --max-minutes 1"), ("destroy", None)]


def test_cli_refuses_without_terraform_before_creating_anything(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2E_AWS_ACCOUNT_ID", "123456789012")
    monkeypatch.setenv("HARNESS_API_PUBLIC_CIDRS", "203.0.113.7/32")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("HARNESS_TERRAFORM", raising=False)
    with mock_aws():
        assert main(["e2e", "--target", "aws", "--region", "eu-west-1", "--yes", "--skip", "addons"]) == 2
        assert "Terraform not found" in one_line_error(capsys)
        vpcs = boto3.client("ec2", region_name="eu-west-1").describe_vpcs()["Vpcs"]
        assert [v["IsDefault"] for v in vpcs] == [True]  # nothing was created


def test_preflight_catches_missing_platform_inputs_and_add_ons_root(tmp_path: Path) -> None:
    class NoCidrs(FakeStack):
        def variables(self) -> dict[str, Any]:
            raise InputError("the aws target needs the CIDRs allowed to reach the Kubernetes API")

    stack = NoCidrs(create_run("aws", "r-preflight-1", base=tmp_path))
    with pytest.raises(InputError, match="CIDRs"):
        e2e_cli.preflight(stack, ["platform", "checks", "teardown"])
    e2e_cli.preflight(stack, ["checks"])  # a checks-only run on an existing platform needs no inputs


def test_addons_variables_match_what_infra_addons_declares(tmp_path: Path) -> None:
    """Drift between the e2e and the add-ons root would only show after the platform is paid for."""
    import hcl2

    from harness.project import repo_root

    with (repo_root() / "infra" / "addons" / "variables.tf").open() as handle:
        blocks = hcl2.load(handle)["variable"]
    declared = {name.strip('"'): body for block in blocks for name, body in block.items()}
    required = {name for name, body in declared.items() if "default" not in body}

    class PlatformRunner:
        state_path = tmp_path / "platform.tfstate"

    stack = FakeStack(create_run("aws", "r-vars-1", base=tmp_path))
    stack.terraform = PlatformRunner()  # type: ignore[attr-defined]
    runner = FullStack(stack, None, gitops=("https://example.com/x.git", "main"))  # type: ignore[arg-type]
    supplied = runner.addons_variables()
    assert set(supplied) <= set(declared), set(supplied) - set(declared)
    assert required <= set(supplied), required - set(supplied)
    assert supplied["run_id"] == "r-vars-1" and supplied["expires_at"] == stack.run.expires_at


# ---------------------------------------------------------------- teardown of a run whose cluster is already gone


class StateRunner:
    def __init__(self, state_path: Path, resources: list[str]) -> None:
        self.state_path, self.resources = state_path, resources
        self.initialized, self.watchdog, self.destroyed = True, None, 0
        state_path.write_text("{}")

    def managed_resources(self) -> list[str]:
        return self.resources

    def destroy(self, variables: Any) -> None:
        self.destroyed += 1
        self.resources = []


class HalfDestroyedStack(FakeStack):
    """An aws run whose earlier destroy deleted the EKS cluster but failed before the VPC."""

    def __init__(self, run: Any) -> None:
        from harness.project import capabilities

        super().__init__(run)
        self.target, self.capabilities = "aws", capabilities("aws")
        self.terraform = StateRunner(run.path("platform.tfstate"), ["module.network.aws_vpc.this"])
        self.downs = 0

    def emulator(self, start: bool = False) -> None:
        return None

    def aws_target(self) -> Any:
        class Target:
            client = staticmethod(lambda service: boto3.client(service, region_name="eu-west-1"))

        return Target()

    def variables(self) -> dict[str, Any]:
        return {}

    def down(self) -> None:
        self.downs += 1


def test_a_run_whose_cluster_is_gone_converges_instead_of_failing_on_the_api(clean_env: Path, tmp_path: Path) -> None:
    from rich.console import Console

    run = create_run("aws", "r-half-1", base=tmp_path)
    run.settings["cluster_name"] = "eks-r-half-1"
    stack = HalfDestroyedStack(run)
    addons = StateRunner(run.path("addons.tfstate"), ["helm_release.karpenter"])
    out = io.StringIO()

    def no_kube() -> Any:
        raise AssertionError("the Kubernetes API of a deleted cluster must not be called")

    with mock_aws():  # EKS answers ResourceNotFoundException for the cluster
        runner = FullStack(stack, Console(file=out), _addons=addons, sleep=lambda _s: None)
        runner.kube = no_kube  # type: ignore[method-assign]
        results = {r.name: r for r in teardown_run(runner)}
    assert results["remove-gitops"].why == "the EKS cluster no longer exists"
    assert results["destroy-addons"].why == "the cluster is gone, and the add-ons (in-cluster only) went with it"
    assert results["destroy-platform"].status is Status.PASS and stack.terraform.destroyed == 1
    assert stack.steps == ["terraform destroy infra/platform"]  # shown on the progress display
    assert results["sweep"].status is Status.PASS and stack.downs == 1
    assert not run.path("addons.tfstate").exists() and run.path("addons.tfstate.orphaned").exists()
    assert "add-ons state kept as addons.tfstate.orphaned" in out.getvalue()


class ProvisioningElbv2:
    """A real (moto) elbv2 client whose load balancers read `provisioning` for the first `polls` describes: the
    state a new ALB is in for minutes on AWS, and one moto never reports after CreateLoadBalancer."""

    def __init__(self, real: Any, polls: int | None) -> None:
        self.real, self.polls = real, polls

    def get_paginator(self, name: str) -> Any:
        paginator, outer = self.real.get_paginator(name), self

        class Provisioning:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                for page in paginator.paginate(**kwargs):
                    if outer.polls is None or outer.polls > 0:
                        for balancer in page["LoadBalancers"]:
                            balancer["State"] = {"Code": "provisioning"}
                    yield page
                if outer.polls is not None:
                    outer.polls -= 1

        return Provisioning()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _alb_behind_an_ingress() -> tuple[Any, Any, str]:
    """A VPC with two public, ELB-tagged subnets and an internet-facing ALB with an ip target, in moto."""
    import boto3

    ec2, elbv2 = boto3.client("ec2", region_name="us-east-1"), boto3.client("elbv2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    subnets = []
    for index, zone in enumerate(("us-east-1a", "us-east-1b")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=zone)["Subnet"]
        ec2.create_tags(Resources=[subnet["SubnetId"]], Tags=[{"Key": "kubernetes.io/role/elb", "Value": "1"}])
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet["SubnetId"])
        subnets.append(subnet["SubnetId"])
    balancer = elbv2.create_load_balancer(Name="k8s-game", Subnets=subnets, Scheme="internet-facing")
    arn, dns = balancer["LoadBalancers"][0]["LoadBalancerArn"], balancer["LoadBalancers"][0]["DNSName"]
    group = elbv2.create_target_group(Name="k8s-game-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
    group_arn = group["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=arn, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}]
    )
    elbv2.register_targets(TargetGroupArn=group_arn, Targets=[{"Id": "10.0.0.10", "Port": 80}])
    return ec2, elbv2, dns


class ServedGame(FakeKarpenterCluster):
    """The game's Service as gitops/ declares it and one Ready replica at the IP the ALB registered."""

    def get_service(self, namespace: str, name: str) -> Any:
        return yaml.safe_load((repo_root() / "gitops/apps/game-2048/service.yaml").read_text(encoding="utf-8"))

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[Any]:
        return [
            {
                "metadata": {"name": "game-2048-0", "namespace": "game-2048"},
                "spec": {"containers": [{"name": "game-2048", "ports": [{"name": "http", "containerPort": 80}]}]},
                "status": {
                    "phase": "Running",
                    "podIP": "10.0.0.10",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        ]


@pytest.mark.parametrize(("polls", "passes"), [(2, True), (None, False)])
def test_the_checks_stage_waits_for_a_provisioning_alb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, polls: int | None, passes: bool
) -> None:
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    with mock_aws():
        ec2, elbv2, dns = _alb_behind_an_ingress()
        runner = karpenter_e2e(tmp_path, ServedGame(clock), clock)
        runner.sleep = sleep
        clients = {"ec2": ec2, "elbv2": ProvisioningElbv2(elbv2, polls)}
        monkeypatch.setattr(runner, "clients", clients.__getitem__)
        balancer, targets, health = runner.load_balancer(dns)
    assert balancer.ok is passes, balancer.why
    if passes:
        assert targets.ok and targets.evidence["pods"] == {"10.0.0.10:80": "game-2048/game-2048-0"}, targets.why
        assert health.status is Status.PASS  # aws: ELB's health checks are judged
        assert clock.now > 1000.0  # it waited while the ALB was provisioning
    else:
        assert balancer.status is not Status.PASS and "provisioning" in balancer.why


def test_the_not_applicable_rows_carry_the_judges_own_names() -> None:
    """What a target without Kubernetes reports as n/a is named exactly as the judges name their results on AWS."""
    from harness.aws import authorization, checks
    from harness.e2e.orchestration import KUBERNETES_CHECK_NAMES
    from harness.kube import argocd, core, ingress, rbac
    from harness.processes import judge_processes
    from harness.targets import pod_identity

    facts = ingress.LoadBalancerFacts("k8s-game.example", None)
    judged = [
        argocd.judge_application_sets([]),
        argocd.judge_applications([]),
        core.judge_ops_nodes([]),
        core.judge_ops_node_instances([], {}),
        core.judge_controllers_on_ops({}, []),
        core.judge_workload_off_ops([], []),
        core.judge_readiness_probes(None, []),
        ingress.judge_ingress_address(None),
        ingress.judge_load_balancer(facts),
        ingress.judge_target_groups(facts, {}),
        ingress.judge_target_health(facts),
        ingress.judge_game_page(ingress.HttpProbe("http://k8s-game.example/", None, "", "no answer")),
        checks.judge_run_tags({}, {}, name=checks.CONTROLLER_RUN_TAGS),
        judge_processes([], {}),
        rbac.judge_refusals([], {}),
        pod_identity.judge_credentials([], {}),
        authorization.judge_decisions([], {}),
    ]
    assert [r.name for r in judged] == list(KUBERNETES_CHECK_NAMES)


def test_karpenter_stage_does_not_scale_against_a_nodepool_karpenter_cannot_use(tmp_path: Path) -> None:
    clock = Clock()
    cluster = FakeKarpenterCluster(clock, subnets_found=False)
    runner = karpenter_e2e(tmp_path, cluster, clock)
    outcome = runner.karpenter()
    (ready,) = outcome.results
    assert not outcome.ok and "SubnetsReady=False (SubnetsNotFound" in ready.why
    assert cluster.scale_calls == []  # nothing scaled, so nothing to scale back


# ---------------------------------------------------------------- the checks stage's placement waits


def placement_e2e(tmp_path: Path, reader: Any, clock: Clock) -> E2E:
    runner = karpenter_e2e(tmp_path, FakeKarpenterCluster(clock), clock)
    runner._kube = reader
    runner.sleep = lambda seconds: setattr(clock, "now", clock.now + seconds)
    return runner


def test_the_game_placement_wait_ends_at_once_on_karpenters_words(tmp_path: Path) -> None:
    """The issue's run: a NodePool no instance type satisfies. The game's pods never schedule; Karpenter says why
    within a minute, and the check ends on its words instead of waiting out its 600 s."""
    from datetime import datetime, timezone

    from kube_fixtures import FakeKubeClient, load

    reader = FakeKubeClient(
        load("recorded/nodepool_no_instance_types/pods_game-2048.yaml"),
        load("recorded/synced/nodes.yaml"),
        load("recorded/nodepool_no_instance_types/events_default.yaml"),
        load("recorded/nodepool_no_instance_types/events_game-2048.yaml"),
    )
    clock = Clock()
    runner = placement_e2e(tmp_path, reader, clock)
    runner.now = lambda: datetime(2026, 12, 6, 6, 36, 10, tzinfo=timezone.utc)  # the wait began before the events
    result = runner.game_off_ops()
    assert result.status is Status.FAIL and clock.now == 1000.0  # at the first poll
    assert result.why.startswith("karpenter: NodePool/apps NoCompatibleInstanceTypes:")
    runner.now = lambda: datetime(2026, 12, 6, 6, 45, tzinfo=timezone.utc)  # changed: events older than the wait
    stale = runner.game_off_ops()
    assert stale.why == "timed out after 600s: no game-2048 pod is scheduled yet" and clock.now >= 1600.0
    # The same wait later in the phase that made the events (the sync): they still count, and it ends at once.
    runner.phase_began = datetime(2026, 12, 6, 6, 36, 10, tzinfo=timezone.utc)
    began = clock.now
    again = runner.game_off_ops()
    assert again.why.startswith("karpenter: NodePool/apps NoCompatibleInstanceTypes:") and clock.now == began


def test_a_dead_process_of_the_run_ends_a_wait_at_once_in_its_last_words(tmp_path: Path) -> None:
    """Karpenter killed while the game's pods wait for nodes (local target): the wait ends at its next poll naming
    the process and its log's last words, not after its 600 s with "3 of 16 pod(s) Ready"."""
    from kube_fixtures import FakeKubeClient, load

    reader = FakeKubeClient(
        load("recorded/synced/nodes.yaml"), load("recorded/nodepool_no_instance_types/pods_game-2048.yaml")
    )
    clock = Clock()
    runner = placement_e2e(tmp_path, reader, clock)
    dead: dict[str, str] = {}
    runner.dead_processes = lambda: dead  # type: ignore[method-assign]
    alive = runner.game_off_ops()
    assert alive.status is Status.FAIL and alive.why.startswith("timed out after 600s"), alive.why
    dead["karpenter"] = "karpenter (pid 4242) is not running: signal: killed (log: logs/karpenter.log)"
    began = clock.now
    result = runner.game_off_ops()
    assert result.status is Status.FAIL and result.why == dead["karpenter"] and clock.now == began


def test_the_ops_placement_checks_wait_instead_of_judging_once(tmp_path: Path) -> None:
    from kube_fixtures import FakeKubeClient, load

    class NodesLate(FakeKubeClient):
        """The recorded ops nodes, listed only from the third read on (the node group still joining)."""

        reads = 0

        def list_nodes(self, label_selector: str = "") -> list[Any]:
            self.reads += 1
            return super().list_nodes(label_selector) if self.reads >= 3 else []

    reader = NodesLate(
        load("recorded/synced/nodes.yaml"),
        load("recorded/synced/pods_argocd.yaml"),
        load("recorded/synced/pods_kube-system.yaml"),
    )
    clock = Clock()
    runner = placement_e2e(tmp_path, reader, clock)
    nodes = runner.ops_nodes()
    assert nodes.status is Status.PASS and nodes.evidence["polls"] == 3  # before: judged once, "not registered yet"
    controllers = runner.controllers_on_ops()
    assert controllers.status is Status.PASS, controllers.why
