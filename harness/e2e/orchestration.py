"""The e2e's orchestration: each stage of `harness e2e` as a method over the run's FullStack (the platform
Stack, the add-ons root, boto3 and Kubernetes clients). Clock and sleep are injectable; nothing here decides a
verdict (the judges in harness.aws and harness.kube do). Over 600 lines on purpose: one class whose methods are
the stages and their steps, sharing the run's clients, clock and waits; tests/e2e calls the steps one by one.

Stages, in order (harness.e2e.stages runs them; each skippable with --skip, selectable with --only, resumable
with --resume):

1. platform   terraform apply infra/platform (harness.targets.stack.Stack)
2. addons     terraform apply infra/addons (LB controller, Argo CD, Karpenter, bootstrap Application)
3. access     EKS endpoint + token with boto3; a 0600 kubeconfig in the run directory for your kubectl
4. checks     every AWS judgement (harness.aws.checks) and the Kubernetes ones: Argo CD synced, ops
              placement, the ALB chain up to the game's page
5. karpenter  scale game-2048 to the documented count, judge the spot scale-out and its timeline, scale
              back, judge consolidation
6. teardown   harness.targets.full_stack.teardown_run: controller-aware order, terraform destroy, tag sweep
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from harness.aws import authorization, leaks, run_tags
from harness.aws import checks as aws_checks
from harness.aws.emulator import eks_amis
from harness.e2e import report as rpt
from harness.e2e.stages import StageOutcome, Watchdog, watched
from harness.errors import EnvironmentProblem, InputError
from harness.gate import effective, loaders
from harness.gate.local_charts import render_local_charts
from harness.gate.values import helm_values
from harness.kube import argocd, consolidation, core, ingress, rbac, spot, terminal
from harness.kube import karpenter as kk
from harness.kube.api import APPLICATION, APPLICATION_SET, EC2_NODE_CLASS, NODE_CLAIM, NODE_POOL
from harness.kube.client import describe_cluster, eks_token, write_kubeconfig
from harness.kube.core import GAME_PODS
from harness.kube.karpenter import SCALE_OUT_ANNOTATION, ScaleOutTimeline
from harness.processes import PROCESSES_CHECK, judge_processes
from harness.project import KUBERNETES_CAPABILITY, local_target, read_yaml, repo_root, versions
from harness.results import Result, Status, first_failure
from harness.targets import git_endpoint, local, local_addons, pod_identity
from harness.targets import teardown as td
from harness.targets.full_stack import FullStack, teardown_run
from harness.terraform.providers import addons_providers_missing, provider_pins
from harness.waits import WaitProgress, wait_for

T = TypeVar("T")
# infra/targets.yaml capabilities a target may lack, and the rows reported in their place.
ADDONS_BY_TERRAFORM_CHECK = "add-ons applied by terraform apply infra/addons"
EKS_AUTHENTICATION = "eks_authentication"
LOAD_BALANCER_TRAFFIC = "load_balancer_traffic"
IMAGE_PULLS = "image_pulls"
POD_PROBES = "pod_probes"
OPS_NODE_REGISTRATION = "ops_node_registration"
SPOT_PRICES = "spot_prices"
TARGET_HEALTH_CHECKS = "target_health_checks"
EKS_ACCESS_CHECK = "kubernetes API reachable with an EKS token"
LOCAL_ACCESS_CHECK = "kubernetes API reachable with the run's client certificate"
GITOPS_COMMIT = "gitops_commit"  # run settings: the commit Argo CD synced gitops/ from, for the report
GAME_NAMESPACE, GAME_DEPLOYMENT = GAME_PODS.namespace, GAME_PODS.name
GAME_IMAGE_PIN = "game_2048_image"  # versions.yaml key of the image the Deployment must run
KARPENTER_NODEPOOL = "apps"


def expected_applications(root: Path | None = None) -> tuple[str, ...]:
    """The Applications Argo CD must show: the root Application of the bootstrap chart infra/addons installs and
    those the ApplicationSets in gitops/ generate for the cluster secret infra/addons creates, rendered by the
    gate (harness.gate.effective, harness.gate.local_charts) from those files. One source: renaming the secret or a
    template changes what the e2e waits for (per cluster since #13: `ops-karpenter-in-cluster`, ...)."""
    root = root or repo_root()
    terraform = loaders.load_terraform([root / "infra"])
    secrets = effective.cluster_secrets(terraform, [])
    apps = effective.applications(loaders.load_manifests([root / "gitops"]), secrets)
    helm = {r.address: helm_values(r) for r in terraform.of_type("helm_release")}
    charts = render_local_charts(terraform, helm)
    names = [a.name for a in charts.objects if a.kind == "Application"]
    names += [a.name for a in apps if a.origin]
    unresolved = [n for n in names if "{{" in n or not n]
    if not secrets or unresolved or charts.notes:
        raise InputError(
            f"{root / 'infra'}: cannot tell which Applications Argo CD will show (cluster secrets: "
            f"{len(secrets)}; unrendered names: {unresolved}; {'; '.join(charts.notes)})"
        )
    return tuple(sorted(set(names)))


def expected_application_sets(root: Path | None = None) -> tuple[str, ...]:
    """The ApplicationSets gitops/ defines (the root Application creates them)."""
    manifests = loaders.load_manifests([(root or repo_root()) / "gitops"])
    return tuple(sorted(m.name for m in manifests if m.kind == "ApplicationSet" and m.group == "argoproj.io"))


# What the Kubernetes checks report, by the judges' own names: a target without Kubernetes reports the same rows
# as not applicable, so reports and JUnit rows line up between targets.
KUBERNETES_CHECK_NAMES = (
    argocd.APPLICATION_SETS_CHECK,
    argocd.APPLICATIONS_CHECK,
    core.OPS_NODES_CHECK,
    core.OPS_INSTANCES_CHECK,
    core.CONTROLLERS_CHECK,
    core.off_ops_check(core.GAME_PODS.name),
    core.READINESS_PROBE_CHECK,
    ingress.INGRESS_ADDRESS_CHECK,
    ingress.LOAD_BALANCER_CHECK,
    ingress.TARGET_GROUPS_CHECK,
    ingress.TARGET_HEALTH_CHECK,
    ingress.GAME_PAGE_CHECK,
    aws_checks.CONTROLLER_RUN_TAGS,
    PROCESSES_CHECK,
    rbac.REFUSALS_CHECK,
    pod_identity.CREDENTIALS_CHECK,
    authorization.IAM_CHECK,
)
# Where the controllers are EKS's pods, not host processes of the run.
CONTROLLERS_ARE_PODS = "EKS runs the controllers as pods: 'controllers on ops nodes' judges them Ready"


def scale_out_replicas(deployment: Mapping[str, Any] | None) -> int:
    """The documented scale-out count: the Deployment's scale-out annotation (read from gitops/ when None)."""
    source = deployment
    if source is None:
        source = read_yaml(repo_root() / "gitops" / "apps" / "game-2048" / "deployment.yaml")
    value = ((source or {}).get("metadata") or {}).get("annotations", {}).get(SCALE_OUT_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"game-2048 Deployment: annotation {SCALE_OUT_ANNOTATION} missing or not a number") from None


@dataclass
class E2E(FullStack):
    """One e2e run's stages over the run's FullStack; the watchdog bounds every apply and every wait."""

    watchdog: Watchdog = field(default_factory=lambda: Watchdog(float("inf")))
    run_started: float = 0.0
    time_to_green: float | None = None
    scale_in_seconds: float | None = None
    timeline: ScaleOutTimeline | None = None
    scale_out_figures: spot.ScaleOutFigures | None = None
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # wall clock, compared with the API's times
    # When the change now being judged was made (the sync, the scale, the interruption). A final event from then
    # on ends every wait of that phase: a controller that says "cannot" once is not asked again wait after wait.
    phase_began: datetime | None = None

    def figures(self) -> rpt.Figures:
        return rpt.Figures(self.time_to_green, self.scale_out_figures, self.scale_in_seconds)

    def platform(self) -> StageOutcome:
        with watched(self.stack, self.watchdog):
            outputs = self.stack.up()
        self.run.settings["cluster_name"] = outputs.get("cluster_name", "")
        self.run.save()
        return StageOutcome(f"applied infra/platform: cluster {outputs.get('cluster_name', '?')}")

    def addons(self) -> StageOutcome:
        self.phase_began = self.now()  # Argo CD syncs gitops/ from here on
        if self.caps.local_kubernetes:
            return self.local_addons()
        terraform = self.addons_terraform()
        url, commit = self.gitops
        self.run.settings["gitops_repo_url"] = url
        # The revision is the commit itself: Argo CD syncs exactly what Terraform and the checks read here.
        self.run.settings["gitops_revision"] = self.run.settings[GITOPS_COMMIT] = commit
        self.run.save()
        with watched(terraform, self.watchdog):
            terraform.init()
            terraform.apply(self.addons_variables())
        return StageOutcome(
            f"applied infra/addons: LB controller, Argo CD, Karpenter, bootstrap; Argo CD syncs {url} at {commit}"
        )

    def local_addons(self) -> StageOutcome:
        """infra/addons into the local cluster: by `terraform apply` where its providers can be installed, else
        release by release (infra/targets.yaml local_target.addons_without_terraform); either way each release
        waits for its pods, which the ops nodes' kubelet runs. Argo CD syncs this working tree from the run's Git
        endpoint (harness.targets.local)."""
        plane = self.local_cluster()
        served = local.start_git_endpoint(self.run, plane)
        self.run.settings[GITOPS_COMMIT] = served.commit
        self.run.save()
        variables = {
            **self.addons_variables(),
            "gitops_repo_url": served.url,
            "gitops_revision": git_endpoint.BRANCH,
            "gitops_repo_certificates": local_addons.git_trust(self.run, plane),
        }
        source = self.addons_providers
        self.run.settings[local.ADDONS] = True
        self.run.save()
        if source is None:
            installed = local_addons.install_addons(self.run, plane, self.stack.outputs(), variables)
            reason = f"{local_target().addons_without_terraform}: {addons_providers_missing(provider_pins(versions()))}"
            how = Result.not_applicable(ADDONS_BY_TERRAFORM_CHECK, self.run.target, reason)
            done = f"installed {len(installed)} of infra/addons' resources release by release"
        else:
            terraform = self.addons_terraform()
            variables.update(local_addons.terraform_variables(plane))
            self.run.settings[local.ADDONS_BY_TERRAFORM] = variables  # what its destroy takes again
            self.run.save()
            with watched(terraform, self.watchdog, also=lambda: local.watched(self.run, plane)):
                terraform.init()
                terraform.apply(variables)
            applied = terraform.managed_resources()
            how = Result.passed(
                ADDONS_BY_TERRAFORM_CHECK,
                f"terraform apply infra/addons on the local cluster: {len(applied)} resources, its providers from "
                f"{source.description}",
            )
            done = f"applied infra/addons ({len(applied)} resources)"
        # The controllers have listed what they watch by now: a refusal names the chart that grants too little.
        return StageOutcome(
            f"{done}; Argo CD syncs {served.url} at {served.commit} (a snapshot of this working tree)",
            (how, *self.identities_honoured()),
        )

    def wait(
        self,
        fetch: Callable[[], T],
        judge: Callable[[T], Result],
        timeout: float,
        *,
        ends: tuple[str, Callable[[T], Sequence[Any]]] | None = None,
    ) -> Result:
        """wait_for with the run's clock and sleep, bounded by what the watchdog leaves, showing its progress.

        ``ends``: the wait's name in harness.kube.terminal.ENDS and where the events are in what ``fetch`` returns;
        a final Warning among them (seen since the phase began, or the wait when no phase is known) ends it at once,
        in the controller's words."""
        bound = self.watchdog.bound(timeout)
        since = (self.phase_began or self.now()).replace(microsecond=0)  # the API's event times are whole seconds
        final_event = terminal.ends(ends[0], ends[1], since) if ends else None

        def hopeless(observed: T) -> str | None:
            # A dead process of the run (a controller, the API server) or a controller refused by its RBAC ends
            # every wait: what it awaits cannot come.
            if dead := self.dead_processes():
                return next(iter(dead.values()))
            if refused := first_failure(self.identities_honoured()):
                return refused
            return final_event(observed) if final_event else None

        return wait_for(
            fetch,
            judge,
            bound,
            clock=self.clock,
            sleep=self.sleep,
            terminal=hopeless,
            progress=WaitProgress(self.console, bound),
        )

    def access(self) -> StageOutcome:
        if self.caps.local_kubernetes:
            server = self.local_cluster().server
            listed = f"{len(self.kube().list_nodes())} node(s) listed"
            reached = Result.passed(LOCAL_ACCESS_CHECK, listed, endpoint=server)
            eks = Result.not_applicable(EKS_ACCESS_CHECK, self.run.target, self.caps.reason(EKS_AUTHENTICATION))
            return StageOutcome("kubeconfig (the run's client certificate): cluster/kubeconfig", (reached, eks))
        session = self.stack.aws_target().session
        cluster = describe_cluster(self.cluster_name(), session=session)
        token = eks_token(cluster.name, session=session, region=cluster.region)
        path = write_kubeconfig(self.run.path("kubeconfig"), cluster, token)
        nodes = self.kube().list_nodes()
        result = Result.passed(EKS_ACCESS_CHECK, f"{len(nodes)} node(s) listed", endpoint=cluster.endpoint)
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
        results = [
            self.application_sets(),
            self.applications_synced(),
            self.ops_nodes(),
            self.ops_node_instances(),
            self.controllers_on_ops(),
            self.game_off_ops(),
            self.readiness_probes(),
        ]
        address = self.ingress_address()
        results.append(address)
        hostname = ingress.ingress_hostname(self.kube().get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT))
        if hostname:
            results.extend(self.load_balancer(hostname))
            results.append(self.game_page(hostname))
        results.append(self.controllers_tagged(hostname))
        results += [self.processes_kept_running(), *self.identities_honoured()]
        return results

    def processes_kept_running(self) -> Result:
        """On local the control plane and the harness's stand-ins are host processes, the controllers containers of
        the ops nodes' kubelet: one that died (or exited, even if restarted since) fails the stage it died in, even
        when every judge that ran before passed."""
        if not self.caps.local_kubernetes:
            return Result.not_applicable(PROCESSES_CHECK, self.run.target, CONTROLLERS_ARE_PODS)
        return judge_processes([r.name for r in local.records(self.run)], self.dead_processes())

    # Each Kubernetes check on its own: `harness e2e` runs them all (kubernetes_checks), tests/e2e one a test.
    def applications_synced(self) -> Result:
        """Argo CD's own status: every Application gitops/ and infra/addons make is Synced and Healthy."""
        k = self.kube()
        expected = expected_applications()
        return self.wait(
            lambda: (k.list_custom(APPLICATION, td.ARGOCD_NAMESPACE), self.karpenter_events()),
            lambda seen: argocd.judge_applications(seen[0], expected=expected, now=self.now()),
            900,
            ends=(terminal.APPLICATIONS_WAIT, lambda seen: seen[1]),
        )

    def application_sets(self) -> Result:
        """Each ApplicationSet of gitops/ generated its Applications without errors (Argo CD's conditions)."""
        k = self.kube()
        expected = expected_application_sets()
        return self.wait(
            lambda: k.list_custom(APPLICATION_SET, td.ARGOCD_NAMESPACE),
            lambda appsets: argocd.judge_application_sets(appsets, expected=expected),
            300,
        )

    def karpenter_events(self) -> list[Any]:
        """Where Karpenter speaks: its Nominated and FailedScheduling events are on the game's pods, those about
        cluster-scoped objects (NodePool, NodeClaim, Node) go to the default namespace."""
        k = self.kube()
        return [*k.list_events(GAME_NAMESPACE), *k.list_events("default")]

    def ops_nodes(self) -> Result:
        return self.wait(self.kube().list_nodes, core.judge_ops_nodes, 300)

    def ops_node_instances(self) -> Result:
        """The ops Nodes are what EKS's managed node group launched: each a running instance of the group."""
        if reason := self.caps.reason(OPS_NODE_REGISTRATION):
            return Result.not_applicable(core.OPS_INSTANCES_CHECK, self.run.target, reason)
        group = [{"Name": "tag:eks:nodegroup-name", "Values": [str(self.stack.outputs()["ops_node_group_name"])]}]
        return self.wait(
            lambda: (self.kube().list_nodes(), self.ec2_instances(group)),
            lambda seen: core.judge_ops_node_instances(*seen),
            300,
        )

    def ec2_instances(self, filters: list[dict[str, Any]]) -> dict[str, Any]:
        """EC2's DescribeInstances entries that match `filters`, by instance id."""
        reservations = leaks.pages(self.clients("ec2"), "describe_instances", "Reservations", Filters=filters)
        return {i["InstanceId"]: i for r in reservations for i in r.get("Instances", [])}

    def readiness_probes(self) -> Result:
        """The game's pods are Ready because their readiness probe answered (the kubelet's, not KWOK's word)."""
        if reason := self.caps.reason(POD_PROBES):
            return Result.not_applicable(core.READINESS_PROBE_CHECK, self.run.target, reason)
        k = self.kube()
        return self.wait(
            lambda: (
                k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT),
                k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector),
            ),
            lambda seen: core.judge_readiness_probes(*seen),
            300,
        )

    def controllers_on_ops(self) -> Result:
        k = self.kube()
        return self.wait(
            lambda: (
                {g.name: k.list_pods(g.namespace, g.label_selector) for g in core.CONTROLLER_PODS},
                k.list_nodes(),
            ),
            lambda seen: core.judge_controllers_on_ops(*seen),
            300,
        )

    def game_off_ops(self) -> Result:
        k = self.kube()
        game = core.GAME_PODS
        return self.wait(
            lambda: (k.list_pods(game.namespace, game.label_selector), k.list_nodes(), self.karpenter_events()),
            lambda seen: core.judge_workload_off_ops(seen[0], seen[1]),
            600,
            ends=(terminal.GAME_PLACEMENT_WAIT, lambda seen: seen[2]),
        )

    def ingress_address(self) -> Result:
        k = self.kube()
        return self.wait(
            lambda: (
                k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT),
                k.list_events(GAME_NAMESPACE, "involvedObject.kind=Ingress"),
            ),
            lambda seen: ingress.judge_ingress_address(*seen),
            600,
            ends=(terminal.INGRESS_WAIT, lambda seen: seen[1]),
        )

    def game_page(self, hostname: str) -> Result:
        if reason := self.caps.reason(LOAD_BALANCER_TRAFFIC):
            return Result.not_applicable(ingress.GAME_PAGE_CHECK, self.run.target, reason)
        return self.wait(lambda: ingress.probe_http(f"http://{hostname}/"), ingress.judge_game_page, 600)

    def load_balancer(self, hostname: str) -> list[Result]:
        """The ALB behind the Ingress, judged until it is active (a new ALB is `provisioning` for minutes, and
        judging it once would fail a healthy platform), its target groups until they register exactly the game's
        Ready pods, then (where ELB runs health checks) until those targets are healthy."""
        k = self.kube()

        def facts() -> ingress.LoadBalancerFacts:
            return ingress.fetch_load_balancer(self.clients("elbv2"), self.clients("ec2"), hostname)

        def registered() -> tuple[ingress.LoadBalancerFacts, dict[str, str], list[Any]]:
            pods = k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector)
            endpoints = ingress.pod_endpoints(pods, k.get_service(GAME_NAMESPACE, GAME_DEPLOYMENT))
            return facts(), endpoints, self.karpenter_events()

        results = [
            self.wait(facts, ingress.judge_load_balancer, 600),
            # Without a node for the game (Karpenter cannot launch one) no pod gets an IP: end in Karpenter's words.
            self.wait(
                registered,
                lambda seen: ingress.judge_target_groups(seen[0], seen[1]),
                600,
                ends=(terminal.GAME_PLACEMENT_WAIT, lambda seen: seen[2]),
            ),
        ]
        if reason := self.caps.reason(TARGET_HEALTH_CHECKS):
            return [*results, Result.not_applicable(ingress.TARGET_HEALTH_CHECK, self.run.target, reason)]
        return [*results, self.wait(facts, ingress.judge_target_health, 600)]

    def controllers_tagged(self, hostname: str | None) -> Result:
        """The run's tags on what the controllers created, found through their own records: the NodeClaims'
        instances and volumes, Karpenter's launch templates, the Ingress's ALB with its target groups and security
        groups."""
        name = aws_checks.CONTROLLER_RUN_TAGS
        try:
            created = run_tags.controller_resources(
                self.clients,
                kk.claim_instances(self.kube().list_custom(NODE_CLAIM)),
                self.cluster_name(),
                hostname,
            )
            return aws_checks.verify_run_tags(self.stack.aws_target(), created, self.run.tags, name)
        except (ClientError, BotoCoreError) as exc:
            return Result.failed(name, f"could not fetch: {exc}")

    # --- Karpenter: each step on its own (tests/e2e runs one a test), the stage runs them in order.
    def karpenter_objects(self) -> tuple[Any, Any]:
        """The NodePool the experiment uses and the EC2NodeClass it references."""
        k = self.kube()
        nodepool = k.get_custom(NODE_POOL, KARPENTER_NODEPOOL)
        ref = ((((nodepool or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeClassRef")
        return nodepool, k.get_custom(EC2_NODE_CLASS, str(ref["name"])) if ref else None

    def karpenter_pool(self) -> Result:
        """The NodePool and its EC2NodeClass are Ready (scaling out against one Karpenter cannot use would only
        time out: this says why instead)."""
        return self.wait(self.karpenter_objects, lambda seen: kk.judge_pool_ready(*seen), 600)

    def node_class_discovery(self) -> Result:
        """The EC2NodeClass's selectors resolved the platform's private subnets and discovery security group (the
        real test of the discovery tags) and an AMI: the alias's for the cluster's minor (on the emulator, the image it
        serves for that minor; on AWS whatever EKS publishes)."""
        outputs = self.stack.outputs()
        served = eks_amis(local_target().emulator_images)
        amis = [a.image_id for a in served if a.minor == outputs["kubernetes_version"]] if self.caps.emulated else None
        return self.wait(
            lambda: self.karpenter_objects()[1],
            lambda nodeclass: kk.judge_node_class_discovery(
                nodeclass,
                subnets=outputs["private_subnet_ids"],
                security_groups=[outputs["discovery_security_group_id"]],
                amis=amis,
            ),
            300,
        )

    def karpenter_state(self) -> tuple[Any, Any, Any, Any]:
        """The game's pods, the NodeClaims, the Nodes and the events the Karpenter judges read."""
        k = self.kube()
        return (
            k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector),
            k.list_custom(NODE_CLAIM),
            k.list_nodes(),
            self.karpenter_events(),
        )

    def scale_out(self, replicas: int) -> list[Result]:
        """Scale the game to `replicas`; judge the spot scale-out, record its timeline, check the pulled image."""
        k = self.kube()
        nodepool, _ = self.karpenter_objects()
        labels = kk.nodepool_template_labels(nodepool or {})
        request = core.cpu_request(k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT) or {})
        pods, claims, _, _ = self.karpenter_state()
        before = core.Before.of(pods, claims)  # the baseline: judged and timed apart from the scale-out
        self.say(f"scaling {GAME_DEPLOYMENT} to {replicas} replicas")
        self.phase_began = self.now()
        k.scale_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT, replicas)
        out = self.wait(
            self.karpenter_state,
            lambda seen: kk.judge_scale_out(
                seen[0],
                seen[1],
                seen[2],
                replicas=replicas,
                nodepool=KARPENTER_NODEPOOL,
                before=before,
                request=request,
                node_labels=labels,
                events=seen[3],
            ),
            900,
            ends=(terminal.SCALE_OUT_WAIT, lambda seen: seen[3]),
        )
        pods, claims, nodes, events = self.karpenter_state()
        self.timeline = kk.build_timeline(pods, claims, nodes, events, before)
        self.scale_out_figures = spot.scale_out_figures(
            self.timeline, claims, replicas=replicas, request=request, nodepool=KARPENTER_NODEPOOL
        )
        self.run.path("karpenter-timeline.json").write_text(
            json.dumps(_timeline_rows(self.timeline), indent=2, default=str) + "\n", encoding="utf-8"
        )
        if not out.ok:
            return [out]
        launched = self.pool_instances()
        if reason := self.caps.reason(IMAGE_PULLS):
            return [out, *launched, Result.not_applicable(core.pinned_image_check(), self.run.target, reason)]
        # The new nodes pulled the image themselves: did they get the same bits?
        pinned = versions().get(GAME_IMAGE_PIN, "")
        image = self.wait(
            lambda: k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector),
            lambda pods: core.judge_pinned_image(pods, pinned),
            300,
        )
        return [out, *launched, image]

    def pool_instances(self) -> list[Result]:
        """The pool's instances as EC2 reports them, against the NodePool and the platform's discovery group, and
        their spot prices."""
        nodepool, _ = self.karpenter_objects()
        _, claims, nodes, _ = self.karpenter_state()
        ids = [ident for claim in kk.in_pool(claims, KARPENTER_NODEPOOL) if (ident := spot.instance_id(claim))]
        instances = self.ec2_instances([{"Name": "instance-id", "Values": ids}]) if ids else {}
        group = str(self.stack.outputs()["discovery_security_group_id"])
        launched = spot.judge_pool_instances(nodepool or {}, claims, nodes, instances, security_groups=[group])
        if reason := self.caps.reason(SPOT_PRICES):
            return [launched, Result.not_applicable(spot.SPOT_PRICES_CHECK, self.run.target, reason)]
        types = sorted({str(i["InstanceType"]) for i in instances.values()})
        history = (
            self.clients("ec2")
            .describe_spot_price_history(InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=self.now())
            .get("SpotPriceHistory", [])
            if types
            else []
        )
        return [launched, spot.judge_spot_prices(instances, history)]

    def spot_interruption(self, replicas: int) -> Result:
        """An EventBridge-shaped spot interruption warning for one of the pool's instances, on the platform's
        interruption queue: Karpenter must drain the node, launch a replacement and terminate the instance,
        while every replica keeps running somewhere on the pool."""
        pods, claims, _, _ = self.karpenter_state()
        before = core.Before.of(pods, claims)
        victim = spot.interruption_victim(claims, KARPENTER_NODEPOOL)
        if victim is None:
            return Result.failed(spot.INTERRUPTION_CHECK, f"no NodeClaim of {KARPENTER_NODEPOOL} has an instance")
        outputs = self.stack.outputs()
        sqs = self.clients("sqs")
        queue = sqs.get_queue_url(QueueName=outputs["karpenter_interruption_queue_name"])["QueueUrl"]
        message = spot.spot_interruption_warning(victim, outputs["region"], self.caller_account())
        self.phase_began = self.now()
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(message))
        self.say(f"sent a spot interruption warning for {victim.instance_id} (node {victim.node})")

        def observe() -> tuple[Any, Any, Any, Any, str | None]:
            pods, claims, nodes, events = self.karpenter_state()
            return pods, claims, nodes, events, self.instance_state(victim.instance_id)

        return self.wait(
            observe,
            lambda seen: spot.judge_interruption(
                victim,
                seen[0],
                seen[1],
                seen[2],
                seen[3],
                instance_state=seen[4],
                replicas=replicas,
                nodepool=KARPENTER_NODEPOOL,
                before=before,
            ),
            600,
            ends=(terminal.INTERRUPTION_WAIT, lambda seen: seen[3]),
        )

    def caller_account(self) -> str:
        return str(self.clients("sts").get_caller_identity()["Account"])

    def instance_state(self, instance_id: str) -> str | None:
        found = self.clients("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(found[0]["Instances"][0]["State"]["Name"]) if found else None

    def scale_in(self, baseline: int) -> Result:
        """Scale the game back to `baseline`: consolidation must remove the pool's spare NodeClaims down to the
        bin-packing minimum. The figure is the scale back to Karpenter's last consolidation decision (its
        DisruptionTerminating event)."""
        k = self.kube()
        request = core.cpu_request(k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT) or {})
        pods, claims, _, _ = self.karpenter_state()
        before = core.Before.of(pods, kk.in_pool(claims, KARPENTER_NODEPOOL))
        self.say(f"scaling {GAME_DEPLOYMENT} back to {baseline}")
        k.scale_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT, baseline)
        scaled_back = self.now().replace(microsecond=0)  # the API's event times are whole seconds
        back = self.wait(
            self.karpenter_state,
            lambda seen: consolidation.judge_scale_in(
                seen[1],
                seen[2],
                seen[3],
                nodepool=KARPENTER_NODEPOOL,
                pods=seen[0],
                replicas=baseline,
                request=request,
                before=before,
            ),
            600,
        )
        decided = [row["at"] for row in back.evidence.get("consolidated", {}).values() if row["at"]]
        if back.ok and decided:
            self.scale_in_seconds = round((max(decided) - scaled_back).total_seconds(), 3)
        return back

    def karpenter(self) -> StageOutcome:
        deployment = self.kube().get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT)
        if deployment is None:
            raise EnvironmentProblem(f"deployment {GAME_NAMESPACE}/{GAME_DEPLOYMENT} not found: did Argo CD sync it?")
        baseline = int((deployment.get("spec") or {}).get("replicas") or 0)
        replicas = scale_out_replicas(deployment)
        ready = self.karpenter_pool()
        if not ready.ok:
            return StageOutcome(f"not scaled: {ready.why}", (ready,))
        results = [ready, self.node_class_discovery()]
        try:
            out = self.scale_out(replicas)
            results += out
            if out[0].ok:
                results.append(self.spot_interruption(replicas))
        finally:
            results.append(self.scale_in(baseline))  # even after a failure: the spot nodes must not linger
        results += [self.processes_kept_running(), *self.identities_honoured()]
        return StageOutcome(f"scaled to {replicas}, interrupted one spot node, back to {baseline}", tuple(results))

    def teardown(self) -> StageOutcome:
        return StageOutcome("controller-aware teardown, terraform destroy, tag sweep", tuple(teardown_run(self)))


def _timeline_rows(timeline: Any) -> dict[str, Any]:
    return {
        "start": timeline.start,
        "pods": [asdict(p) for p in timeline.pods],
        "nodes": [asdict(n) for n in timeline.nodes],
    }
