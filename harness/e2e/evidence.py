"""What a failed e2e run leaves for the post-mortem: events, controller logs, NodeClaims, NodePools,
Applications, nodes, the platform's outputs and the last plan log, in the run directory's evidence/ folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.errors import HarnessError
from harness.kube.api import APPLICATION, NODE_CLAIM, NODE_POOL
from harness.kube.core import CONTROLLER_PODS
from harness.project import KUBERNETES_CAPABILITY
from harness.targets.full_stack import FullStack
from harness.targets.teardown import ARGOCD_NAMESPACE


def collect_evidence(full: FullStack) -> Path:
    """Best effort, each piece on its own (one unreachable source must not hide the others)."""
    folder = full.run.path("evidence")
    folder.mkdir(exist_ok=True)
    pieces: dict[str, Callable[[], Any]] = {
        "terraform-outputs-platform.json": lambda: full.stack.terraform.output(),
    }
    if full.caps.supports(KUBERNETES_CAPABILITY) and full.run.settings.get("cluster_name"):
        pieces |= {
            "events.json": lambda: full.kube().list_events(None),
            "nodeclaims.json": lambda: full.kube().list_custom(NODE_CLAIM),
            "nodepools.json": lambda: full.kube().list_custom(NODE_POOL),
            "applications.json": lambda: full.kube().list_custom(APPLICATION, ARGOCD_NAMESPACE),
            "nodes.json": lambda: full.kube().list_nodes(),
        }
        for group in CONTROLLER_PODS:
            pieces[f"logs-{group.name}.txt"] = _logs_of(full, group.namespace, group.label_selector)
    for name, fetch in pieces.items():
        try:
            value = fetch()
            text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        except (HarnessError, BotoCoreError, ClientError, OSError) as exc:
            text = f"could not collect: {exc}"
        folder.joinpath(name).write_text(text + "\n", encoding="utf-8")
    logs = sorted(full.run.path("logs").glob("*plan*.log")) if full.run.path("logs").is_dir() else []
    if logs:
        shutil.copy(logs[-1], folder / "last-plan.log")
    return folder


def _logs_of(full: FullStack, namespace: str, selector: str) -> Callable[[], str]:
    def fetch() -> str:
        pods = full.kube().list_pods(namespace, selector)
        return "\n".join(
            f"==> {namespace}/{p['metadata']['name']}\n" + full.kube().pod_logs(namespace, p["metadata"]["name"])
            for p in pods
        )

    return fetch
