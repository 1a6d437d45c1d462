"""The local target's application controller gets the settings its chart pod maps from argocd-cmd-params-cm (its
pod's own spec, harness.kube.podspec): the platform's controller.resource.health.persist (infra/addons) holds on
`local` as on `aws`. A local run with it recorded tests/fixtures/kube/recorded/progressing_inline/ and
degraded_inline/ (per-resource health in the Application)."""

from __future__ import annotations

import re
from typing import Any

from kube_fixtures import items, named

from harness.kube.podspec import PodSources, environment
from harness.project import repo_root

# argocd-cmd-params-cm as a local run's API server served it (argo-cd chart 10.1.1 with infra/addons' values): the
# chart's presets (in-cluster addresses, every component's log settings) and the platform's one param.
PARAMS = {
    "applicationsetcontroller.enable.leader.election": "false",
    "applicationsetcontroller.log.format": "text",
    "applicationsetcontroller.log.level": "info",
    "commitserver.log.format": "text",
    "commitserver.log.level": "info",
    "controller.log.format": "text",
    "controller.log.level": "info",
    "controller.resource.health.persist": "true",
    "dexserver.log.format": "text",
    "dexserver.log.level": "info",
    "notificationscontroller.log.format": "text",
    "notificationscontroller.log.level": "info",
    "redis.server": "argocd-redis:6379",
    "repo.server": "argocd-repo-server:8081",
    "reposerver.log.format": "text",
    "reposerver.log.level": "info",
    "server.log.format": "text",
    "server.log.level": "info",
    "server.repo.server.strict.tls": "false",
}


def controller_container() -> dict[str, Any]:
    """The application controller's container as the chart's StatefulSet made it (recorded/addons/)."""
    pod = named(items("recorded/addons/pods_argocd.yaml"), "argocd-application-controller-0")
    (container,) = pod["spec"]["containers"]
    return dict(container)


def test_the_platform_asks_argo_cd_to_persist_resource_health() -> None:
    addons = (repo_root() / "infra" / "addons" / "main.tf").read_text(encoding="utf-8")
    assert re.search(r'params\s*=\s*\{\s*"controller\.resource\.health\.persist"\s*=\s*"true"\s*\}', addons)


def params_environment(container: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    """What the container's environment takes from argocd-cmd-params-cm."""
    pod = {"metadata": {"name": "argocd-application-controller-0", "namespace": "argocd"}, "spec": {}}
    secrets = {"argocd-redis": {"stringData": {"auth": "s3cret"}}}
    env = environment(
        pod, container, PodSources(config_maps={"argocd-cmd-params-cm": {"data": params}}, secrets=secrets)
    )
    mapped = {
        str(e["name"])
        for e in container["env"]
        if ((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") == "argocd-cmd-params-cm"
    }
    return {name: value for name, value in env.items() if name in mapped}


def test_the_controller_gets_the_variables_its_pod_maps_from_the_configmap() -> None:
    env = params_environment(controller_container(), PARAMS)
    assert env == {
        "ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH": "true",
        "ARGOCD_APPLICATION_CONTROLLER_REPO_SERVER": "argocd-repo-server:8081",
        "REDIS_SERVER": "argocd-redis:6379",
        "ARGOCD_APPLICATION_CONTROLLER_LOGFORMAT": "text",
        "ARGOCD_APPLICATION_CONTROLLER_LOGLEVEL": "info",
    }  # no other component's key


def test_keys_the_configmap_does_not_hold_stay_unset_as_in_the_pod() -> None:
    assert params_environment(controller_container(), {}) == {}
    container = controller_container()
    mapped = [e for e in container["env"] if "configMapKeyRef" in (e.get("valueFrom") or {})]
    assert len(mapped) > 20  # the chart maps every controller.* key; only those set come through
