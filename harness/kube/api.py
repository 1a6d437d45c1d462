"""What the harness asks of a Kubernetes API: the custom resources it touches, and the ``KubeClient`` protocol
(read, delete, scale) that the real client (harness.kube.client) and the tests' fakes implement.

Objects are plain dicts exactly as the API serves them as JSON (camelCase keys, RFC 3339 times). This module
needs no Kubernetes client library, so the teardown can name what it deletes without one installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import EnvironmentProblem

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class CustomResource:
    """Where a custom resource lives in the API: group, version, plural, and whether it is namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool


APPLICATION = CustomResource("argoproj.io", "v1alpha1", "applications", namespaced=True)
APPLICATION_SET = CustomResource("argoproj.io", "v1alpha1", "applicationsets", namespaced=True)
NODE_POOL = CustomResource("karpenter.sh", "v1", "nodepools", namespaced=False)
NODE_CLAIM = CustomResource("karpenter.sh", "v1", "nodeclaims", namespaced=False)
EC2_NODE_CLASS = CustomResource("karpenter.k8s.aws", "v1", "ec2nodeclasses", namespaced=False)


class NotServed(EnvironmentProblem):
    """The API does not serve a resource type (404 on its collection): its CRD was never installed, or is gone."""


class KubeClient(Protocol):
    """What the e2e and the teardown do to a cluster: read, delete and scale. A missing object is ``None``."""

    def list_nodes(self, label_selector: str = "") -> list[KubeObject]: ...

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[KubeObject]:
        """Pods in ``namespace`` (all namespaces when ``None``) matching ``label_selector``."""
        ...

    def list_events(self, namespace: str | None = None, field_selector: str = "") -> list[KubeObject]:
        """core/v1 Events, e.g. ``field_selector="involvedObject.kind=Pod"``."""
        ...

    def get_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> KubeObject | None: ...

    def list_custom(
        self, resource: CustomResource, namespace: str | None = None, label_selector: str = ""
    ) -> list[KubeObject]:
        """Raises ``NotServed`` when the API does not serve the resource type at all."""
        ...

    def delete_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> bool:
        """Delete one custom object; ``False`` when it was already gone."""
        ...

    def get_service(self, namespace: str, name: str) -> KubeObject | None: ...

    def get_ingress(self, namespace: str, name: str) -> KubeObject | None: ...

    def list_ingresses(self, namespace: str | None = None) -> list[KubeObject]: ...

    def delete_ingress(self, namespace: str, name: str) -> bool:
        """Delete one Ingress; ``False`` when it was already gone."""
        ...

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None: ...

    def get_pdb(self, namespace: str, name: str) -> KubeObject | None: ...

    def server_version(self) -> str:
        """The API server's gitVersion ("v1.36.5")."""
        ...

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int = 200) -> str: ...
