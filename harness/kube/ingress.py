"""The ALB chain of the game-2048 Ingress, link by link: pure judges plus thin fetches.

1. ``judge_ingress_address``: the AWS Load Balancer Controller has provisioned an ALB and written its DNS
   name into the Ingress ``status.loadBalancer.ingress[].hostname`` (its Warning events, e.g.
   ``FailedBuildModel``, explain when it has not).
2. ``fetch_load_balancer`` (elbv2 + ec2) then ``judge_load_balancer``: a load balancer with that DNS name
   exists, is an active ``application`` load balancer, ``internet-facing``, in subnets tagged
   ``kubernetes.io/role/elb`` whose route table sends 0.0.0.0/0 to an internet gateway.
3. ``judge_target_groups``: its target groups use target type ``ip`` and register exactly the game's Ready pods,
   each by its IP and the container port the Service's ``targetPort`` names (the controller's own work);
   ``judge_target_health``: ELB's health checks find them healthy (only where health checks run: the emulator
   reports every registered target healthy by construction, infra/targets.yaml ``target_health_checks``).
4. ``probe_http`` then ``judge_game_page``: ``GET http://<hostname>/`` answers 200 with the 2048 page. A new
   ALB name takes a while to resolve, so probe errors and 5xx answers are PENDING: poll with
   ``harness.waits.wait_for`` (``retry``/backoff) and an injectable HTTP getter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from harness.keys import ELB_SUBNET_TAG
from harness.kube.core import name_of, pod_ready
from harness.results import Result

KubeObject = Mapping[str, Any]

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
HTTP_TIMEOUT_SECONDS = 10.0


# The names of the judgements: the same on every target, so reports and JUnit rows line up.
INGRESS_ADDRESS_CHECK = "ingress has a load balancer address"
LOAD_BALANCER_CHECK = "ALB exists, is internet-facing, in public subnets"
TARGET_GROUPS_CHECK = "ALB target groups are ip type and register exactly the game's pods"
TARGET_HEALTH_CHECK = "ALB health checks find the game's targets healthy"
GAME_PAGE_CHECK = "game page is served through the ALB"


def ingress_hostname(ingress: KubeObject | None) -> str | None:
    """The load balancer DNS name the controller wrote into the Ingress status, if any."""
    for entry in ((ingress or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        if entry.get("hostname"):
            return str(entry["hostname"])
    return None


def judge_ingress_address(ingress: KubeObject | None, events: Sequence[KubeObject] = ()) -> Result:
    """The Ingress has an ALB hostname. PENDING until then, with the controller's warnings as the why."""
    name = INGRESS_ADDRESS_CHECK
    if ingress is None:
        return Result.pending(name, "the Ingress does not exist yet")
    label = name_of(ingress)
    meta = ingress.get("metadata") or {}
    about_this_ingress = {"kind": "Ingress", "namespace": meta.get("namespace"), "name": meta.get("name")}
    # The controller's Warning events (FailedBuildModel, FailedDeployModel...) say why there is no ALB yet.
    warnings = [
        f"{e.get('reason')}: {e.get('message', '')}"
        for e in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        if e.get("type") == "Warning"
        and all((e.get("involvedObject") or {}).get(k) == v for k, v in about_this_ingress.items())
    ]
    evidence = {
        "ingress": label,
        "class": (ingress.get("spec") or {}).get("ingressClassName"),
        "annotations": {
            k: v for k, v in ((ingress.get("metadata") or {}).get("annotations") or {}).items() if k.startswith("alb.")
        },
        "warnings": warnings[-5:],
    }
    hostname = ingress_hostname(ingress)
    if hostname:
        return Result.passed(name, f"{label} -> {hostname}", hostname=hostname, **evidence)
    why = f"{label} has no address yet" + (f"; last controller warning: {warnings[-1]}" if warnings else "")
    return Result.pending(name, why, **evidence)


# ---------------------------------------------------------------- load balancer facts (elbv2 + ec2)


@dataclass(frozen=True)
class LoadBalancerFacts:
    """The AWS API answers about one load balancer, as returned by elbv2/ec2 (no interpretation)."""

    dns_name: str
    load_balancer: Mapping[str, Any] | None
    subnets: Sequence[Mapping[str, Any]] = ()
    route_tables: Sequence[Mapping[str, Any]] = ()  # every route table of the load balancer's VPC
    target_groups: Sequence[Mapping[str, Any]] = ()
    target_health: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)  # by TargetGroupArn


def fetch_load_balancer(elbv2: Any, ec2: Any, dns_name: str) -> LoadBalancerFacts:
    """Read everything ``judge_load_balancer`` and ``judge_target_groups`` need, with boto3 clients."""
    wanted = dns_name.rstrip(".").lower()
    found = None
    for page in elbv2.get_paginator("describe_load_balancers").paginate():
        for lb in page["LoadBalancers"]:
            if str(lb.get("DNSName", "")).lower() == wanted:
                found = lb
    if found is None:
        return LoadBalancerFacts(dns_name, None)
    subnet_ids = [az["SubnetId"] for az in found.get("AvailabilityZones") or [] if az.get("SubnetId")]
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"] if subnet_ids else []
    route_tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [found["VpcId"]]}])["RouteTables"]
    target_groups = elbv2.describe_target_groups(LoadBalancerArn=found["LoadBalancerArn"])["TargetGroups"]
    health = {
        tg["TargetGroupArn"]: elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        for tg in target_groups
    }
    return LoadBalancerFacts(dns_name, found, subnets, route_tables, target_groups, health)


def _tags(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in obj.get("Tags") or []}


def _route_table_of(subnet_id: str, vpc_id: str, route_tables: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The subnet's explicitly associated route table, else its VPC's main route table."""
    main = None
    for table in route_tables:
        for assoc in table.get("Associations") or []:
            if assoc.get("SubnetId") == subnet_id:
                return table
            if assoc.get("Main") and table.get("VpcId", vpc_id) == vpc_id:
                main = table
    return main


def _internet_route(table: Mapping[str, Any] | None) -> bool:
    return table is not None and any(
        route.get("DestinationCidrBlock") == "0.0.0.0/0" and str(route.get("GatewayId", "")).startswith("igw-")
        for route in table.get("Routes") or []
    )


def judge_load_balancer(facts: LoadBalancerFacts, *, subnet_tag: str = ELB_SUBNET_TAG) -> Result:
    """An active internet-facing ALB with that DNS name, in ELB-tagged public subnets."""
    name = LOAD_BALANCER_CHECK
    lb = facts.load_balancer
    if lb is None:
        return Result.failed(name, f"no load balancer has DNS name {facts.dns_name}", dns_name=facts.dns_name)
    state = (lb.get("State") or {}).get("Code")
    subnet_rows: list[dict[str, Any]] = []
    for subnet in facts.subnets:
        table = _route_table_of(subnet["SubnetId"], subnet.get("VpcId", ""), facts.route_tables)
        subnet_rows.append(
            {
                "subnet": subnet["SubnetId"],
                "zone": subnet.get("AvailabilityZone"),
                "elb_tag": _tags(subnet).get(subnet_tag),
                "internet_route": _internet_route(table),
            }
        )
    evidence = {
        "arn": lb.get("LoadBalancerArn"),
        "dns_name": lb.get("DNSName"),
        "type": lb.get("Type"),
        "scheme": lb.get("Scheme"),
        "state": state,
        "subnets": subnet_rows,
    }
    problems = []
    if lb.get("Type") != "application":
        problems.append(f"type is {lb.get('Type')}, not application")
    if lb.get("Scheme") != "internet-facing":
        problems.append(f"scheme is {lb.get('Scheme')}, not internet-facing")
    untagged = [row["subnet"] for row in subnet_rows if row["elb_tag"] not in ("1", "")]
    if untagged:
        problems.append(f"subnet(s) without tag {subnet_tag}=1: {', '.join(untagged)}")
    private = [row["subnet"] for row in subnet_rows if not row["internet_route"]]
    if private:
        problems.append(f"subnet(s) without a 0.0.0.0/0 route to an internet gateway: {', '.join(private)}")
    if not subnet_rows:
        problems.append("no subnets")
    if state == "failed":
        problems.append(f"state failed: {(lb.get('State') or {}).get('Reason', '')}")
    if problems:
        return Result.failed(name, "; ".join(problems), **evidence)
    if state != "active":
        return Result.pending(name, f"load balancer is {state}", **evidence)
    return Result.passed(
        name,
        f"{lb.get('LoadBalancerName')} is active and internet-facing in {len(subnet_rows)} public subnet(s)",
        **evidence,
    )


def pod_endpoints(pods: Sequence[KubeObject], service: KubeObject | None) -> dict[str, str]:
    """``ip:port`` -> pod, for each Ready pod with an IP, at the container port the Service's first ``targetPort``
    names (a number, or the name of a container port), as the LB controller registers ``ip`` targets."""
    ports = ((service or {}).get("spec") or {}).get("ports") or []
    target = ports[0].get("targetPort", ports[0].get("port")) if ports else None
    endpoints: dict[str, str] = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not pod_ready(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        declared = [
            port
            for container in (pod.get("spec") or {}).get("containers") or []
            for port in container.get("ports") or []
        ]
        named = next((p.get("containerPort") for p in declared if p.get("name") == target), None)
        number = target if isinstance(target, int) else named
        if number is not None:
            endpoints[f"{ip}:{number}"] = name_of(pod)
    return endpoints


def _target_rows(facts: LoadBalancerFacts) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for tg in facts.target_groups:
        targets = facts.target_health.get(tg["TargetGroupArn"]) or []
        rows.append(
            {
                "target_group": tg.get("TargetGroupName"),
                "type": tg.get("TargetType"),
                "port": tg.get("Port"),
                "health_check_path": tg.get("HealthCheckPath"),
                "targets": [
                    {
                        "id": t["Target"]["Id"],
                        "port": t["Target"].get("Port"),
                        "state": (t.get("TargetHealth") or {}).get("State"),
                        "reason": (t.get("TargetHealth") or {}).get("Reason"),
                        "description": (t.get("TargetHealth") or {}).get("Description"),
                    }
                    for t in targets
                ],
            }
        )
    return rows


def judge_target_groups(facts: LoadBalancerFacts, endpoints: Mapping[str, str]) -> Result:
    """Every target group of the ALB has target type ``ip`` and registers exactly ``endpoints`` (``ip:port`` ->
    pod, ``pod_endpoints``): the game's Ready pods, no other address (a target ELB is draining is on its way out).

    PENDING while there is no target group or Ready pod yet, or the registered set differs (the controller follows
    pods as they come and go; the why lists what is missing and what is extra); FAIL when a group is not ``ip``.
    """
    name = TARGET_GROUPS_CHECK
    if facts.load_balancer is None:
        return Result.failed(name, f"no load balancer has DNS name {facts.dns_name}")
    rows = _target_rows(facts)
    evidence = {"target_groups": rows, "pods": dict(endpoints)}
    if not rows:
        return Result.pending(name, "the load balancer has no target groups yet", **evidence)
    not_ip = [row["target_group"] for row in rows if row["type"] != "ip"]
    if not_ip:
        return Result.failed(name, f"target group(s) not of type ip: {', '.join(map(str, not_ip))}", **evidence)
    if not endpoints:
        return Result.pending(name, "no Ready game pod with an IP yet", **evidence)
    wrong = []
    for row in rows:
        registered = {f"{t['id']}:{t['port']}" for t in row["targets"] if t["state"] != "draining"}
        missing, extra = sorted(set(endpoints) - registered), sorted(registered - set(endpoints))
        if missing or extra:
            wrong.append(f"{row['target_group']}: missing {missing}, extra {extra}")
    if wrong:
        return Result.pending(name, "; ".join(wrong), **evidence)
    return Result.passed(
        name,
        f"{len(rows)} ip target group(s), each registering exactly the {len(endpoints)} Ready game pod(s) "
        f"({', '.join(sorted(endpoints))})",
        **evidence,
    )


def judge_target_health(facts: LoadBalancerFacts) -> Result:
    """Every target group has at least one target ELB's health checks find healthy.

    PENDING while targets register or pass their first health checks (``initial``, ``unhealthy``, none yet); FAIL
    when every target answers the health check with the wrong HTTP code (the path/port is wrong, waiting will not
    help).
    """
    name = TARGET_HEALTH_CHECK
    if facts.load_balancer is None:
        return Result.failed(name, f"no load balancer has DNS name {facts.dns_name}")
    rows = _target_rows(facts)
    evidence = {"target_groups": rows}
    if not rows:
        return Result.pending(name, "the load balancer has no target groups yet", **evidence)
    wrong_code = [
        row["target_group"]
        for row in rows
        if row["targets"] and all(t["reason"] == "Target.ResponseCodeMismatch" for t in row["targets"])
    ]
    if wrong_code:
        return Result.failed(
            name,
            f"health checks get the wrong HTTP code on every target of {', '.join(map(str, wrong_code))}",
            **evidence,
        )
    unhealthy = [row for row in rows if not any(t["state"] == "healthy" for t in row["targets"])]
    if unhealthy:
        states = ", ".join(f"{t['id']}={t['state']}" for row in unhealthy for t in row["targets"]) or "no targets"
        return Result.pending(name, f"no healthy target yet in {unhealthy[0]['target_group']} ({states})", **evidence)
    healthy = sum(1 for row in rows for t in row["targets"] if t["state"] == "healthy")
    return Result.passed(name, f"{len(rows)} target group(s), {healthy} healthy target(s)", **evidence)


# ---------------------------------------------------------------- the page itself


@dataclass(frozen=True)
class HttpProbe:
    """One GET: the status and body, or the error (DNS not resolving yet, connection refused...)."""

    url: str
    status: int | None = None
    body: str = ""
    error: str | None = None


HttpGet = Callable[..., Any]


def probe_http(url: str, *, get: HttpGet = requests.get, timeout: float = HTTP_TIMEOUT_SECONDS) -> HttpProbe:
    """GET ``url``; network errors become ``HttpProbe.error`` (not exceptions) so a wait can poll on."""
    try:
        response = get(url, timeout=timeout, allow_redirects=True)
    except requests.RequestException as exc:
        return HttpProbe(url, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return HttpProbe(url, status=int(response.status_code), body=str(response.text))


def page_title(body: str) -> str | None:
    match = TITLE.search(body)
    return " ".join(match.group(1).split()) if match else None


def judge_game_page(probe: HttpProbe, *, expect_in_title: str = "2048") -> Result:
    """200 with a page title containing ``expect_in_title``.

    PENDING on network errors (the ALB name is still propagating through DNS) and 5xx (targets still
    registering: 502/503); FAIL on any other status or a 200 that is not the game page.
    """
    name = GAME_PAGE_CHECK
    evidence = {"url": probe.url, "status": probe.status, "error": probe.error}
    if probe.error is not None:
        return Result.pending(name, f"GET {probe.url}: {probe.error}", **evidence)
    title = page_title(probe.body)
    evidence["title"] = title
    status = probe.status or 0  # a probe without an error always has a status
    if status >= 500:
        return Result.pending(
            name, f"GET {probe.url}: HTTP {probe.status} (targets may still be registering)", **evidence
        )
    if status != 200:
        return Result.failed(name, f"GET {probe.url}: HTTP {probe.status}", **evidence, body_start=probe.body[:200])
    if title is None or expect_in_title not in title:
        return Result.failed(
            name,
            f"GET {probe.url}: 200 but title is {title!r}, expected it to contain {expect_in_title!r}",
            **evidence,
            body_start=probe.body[:200],
        )
    return Result.passed(name, f"GET {probe.url}: 200, title {title!r}", **evidence)
