"""Kubernetes API objects (tests/fixtures/kube) and a KubeClient fake that serves them.

tests/fixtures/kube/recorded/<state>/ holds list responses recorded from a local-target run by
scripts/capture_kube_objects.py (each file's header says when, and the state the cluster was in: the failures
from runs given broken inputs). A state no local run can produce would be hand-written beside them, labelled
``# hand-written: <why a run cannot produce this state here>``; tests/unit/test_kube_fixtures.py holds every file
to one of the two. None is today.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from harness.kube.api import CustomResource, KubeObject
from harness.kube.core import Before

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kube"
# What existed in the recorded run when it raised game-2048 from 2 to 16 replicas (03:04:58): the baseline's two
# pods and the NodeClaim launched for them (recorded/scaling/ and scaled_out/ hold them beside what came after).
RECORDED_BEFORE_SCALE = Before(
    frozenset({"game-2048/game-2048-665967d87f-26xqr", "game-2048/game-2048-665967d87f-f4q5f"}),
    frozenset({"apps-clcdp"}),
)


def load(name: str) -> Any:
    """One fixture file, ``recorded/synced/nodes.yaml`` or ``nodes.yaml`` (a fresh copy: tests may mutate it)."""
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def items(name: str, kind: str | None = None) -> list[KubeObject]:
    """The ``items`` of a list fixture, optionally only those of one ``kind`` (for mixed ``kind: List``).

    Like the API server, core lists (NodeList, PodList, EventList) carry no ``kind`` on their items;
    kubectl's mixed ``kind: List`` output does.
    """
    return [obj for obj in load(name)["items"] if kind is None or obj.get("kind") == kind]


def named(objects: Iterable[KubeObject], name: str) -> KubeObject:
    return next(obj for obj in objects if obj["metadata"]["name"] == name)


def _matches(obj: KubeObject, label_selector: str) -> bool:
    """Equality-based selectors (``a=b,c=d``), the only kind the harness sends."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, label_selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _plural(kind: str) -> str:
    """The resource name of a kind, as its CRD spells it (EC2NodeClass -> ec2nodeclasses)."""
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def _typed(document: KubeObject) -> Iterable[tuple[str, KubeObject]]:
    """(kind, object) pairs of one object or of every item of a list (kind from the list for core lists)."""
    if "items" not in document:
        yield str(document.get("kind")), copy.deepcopy(document)
        return
    item_kind = str(document.get("kind", "")).removesuffix("List")
    for obj in document["items"]:
        yield str(obj.get("kind") or item_kind), copy.deepcopy(obj)


class FakeKubeClient:
    """Serves API objects and list responses through the KubeClient protocol and records every write."""

    def __init__(self, *documents: KubeObject, logs: dict[str, str] | None = None) -> None:
        self.typed = [pair for document in documents for pair in _typed(document)]
        self.logs = logs or {}
        self.writes: list[tuple[str, ...]] = []

    @property
    def objects(self) -> list[KubeObject]:
        return [obj for _, obj in self.typed]

    def _remove(self, found: KubeObject) -> None:
        self.typed = [(kind, obj) for kind, obj in self.typed if obj is not found]

    def _of_kind(self, kind: str, namespace: str | None = None, label_selector: str = "") -> list[KubeObject]:
        return [
            obj
            for obj_kind, obj in self.typed
            if obj_kind == kind
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
            and _matches(obj, label_selector)
        ]

    def list_nodes(self, label_selector: str = "") -> list[KubeObject]:
        return self._of_kind("Node", None, label_selector)

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[KubeObject]:
        return self._of_kind("Pod", namespace, label_selector)

    def list_events(self, namespace: str | None = None, field_selector: str = "") -> list[KubeObject]:
        return self._of_kind("Event", namespace)

    def list_custom(
        self, resource: CustomResource, namespace: str | None = None, label_selector: str = ""
    ) -> list[KubeObject]:
        return [
            obj
            for kind, obj in self.typed
            if obj.get("apiVersion") == f"{resource.group}/{resource.version}"
            and _plural(kind) == resource.plural
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
            and _matches(obj, label_selector)
        ]

    def get_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> KubeObject | None:
        found = [obj for obj in self.list_custom(resource, namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def delete_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> bool:
        self.writes.append(("delete", resource.plural, namespace or "", name))
        found = self.get_custom(resource, name, namespace)
        if found is not None:
            self._remove(found)
        return found is not None

    def get_service(self, namespace: str, name: str) -> KubeObject | None:
        found = [obj for obj in self._of_kind("Service", namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def get_ingress(self, namespace: str, name: str) -> KubeObject | None:
        found = [obj for obj in self._of_kind("Ingress", namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def list_ingresses(self, namespace: str | None = None) -> list[KubeObject]:
        return self._of_kind("Ingress", namespace)

    def delete_ingress(self, namespace: str, name: str) -> bool:
        self.writes.append(("delete", "ingresses", namespace, name))
        found = self.get_ingress(namespace, name)
        if found is not None:
            self._remove(found)
        return found is not None

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None:
        found = [obj for obj in self._of_kind("Deployment", namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.writes.append(("scale", namespace, name, str(replicas)))

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int = 200) -> str:
        return self.logs.get(f"{namespace}/{name}", "")
