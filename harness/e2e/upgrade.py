"""`harness upgrade`: an EKS minor upgrade rehearsed before it is done, with the stages of `harness e2e` around it.

The gate proves the step first (harness check's upgrade rules); the platform stands at versions.yaml
`upgrade_from_kubernetes` (infra/platform `stand_at_upgrade_from`), the add-ons go in and the checks pass there;
then the upgrade: Terraform moves the cluster and its node group to `kubernetes`, the control plane follows (on
`local`: the new minor's binaries on the same etcd data, harness.targets.local.follow_cluster_version), and
Karpenter replaces the pool's nodes through drift once it resolves the alias's AMI for the new minor. All the while a
watcher counts the game's ready pods every second against its PodDisruptionBudget.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.e2e import report as rpt
from harness.e2e.orchestration import E2E, GAME_DEPLOYMENT, GAME_NAMESPACE, KARPENTER_NODEPOOL, OPS_NODE_REGISTRATION
from harness.e2e.stages import StageOutcome, watched
from harness.gate.api import check
from harness.gate.model import Severity
from harness.kube import core, ingress
from harness.kube.api import APPLICATION, EC2_NODE_CLASS, NODE_CLAIM, NODE_POOL
from harness.kube.core import GAME_PODS
from harness.kube.upgrade import (
    ADDON_SUPPORT_CHECK,
    ALB_THROUGHOUT_CHECK,
    DRIFT_CHECK,
    KUBELETS_CHECK,
    SYNCED_THROUGHOUT_CHECK,
    Sample,
    drain_blocked,
    inventory,
    judge_addon_support,
    judge_availability,
    judge_drift,
    judge_kubelets,
    judge_objects_kept,
    judge_throughout,
    judge_version,
    pdb_floor,
    upgrade_addon_versions,
    upgrade_step,
)
from harness.project import repo_root, versions
from harness.results import Result, Status
from harness.targets import local
from harness.targets import teardown as td
from harness.targets.stack import STAND_AT_UPGRADE_FROM

# harness check's rules that prove the step before anything is created: the manifests against the new minor's
# schemas (its removed APIs), the pinned versions against each other, the step itself.
GATE_RULES = ("EKS001", "EKS016", "EKS049")
GATE_CHECK = "harness check proves the upgrade step before anything is changed"
EKS_ADDONS = "eks_addons"  # infra/targets.yaml: where EKS's add-on API is served
TIMELINE_FILE = "upgrade-timeline.json"
PLOT_FILE = "upgrade.png"
SAMPLE_INTERVAL_S = 1.0
DRIFT_TIMEOUT_S = 1200.0  # Karpenter reads the cluster's minor every 5 minutes, then replaces one node at a time


class Watcher:
    """Looks at the platform every second, on a thread of its own, until stopped: `look` gives (ready game pods,
    every Application Synced, the Ingress has its load balancer)."""

    def __init__(self, look: Callable[[], tuple[int, bool, bool]], interval: float = SAMPLE_INTERVAL_S) -> None:
        self.look, self.interval = look, interval
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upgrade-watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10 * self.interval)

    def _run(self) -> None:
        while not self._stop.is_set():
            at = round(time.monotonic() - self.started, 1)
            try:
                self.samples.append(Sample(at, *self.look()))
            except Exception:
                self.samples.append(Sample(at, None))
            self._stop.wait(self.interval)


@dataclass
class UpgradeDrill(E2E):
    """The e2e's stages with the gate before them and the upgrade between the checks and the teardown."""

    phases: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    upgrade_figures: tuple[tuple[str, str], ...] = ()

    def figures(self) -> rpt.Figures:
        return replace(super().figures(), upgrade=self.upgrade_figures)

    def gate(self) -> StageOutcome:
        root = repo_root()
        report = check([root / "infra"], [root / "gitops"], None, select=GATE_RULES)
        errors = [
            Result.failed(GATE_CHECK, f"{f.rule_id} {f.file}:{f.line}: {f.message} (fix: {f.fix})")
            for f in report.findings
            if f.severity is Severity.ERROR
        ]
        addons = self.addons_offered()
        if errors or addons.status is Status.FAIL:
            return StageOutcome("refused before anything was created", (*errors, addons))
        step = upgrade_step(versions())
        return StageOutcome(f"{step}: {', '.join(GATE_RULES)} pass", (Result.passed(GATE_CHECK, step), addons))

    def addons_offered(self) -> Result:
        """The EKS add-on pins against what EKS offers for each minor (DescribeAddonVersions): data the pinned
        reference does not hold, so it is asked where the API is; the emulator has none."""
        if reason := self.caps.reason(EKS_ADDONS):
            return Result.not_applicable(ADDON_SUPPORT_CHECK, self.run.target, reason)
        wanted = upgrade_addon_versions(versions())
        eks = self.clients("eks")
        offered: dict[tuple[str, str], set[str]] = {}
        for name, minor, _ in wanted:
            pages = eks.get_paginator("describe_addon_versions").paginate(addonName=name, kubernetesVersion=minor)
            offered[(name, minor)] = {
                str(v["addonVersion"]) for page in pages for addon in page["addons"] for v in addon["addonVersions"]
            }
        return judge_addon_support(wanted, offered)

    def platform(self) -> StageOutcome:
        self.run.settings[STAND_AT_UPGRADE_FROM] = True
        self.run.save()
        return super().platform()

    def look(self) -> tuple[int, bool, bool]:
        """What the watcher samples: the game's ready pods, every Application Synced, the Ingress's load balancer."""
        k = self.kube()
        ready = sum(1 for pod in k.list_pods(GAME_NAMESPACE, GAME_PODS.label_selector) if core.pod_ready(pod))
        apps = k.list_custom(APPLICATION, td.ARGOCD_NAMESPACE)
        synced = bool(apps) and all(((a.get("status") or {}).get("sync") or {}).get("status") == "Synced" for a in apps)
        alb = ingress.ingress_hostname(k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT)) is not None
        return ready, synced, alb

    def kept_objects(self) -> dict[str, str]:
        """What the platform's users made, read back across the control-plane swap: the game's objects, Argo CD's
        Applications, Karpenter's NodePool and EC2NodeClass."""
        k = self.kube()
        game = (
            k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT),
            k.get_service(GAME_NAMESPACE, GAME_DEPLOYMENT),
            k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT),
            k.get_pdb(GAME_NAMESPACE, GAME_DEPLOYMENT),
        )
        custom = [
            *k.list_custom(APPLICATION, td.ARGOCD_NAMESPACE),
            *k.list_custom(NODE_POOL),
            *k.list_custom(EC2_NODE_CLASS),
        ]
        return inventory([*(obj for obj in game if obj), *custom])

    def upgrade(self) -> StageOutcome:
        k, pins = self.kube(), versions()
        deployment = k.get_deployment(GAME_NAMESPACE, GAME_DEPLOYMENT) or {}
        replicas = int((deployment.get("spec") or {}).get("replicas") or 0)
        floor = pdb_floor(k.get_pdb(GAME_NAMESPACE, GAME_DEPLOYMENT) or {}, replicas)
        claims_before, objects_before = k.list_custom(NODE_CLAIM), self.kept_objects()
        outputs = self.stack.outputs()
        results: list[Result] = []
        with Watcher(self.look) as watcher:
            with self.phase("terraform apply (cluster, then node group)"):
                self.run.settings[STAND_AT_UPGRADE_FROM] = False
                self.run.save()
                with watched(self.stack, self.watchdog):
                    self.stack.terraform.apply(self.stack.variables())
            if self.caps.local_kubernetes:
                with self.phase("control plane swapped"):
                    for line in local.follow_cluster_version(self.run, outputs, self.clients):
                        self.say(line)
            # On local the control plane is the toolchain's release; EKS serves a patch of its own.
            expected = pins["kubernetes_release"] if self.caps.local_kubernetes else pins["kubernetes"]
            results += [judge_version(k.server_version(), expected), self.ops_kubelets(outputs)]
            with self.phase("Karpenter drift"):
                began = self.phase_began = self.now().replace(microsecond=0)  # events carry whole seconds

                def judge(seen: tuple[Any, Any, Any, Any]) -> Result:
                    claims, nodeclass, events, budget = seen
                    if blocked := drain_blocked(events, budget, began):
                        return Result.failed(DRIFT_CHECK, blocked)
                    return judge_drift(claims_before, claims, KARPENTER_NODEPOOL, new_images(nodeclass))

                drift = self.wait(
                    lambda: (
                        k.list_custom(NODE_CLAIM),
                        self.karpenter_objects()[1],
                        self.karpenter_events(),
                        k.get_pdb(GAME_NAMESPACE, GAME_DEPLOYMENT),
                    ),
                    judge,
                    DRIFT_TIMEOUT_S,
                )
            results.append(drift)
        address = self.ingress_address()
        hostname = ingress.ingress_hostname(k.get_ingress(GAME_NAMESPACE, GAME_DEPLOYMENT))
        results += [
            judge_availability(watcher.samples, floor),
            judge_throughout(watcher.samples, "synced", SYNCED_THROUGHOUT_CHECK),
            judge_throughout(watcher.samples, "alb", ALB_THROUGHOUT_CHECK),
            judge_objects_kept(objects_before, self.kept_objects()),
            self.applications_synced(),
            address,
            # The ALB kept, its target groups registering the game's pods on the new nodes.
            *(self.load_balancer(hostname) if hostname else ()),
            self.processes_kept_running(),
            *self.identities_honoured(),
        ]
        self.write_timeline(watcher.samples, floor)
        replaced = len(drift.evidence.get("replaced", []))
        lowest = min((s.ready for s in watcher.samples if s.ready is not None), default=None)
        unanswered = sum(1 for s in watcher.samples if s.ready is None)
        self.upgrade_figures = (
            *((f"upgrade: {name}", f"{seconds:.1f} s") for name, seconds in self.phases.items()),
            ("upgrade: nodes replaced by drift", str(replaced)),
            ("upgrade: lowest ready game pods / PDB floor", f"{lowest} / {floor}"),
            ("upgrade: seconds the API server did not answer (of samples)", f"{unanswered} of {len(watcher.samples)}"),
            ("upgrade: objects kept across the control-plane swap", str(len(objects_before))),
        )
        return StageOutcome(
            f"{upgrade_step(pins)}: {replaced} node(s) replaced by drift, "
            f"lowest ready game pods {lowest} (PDB floor {floor})",
            tuple(results),
        )

    def ops_kubelets(self, outputs: Mapping[str, Any]) -> Result:
        """The node group's Nodes run the new minor's kubelet: on EKS its rolled instances registered them anew; where
        the harness builds the ops Nodes (local) their version is its own patch, so not evidence."""
        if reason := self.caps.reason(OPS_NODE_REGISTRATION):
            return Result.not_applicable(KUBELETS_CHECK, self.run.target, reason)
        group = f"eks.amazonaws.com/nodegroup={outputs['ops_node_group_name']}"
        return judge_kubelets(self.kube().list_nodes(group), f"v{versions()['kubernetes_release']}")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Say the phase and record its seconds in `phases`."""
        self.say(f"upgrade: {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(time.monotonic() - started, 1)

    def write_timeline(self, samples: list[Sample], floor: int) -> Path:
        path = self.run.path(TIMELINE_FILE)
        body = {"phases_s": self.phases, "pdb_floor": floor, "samples": [asdict(s) for s in samples]}
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        rpt.upgrade_figure(samples, floor, self.phases).savefig(self.run.path(PLOT_FILE), dpi=110)
        return path


def new_images(nodeclass: Mapping[str, Any] | None) -> set[str]:
    """The AMIs the EC2NodeClass resolved (its status), which after the upgrade are the new minor's."""
    return {str(ami.get("id")) for ami in ((nodeclass or {}).get("status") or {}).get("amis") or []}
