"""The ALB chain: the Ingress as a local-target run recorded it (with its address, and without one while the LB
controller found no subnets), a real ALB + target group built in moto, and an injected HTTP getter."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import yaml
from kube_fixtures import FakeKubeClient, items, load
from moto import mock_aws

from harness.kube.ingress import (
    HttpProbe,
    LoadBalancerFacts,
    fetch_load_balancer,
    ingress_hostname,
    judge_game_page,
    judge_ingress_address,
    judge_load_balancer,
    judge_target_groups,
    judge_target_health,
    pod_endpoints,
    probe_http,
)
from harness.project import repo_root
from harness.results import Status
from harness.waits import wait_for

REGION = "eu-west-1"
GAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>2048</title>
  <link href="style/main.css" rel="stylesheet" type="text/css">
</head>
<body><div class="container"><div class="heading"><h1 class="title">2048</h1></div></div></body>
</html>
"""

# ---------------------------------------------------------------- the Ingress


RECORDED = "recorded/synced"
# The game's Ingress re-created while the public subnets were tagged for another cluster, then after the tag went.
NO_SUBNETS, RESTORED = "recorded/ingress_no_subnets", "recorded/ingress_subnets_restored"
SUBNETS_WARNING = (
    "FailedBuildModel: Failed build model due to couldn't auto-discover subnets: unable to resolve at least one "
    "subnet. Evaluated 3 subnets: 3 are tagged for other clusters, and 0 have insufficient available IP addresses"
)


def test_ingress_with_an_alb_hostname_passes() -> None:
    reader = FakeKubeClient(load(f"{RECORDED}/ingresses.yaml"), load(f"{RECORDED}/events_game-2048.yaml"))
    result = judge_ingress_address(reader.get_ingress("game-2048", "game-2048"), reader.list_events("game-2048"))
    assert result.status is Status.PASS
    hostname = "k8s-game2048-game2048-2346cb3380-1.us-east-1.elb.amazonaws.com"  # the emulator's ALB
    assert result.why == f"game-2048/game-2048 -> {hostname}"
    assert result.evidence["hostname"] == hostname
    assert result.evidence["class"] == "alb"
    assert result.evidence["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert result.evidence["warnings"] == []  # the recorded Warnings are the Pending pods', not the Ingress's


def test_the_recorded_ingress_without_its_address_is_pending_without_quoting_pod_warnings() -> None:
    (ingress,) = items(f"{RECORDED}/ingresses.yaml")
    ingress["status"]["loadBalancer"] = {}  # as before the controller's first reconcile
    events = items(f"{RECORDED}/events_game-2048.yaml")
    assert {e["reason"] for e in events if e["type"] == "Warning"} == {"FailedScheduling"}
    result = judge_ingress_address(ingress, events)
    assert (result.status, result.why) == (Status.PENDING, "game-2048/game-2048 has no address yet")
    assert result.evidence["warnings"] == []


def test_ingress_without_address_is_pending_and_quotes_the_controllers_last_warning() -> None:
    reader = FakeKubeClient(load(f"{NO_SUBNETS}/ingresses.yaml"), load(f"{NO_SUBNETS}/events_game-2048.yaml"))
    ingress = reader.get_ingress("game-2048", "game-2048")
    assert ingress is not None and ingress["status"] == {"loadBalancer": {}}  # as the API serves it without an ALB
    result = judge_ingress_address(ingress, reader.list_events("game-2048"))
    assert result.status is Status.PENDING
    assert result.why == f"game-2048/game-2048 has no address yet; last controller warning: {SUBNETS_WARNING}"
    # Only the Ingress's own: not its earlier SuccessfullyReconciled (Normal), not the pods' FailedScheduling or the
    # TargetGroupBindings' FailedNetworkReconcile, Warnings in the same namespace.
    assert result.evidence["warnings"] == [SUBNETS_WARNING]
    others = {e["reason"] for e in reader.list_events("game-2048") if e["type"] == "Warning"} - {"FailedBuildModel"}
    assert others == {"FailedScheduling", "FailedNetworkReconcile"}


def test_once_the_subnets_are_found_the_ingress_passes_despite_the_earlier_warning() -> None:
    reader = FakeKubeClient(load(f"{RESTORED}/ingresses.yaml"), load(f"{RESTORED}/events_game-2048.yaml"))
    result = judge_ingress_address(reader.get_ingress("game-2048", "game-2048"), reader.list_events("game-2048"))
    assert result.status is Status.PASS
    assert result.why == "game-2048/game-2048 -> k8s-game2048-game2048-28e1c1dbb9-1.us-east-1.elb.amazonaws.com"
    assert result.evidence["warnings"] == [SUBNETS_WARNING]  # still shown, in case the address is not the end


def test_warnings_about_an_ingress_of_the_same_name_elsewhere_are_not_quoted() -> None:
    events = load(f"{NO_SUBNETS}/events_game-2048.yaml")
    for event in events["items"]:
        event["involvedObject"]["namespace"] = "staging"
    (ingress,) = items(f"{NO_SUBNETS}/ingresses.yaml")
    result = judge_ingress_address(ingress, events["items"])
    assert (result.why, result.evidence["warnings"]) == ("game-2048/game-2048 has no address yet", [])


def test_a_missing_ingress_is_pending() -> None:
    assert judge_ingress_address(None).status is Status.PENDING
    assert ingress_hostname(None) is None


# ---------------------------------------------------------------- the load balancer (moto)


@dataclasses.dataclass
class Network:
    ec2: Any
    elbv2: Any
    vpc: str
    public: list[str]
    private: list[str]


@pytest.fixture
def network() -> Iterator[Network]:
    """A VPC like infra/platform's: two public subnets tagged for ALBs (route to an IGW), two private ones."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        public_routes = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_routes, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        public, private = [], []
        for index, zone in enumerate(("eu-west-1a", "eu-west-1b")):
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=zone)["Subnet"]
            ec2.create_tags(Resources=[subnet["SubnetId"]], Tags=[{"Key": "kubernetes.io/role/elb", "Value": "1"}])
            ec2.associate_route_table(RouteTableId=public_routes, SubnetId=subnet["SubnetId"])
            public.append(subnet["SubnetId"])
            inner = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{index + 10}.0/24", AvailabilityZone=zone)["Subnet"]
            ec2.create_tags(
                Resources=[inner["SubnetId"]], Tags=[{"Key": "kubernetes.io/role/internal-elb", "Value": "1"}]
            )
            private.append(inner["SubnetId"])
        yield Network(ec2, elbv2, vpc, public, private)


def build_alb(
    net: Network, *, subnets: list[str] | None = None, scheme: str = "internet-facing", target_type: str = "ip"
) -> str:
    """What the LB controller builds for the game Ingress; returns the ALB's DNS name."""
    lb = net.elbv2.create_load_balancer(
        Name="k8s-game2048-game2048-3f9c2a1b7d",
        Subnets=subnets or net.public,
        Scheme=scheme,
        Type="application",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": "platform-demo"}],
    )["LoadBalancers"][0]
    tg = net.elbv2.create_target_group(
        Name="k8s-game2048-game2048-0a1b2c3d4e",
        Protocol="HTTP",
        Port=80,
        VpcId=net.vpc,
        TargetType=target_type,
        HealthCheckPath="/",
    )["TargetGroups"][0]
    targets = [{"Id": ip, "Port": 80} for ip in GAME_POD_IPS]
    if target_type == "instance":
        targets = [{"Id": "i-0c9e5a3b4d6f7a819", "Port": 30080}]
    net.elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=targets)
    net.elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    return str(lb["DNSName"])


def facts_for(net: Network, dns_name: str) -> LoadBalancerFacts:
    return fetch_load_balancer(net.elbv2, net.ec2, dns_name)


GAME_POD_IPS = ("10.0.0.12", "10.0.0.13")  # the 2 Ready replicas of recorded/consolidated/


def game_endpoints() -> dict[str, str]:
    """The recorded game pods at the port gitops/'s Service targets (its targetPort names the container's port)."""
    service = yaml.safe_load((repo_root() / "gitops/apps/game-2048/service.yaml").read_text(encoding="utf-8"))
    return pod_endpoints(items("recorded/consolidated/pods_game-2048.yaml"), service)


def test_an_internet_facing_alb_in_public_subnets_registering_the_game_pods_passes(network: Network) -> None:
    dns = build_alb(network)
    facts = facts_for(network, dns.upper() + ".")  # DNS names compare case-insensitively, trailing dot or not
    lb = judge_load_balancer(facts)
    assert lb.status is Status.PASS, lb.why
    assert [s["subnet"] for s in lb.evidence["subnets"]] == network.public
    assert all(s["internet_route"] and s["elb_tag"] == "1" for s in lb.evidence["subnets"])
    endpoints = game_endpoints()
    assert sorted(endpoints) == ["10.0.0.12:80", "10.0.0.13:80"]
    targets = judge_target_groups(facts, endpoints)
    assert targets.status is Status.PASS, targets.why
    assert targets.why == (
        "1 ip target group(s), each registering exactly the 2 Ready game pod(s) (10.0.0.12:80, 10.0.0.13:80)"
    )
    health = judge_target_health(facts)  # moto: healthy by construction (infra/targets.yaml target_health_checks)
    assert (health.status, health.why) == (Status.PASS, "1 target group(s), 2 healthy target(s)")


def test_targets_other_than_the_game_pods_are_pending_and_named(network: Network) -> None:
    facts = facts_for(network, build_alb(network))
    endpoints = game_endpoints()
    # Changed: a third Ready replica the controller has not registered yet, and one registered pod gone.
    moved = {**{k: v for k, v in endpoints.items() if k != "10.0.0.13:80"}, "10.0.0.14:80": "game-2048/new"}
    result = judge_target_groups(facts, moved)
    assert result.status is Status.PENDING
    assert result.why == "k8s-game2048-game2048-0a1b2c3d4e: missing ['10.0.0.14:80'], extra ['10.0.0.13:80']"
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}  # changed: the Service targets another port
    wrong_port = pod_endpoints(items("recorded/consolidated/pods_game-2048.yaml"), service)
    assert judge_target_groups(facts, wrong_port).status is Status.PENDING
    pending_pods = pod_endpoints(items("recorded/synced/pods_game-2048.yaml"), service)  # Pending: no IP, not Ready
    assert pending_pods == {}
    assert judge_target_groups(facts, pending_pods).why == "no Ready game pod with an IP yet"


def test_no_load_balancer_with_that_name_fails(network: Network) -> None:
    build_alb(network)
    facts = facts_for(network, "k8s-other-other-0000000000-1.eu-west-1.elb.amazonaws.com")
    assert judge_load_balancer(facts).status is Status.FAIL
    assert judge_target_groups(facts, game_endpoints()).status is Status.FAIL
    assert judge_target_health(facts).status is Status.FAIL


def test_an_internal_alb_fails(network: Network) -> None:
    result = judge_load_balancer(facts_for(network, build_alb(network, scheme="internal", subnets=network.private)))
    assert result.status is Status.FAIL
    assert "scheme is internal, not internet-facing" in result.why
    assert "without a 0.0.0.0/0 route to an internet gateway" in result.why


def test_an_alb_in_untagged_subnets_fails(network: Network) -> None:
    network.ec2.delete_tags(Resources=[network.public[1]], Tags=[{"Key": "kubernetes.io/role/elb"}])
    result = judge_load_balancer(facts_for(network, build_alb(network)))
    assert result.status is Status.FAIL
    assert result.why == f"subnet(s) without tag kubernetes.io/role/elb=1: {network.public[1]}"


def test_a_subnet_on_the_main_route_table_without_internet_route_fails(network: Network) -> None:
    lonely = network.ec2.create_subnet(VpcId=network.vpc, CidrBlock="10.0.20.0/24", AvailabilityZone="eu-west-1c")
    subnet = lonely["Subnet"]["SubnetId"]
    network.ec2.create_tags(Resources=[subnet], Tags=[{"Key": "kubernetes.io/role/elb", "Value": "1"}])
    result = judge_load_balancer(facts_for(network, build_alb(network, subnets=[network.public[0], subnet])))
    assert result.status is Status.FAIL
    assert result.why == f"subnet(s) without a 0.0.0.0/0 route to an internet gateway: {subnet}"


def test_a_provisioning_alb_is_pending(network: Network) -> None:
    facts = facts_for(network, build_alb(network))
    assert facts.load_balancer is not None
    provisioning = dataclasses.replace(facts, load_balancer={**facts.load_balancer, "State": {"Code": "provisioning"}})
    result = judge_load_balancer(provisioning)
    assert (result.status, result.why) == (Status.PENDING, "load balancer is provisioning")


def test_instance_target_groups_fail(network: Network) -> None:
    result = judge_target_groups(facts_for(network, build_alb(network, target_type="instance")), game_endpoints())
    assert result.status is Status.FAIL
    assert result.why == "target group(s) not of type ip: k8s-game2048-game2048-0a1b2c3d4e"


def with_health(facts: LoadBalancerFacts, *states: tuple[str, str | None]) -> LoadBalancerFacts:
    """The same ALB with the target health ELB reports at another moment (moto reports all healthy)."""
    arn = facts.target_groups[0]["TargetGroupArn"]
    rows = [
        {
            "Target": {"Id": f"10.0.0.{17 + i}", "Port": 80},
            "HealthCheckPort": "80",
            "TargetHealth": {"State": state, **({"Reason": reason} if reason else {})},
        }
        for i, (state, reason) in enumerate(states)
    ]
    return dataclasses.replace(facts, target_health={arn: rows})


def test_targets_in_initial_health_checks_are_pending(network: Network) -> None:
    facts = facts_for(network, build_alb(network))
    result = judge_target_health(with_health(facts, ("initial", "Elb.InitialHealthChecking")))
    assert result.status is Status.PENDING
    assert result.why == "no healthy target yet in k8s-game2048-game2048-0a1b2c3d4e (10.0.0.17=initial)"
    assert judge_target_health(with_health(facts)).status is Status.PENDING  # nothing registered yet


def test_every_target_failing_with_the_wrong_http_code_fails(network: Network) -> None:
    facts = facts_for(network, build_alb(network))
    mismatch = ("unhealthy", "Target.ResponseCodeMismatch")
    assert judge_target_health(with_health(facts, mismatch, mismatch)).status is Status.FAIL
    one_healthy = with_health(facts, mismatch, ("healthy", None))
    assert judge_target_health(one_healthy).status is Status.PASS


# ---------------------------------------------------------------- the page


class FakeResponse:
    def __init__(self, status_code: int, text: str) -> None:
        self.status_code, self.text = status_code, text


def getter(*answers: FakeResponse | Exception) -> Any:
    queue = list(answers)
    calls: list[dict[str, Any]] = []

    def get(url: str, **kwargs: Any) -> FakeResponse:
        calls.append({"url": url, **kwargs})
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    get.calls = calls  # type: ignore[attr-defined]
    return get


URL = "http://k8s-game2048-game2048-3f9c2a1b7d-1234567890.eu-west-1.elb.amazonaws.com/"


def test_the_2048_page_passes() -> None:
    get = getter(FakeResponse(200, GAME_PAGE))
    result = judge_game_page(probe_http(URL, get=get))
    assert (result.status, result.evidence["title"]) == (Status.PASS, "2048")
    assert get.calls[0]["timeout"] > 0


def test_dns_not_resolving_yet_and_502_are_pending() -> None:
    dns = requests.ConnectionError("Failed to resolve 'k8s-game2048-...elb.amazonaws.com' ([Errno -2] Name not known)")
    probe = probe_http(URL, get=getter(dns))
    assert probe.error is not None and probe.error.startswith("ConnectionError: Failed to resolve")
    assert judge_game_page(probe).status is Status.PENDING
    assert judge_game_page(probe_http(URL, get=getter(FakeResponse(502, "<html>502 Bad Gateway</html>")))).status is (
        Status.PENDING
    )


def test_a_404_or_another_page_fails() -> None:
    not_found = judge_game_page(HttpProbe(URL, status=404, body=""))
    assert (not_found.status, not_found.why) == (Status.FAIL, f"GET {URL}: HTTP 404")
    other = judge_game_page(HttpProbe(URL, status=200, body="<html><title>Welcome to nginx!</title></html>"))
    assert other.status is Status.FAIL and "'Welcome to nginx!'" in other.why


def test_waiting_for_the_page_backs_off_through_dns_propagation() -> None:
    now = [0.0]
    dns = requests.ConnectionError("Failed to resolve host")
    get = getter(dns, dns, FakeResponse(503, ""), FakeResponse(200, GAME_PAGE))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = wait_for(lambda: probe_http(URL, get=get), judge_game_page, 600, clock=lambda: now[0], sleep=sleep)
    assert result.status is Status.PASS
    assert result.evidence["polls"] == 4
