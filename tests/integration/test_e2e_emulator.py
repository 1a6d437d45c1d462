"""`harness e2e --target emulator --yes` for real against a moto server: safety checks, platform apply, AWS
checks, teardown, sweep, report; the Kubernetes stages reported not applicable with the reason from
infra/targets.yaml. Leaks tagged with the run id are planted before the run (as controllers would leave
them) and must be swept; look-alikes of another run must survive. Also `harness sweep` on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from harness.aws import emulator as emu
from harness.aws import leaks
from harness.plugin import stack_skip_reason
from harness.project import capabilities

pytestmark = pytest.mark.integration

RUN_ID = "r-e2e-emu-1"
OTHER_RUN = "r-e2e-other-1"
REGION = "us-east-1"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def tags_for(run_id: str) -> dict[str, str]:
    return {"project": "eks-platform", "run-id": run_id, "expires-at": "2030-01-01T00:00:00+00:00"}


def kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def plant(clients: Callable[[str], Any], run_id: str, suffix: str) -> dict[str, str]:
    """What controllers create outside Terraform: a tagged VPC holding an untagged security group (the ALB
    controller's), Karpenter's launch template and instance profile, a queue, a rule, a log group."""
    tags = tags_for(run_id)
    ec2, iam = clients("ec2"), clients("iam")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": kv(tags)}])
    vpc_id = vpc["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName=f"k8s-game-{suffix}", Description="alb", VpcId=vpc_id)["GroupId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"karpenter-{suffix}",
        LaunchTemplateData={"InstanceType": "m7i.large"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": kv(tags)}],
    )
    role = iam.create_role(RoleName=f"planted-node-{suffix}", AssumeRolePolicyDocument=TRUST, Tags=kv(tags))
    iam.create_instance_profile(InstanceProfileName=f"planted-profile-{suffix}")
    iam.add_role_to_instance_profile(InstanceProfileName=f"planted-profile-{suffix}", RoleName=role["Role"]["RoleName"])
    queue = clients("sqs").create_queue(QueueName=f"planted-{suffix}", tags=tags)["QueueUrl"]
    clients("events").put_rule(Name=f"planted-{suffix}", EventPattern='{"source":["aws.ec2"]}', Tags=kv(tags))
    clients("logs").create_log_group(logGroupName=f"/planted/{suffix}", tags=tags)
    return {
        "vpc": vpc_id,
        "group": group,
        "template": template["LaunchTemplate"]["LaunchTemplateId"],
        "role": role["Role"]["RoleName"],
        "queue": queue,
    }


def plant_untagged_look_alikes(clients: Callable[[str], Any]) -> dict[str, str]:
    """Same names, no tags, outside any run's VPC: nothing links them to a run, so they must survive."""
    queue = clients("sqs").create_queue(QueueName="planted-ours-lookalike")["QueueUrl"]
    template = clients("ec2").create_launch_template(
        LaunchTemplateName="karpenter-ours-lookalike", LaunchTemplateData={"InstanceType": "m7i.large"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    role = clients("iam").create_role(RoleName="planted-node-ours-lookalike", AssumeRolePolicyDocument=TRUST)
    return {"queue": queue, "template": template, "role": role["Role"]["RoleName"]}


@dataclass
class E2ERun:
    done: subprocess.CompletedProcess[str]
    run_dir: Path
    clients: Callable[[str], Any]
    ours: dict[str, str]
    theirs: dict[str, str]
    untagged: dict[str, str]


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emu.Emulator]:
    server = emu.start(tmp_path_factory.mktemp("emulator") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


def clients_for(endpoint: str) -> Callable[[str], Any]:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    cache: dict[str, Any] = {}
    return lambda service: cache.setdefault(service, session.client(service, endpoint_url=endpoint))


def harness_cli(args: list[str], endpoint: str, runs: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "E2E_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        HARNESS_RUNS_DIR=str(runs),
    )
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def e2e_run(moto_server: emu.Emulator, tmp_path_factory: pytest.TempPathFactory) -> E2ERun:
    if reason := stack_skip_reason("emulator"):
        pytest.skip(reason)
    clients = clients_for(moto_server.endpoint)
    ours, theirs = plant(clients, RUN_ID, "ours"), plant(clients, OTHER_RUN, "theirs")
    untagged = plant_untagged_look_alikes(clients)
    runs = tmp_path_factory.mktemp("runs")
    done = harness_cli(["e2e", "--target", "emulator", "--yes", "--run-id", RUN_ID], moto_server.endpoint, runs, 1500)
    return E2ERun(done, runs / RUN_ID, clients, ours, theirs, untagged)


def test_the_whole_orchestration_passes(e2e_run: E2ERun) -> None:
    assert e2e_run.done.returncode == 0, e2e_run.done.stdout[-3000:] + e2e_run.done.stderr[-3000:]
    assert "Traceback" not in e2e_run.done.stderr
    out = e2e_run.done.stdout
    assert "account 123456789012" in out  # the safety check ran against the emulator's STS
    assert "cost: none on the emulator" in out
    stages = json.loads((e2e_run.run_dir / "stages.json").read_text())
    assert {name: row["status"] for name, row in stages.items()} == {
        "platform": "pass",
        "addons": "n/a",
        "access": "n/a",
        "checks": "pass",
        "karpenter": "n/a",
        "teardown": "pass",
    }


def test_kubernetes_stages_say_why_they_do_not_apply(e2e_run: E2ERun) -> None:
    reason = capabilities("emulator").reason("kubernetes")
    assert reason  # from infra/targets.yaml
    for stage in ("addons", "access", "karpenter"):
        assert f"stage {stage}: n/a: not applicable on emulator: {reason}" in e2e_run.done.stdout


def test_aws_checks_really_ran(e2e_run: E2ERun) -> None:
    verify = json.loads((e2e_run.run_dir / "verify.json").read_text())
    assert sum(row["status"] == "pass" for row in verify) >= 5
    assert all(row["status"] in ("pass", "n/a") for row in verify)


def test_teardown_swept_the_planted_leaks_and_spared_look_alikes(e2e_run: E2ERun) -> None:
    steps = {row["step"]: row for row in json.loads((e2e_run.run_dir / "teardown.json").read_text())}
    assert steps["destroy-platform"]["status"] == "pass"
    assert steps["sweep"]["status"] == "pass" and steps["sweep"]["why"].startswith("deleted ")
    swept = (e2e_run.run_dir / "sweep.txt").read_text()
    for planted in ("planted-node-ours", "planted-profile-ours", e2e_run.ours["group"], e2e_run.ours["template"]):
        assert planted in swept
    assert leaks.find_leaks(e2e_run.clients, RUN_ID) == []  # nothing of the run is left in the emulator
    survivors = {leak.ref for leak in leaks.find_leaks(e2e_run.clients, OTHER_RUN)}
    assert {
        e2e_run.theirs["vpc"],
        e2e_run.theirs["group"],
        e2e_run.theirs["role"],
        e2e_run.theirs["queue"],
    } <= survivors
    untagged = e2e_run.untagged
    assert untagged["queue"] in e2e_run.clients("sqs").list_queues()["QueueUrls"]
    assert e2e_run.clients("iam").get_role(RoleName=untagged["role"])["Role"]["RoleName"] == untagged["role"]
    templates = e2e_run.clients("ec2").describe_launch_templates()["LaunchTemplates"]
    assert untagged["template"] in {t["LaunchTemplateId"] for t in templates}


def test_report_and_junit_are_written(e2e_run: E2ERun) -> None:
    report = (e2e_run.run_dir / "report.md").read_text()
    assert report.startswith(f"# e2e run {RUN_ID}: PASSED")
    assert f"make e2e-down RUN_ID={RUN_ID}" in report
    root = ET.parse(e2e_run.run_dir / "junit.xml").getroot()
    assert root.get("failures") == "0" and int(root.get("tests", "0")) > 10
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "e2e.platform",
        "e2e.addons",
        "e2e.access",
        "e2e.checks",
        "e2e.karpenter",
        "e2e.teardown",
    ]


def test_sweep_command_against_the_moto_server(moto_server: emu.Emulator, tmp_path: Path) -> None:
    clients = clients_for(moto_server.endpoint)
    ours, theirs = plant(clients, "r-sweep-cli-1", "sweep-cli"), plant(clients, "r-sweep-cli-2", "sweep-other")
    listed = harness_cli(
        ["sweep", "--run-id", "r-sweep-cli-1", "--target", "emulator", "--dry-run"], moto_server.endpoint, tmp_path, 120
    )
    assert listed.returncode == 1 and "would delete" in listed.stdout and ours["role"] in listed.stdout
    assert theirs["role"] not in listed.stdout
    deleted = harness_cli(
        ["sweep", "--run-id", "r-sweep-cli-1", "--target", "emulator"], moto_server.endpoint, tmp_path, 300
    )
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert leaks.find_leaks(clients, "r-sweep-cli-1") == []
    assert theirs["vpc"] in {leak.ref for leak in leaks.find_leaks(clients, "r-sweep-cli-2")}
