"""What a kubelet makes of a pod's spec (harness.kube.podspec): the environment, the command line and the volumes'
files of the chart pods a local run recorded (tests/fixtures/kube/recorded/addons/), and each rule's failing case."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kube_fixtures import items, named

from harness.kube import podspec
from harness.kube.podspec import ContainerConfigError, PodSources

# argocd-cmd-params-cm as the recorded run's API server served it (the chart's presets and the platform's param).
PARAMS = {
    "controller.resource.health.persist": "true",
    "redis.server": "argocd-redis:6379",
    "repo.server": "argocd-repo-server:8081",
    "controller.log.level": "info",
}
REDIS_SECRET = {"data": {"auth": base64.b64encode(b"s3cret").decode()}}


def argocd_pod(name: str) -> dict[str, Any]:
    return dict(named(items("recorded/addons/pods_argocd.yaml"), name))


def sources(**secrets: dict[str, Any]) -> PodSources:
    return PodSources(
        config_maps={"argocd-cmd-params-cm": {"data": PARAMS}, "kube-root-ca.crt": {"data": {"ca.crt": "CA"}}},
        secrets=secrets,
        node_allocatable={"cpu": "2", "memory": "8192Mi"},
        token=lambda audience, seconds: f"token({audience or 'api'},{seconds})",
    )


def test_the_application_controller_gets_what_its_pod_maps_from_the_params_configmap() -> None:
    made = podspec.container(
        argocd_pod("argocd-application-controller-0"),
        "application-controller",
        sources(**{"argocd-redis": REDIS_SECRET}),
    )
    assert made.env["ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH"] == "true"
    assert made.env["ARGOCD_APPLICATION_CONTROLLER_REPO_SERVER"] == "argocd-repo-server:8081"
    assert made.env["REDIS_SERVER"] == "argocd-redis:6379" and made.env["REDIS_PASSWORD"] == "s3cret"
    assert "ARGOCD_RECONCILIATION_TIMEOUT" not in made.env  # optional, and argocd-cm has no such key here
    assert made.command is None and made.args[0] == "/usr/local/bin/argocd-application-controller"
    assert podspec.Mount("/home/argocd", "argocd-home") in made.mounts


def test_a_secret_the_pod_needs_that_does_not_exist_is_the_kubelets_config_error() -> None:
    """The chart's redis-secret-init hook makes argocd-redis; a node that has not run it cannot start the pod."""
    with pytest.raises(ContainerConfigError, match="argocd-application-controller-0: Secret argocd-redis not found"):
        podspec.container(argocd_pod("argocd-application-controller-0"), "application-controller", sources())


def test_references_expand_in_env_values_and_args_as_kubernetes_expands_them() -> None:
    env = {"A": "1", "B": "x y"}
    assert podspec.expand("--requirepass $(A)", env) == "--requirepass 1"
    assert podspec.expand("$(B)$(A)", env) == "x y1"
    assert podspec.expand("$(UNSET) stays", env) == "$(UNSET) stays"
    assert podspec.expand("$$(A) is escaped, $$ is one", env) == "$(A) is escaped, $ is one"
    assert podspec.expand("$(unterminated", env) == "$(unterminated"
    assert podspec.expand("cost: $5", env) == "cost: $5"


def pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}, "annotations": {}},
        "spec": {"nodeName": "ops-0", "containers": [{"name": "c", **container}], "volumes": volumes or []},
        "status": {"podIP": "10.250.1.2", "hostIP": "10.250.1.1"},
    }


def test_the_downward_api_and_resources_give_what_the_kubelet_gives() -> None:
    env = [
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "CORES", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},  # unset: the node's
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "0"}}},
        {"name": "BOTH", "value": "$(NS)/$(APP)"},
    ]
    resources = {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    made = podspec.container(pod({"env": env, "resources": resources}), "c", sources())
    assert made.env == {
        "NS": "ns",
        "APP": "x",
        "IP": "10.250.1.2",
        "CPU": "500",
        "CORES": "2",
        "MEM": str(1024**3),
        "BOTH": "ns/x",
    }


def test_env_from_comes_first_and_env_wins() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "argocd-cmd-params-cm"}, "prefix": "P_"}],
        "env": [{"name": "P_repo.server", "value": "mine"}],
    }
    made = podspec.container(pod(container), "c", sources())
    assert made.env["P_repo.server"] == "mine" and made.env["P_redis.server"] == "argocd-redis:6379"


def test_a_missing_key_of_an_existing_configmap_is_named() -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "argocd-cmd-params-cm", "key": "nope"}}}]
    with pytest.raises(ContainerConfigError, match="key nope of ConfigMap argocd-cmd-params-cm not found"):
        podspec.container(pod({"env": env}), "c", sources())


def test_an_unknown_field_path_is_named() -> None:
    env = [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.priority"}}}]
    with pytest.raises(ContainerConfigError, match=r"fieldRef spec\.priority"):
        podspec.container(pod({"env": env}), "c", sources())


def test_the_service_account_volume_holds_a_bound_token_the_ca_and_the_namespace() -> None:
    recorded = argocd_pod("argocd-application-controller-0")
    (volume,) = [v for v in recorded["spec"]["volumes"] if "projected" in v]
    files = podspec.volume_files(recorded, volume, sources())
    assert files == {"token": b"token(api,3607)", "ca.crt": b"CA", "namespace": b"argocd"}
    assert podspec.token_sources(recorded) == [(volume["name"], "", 3607)]


def test_secret_and_configmap_volumes_hold_their_items_and_an_optional_absent_one_is_empty() -> None:
    recorded = argocd_pod("argocd-application-controller-0")
    volumes = {v["name"]: v for v in recorded["spec"]["volumes"]}
    assert podspec.volume_files(recorded, volumes["argocd-repo-server-tls"], sources()) == {}  # optional, absent
    tls = {"data": {k: base64.b64encode(k.encode()).decode() for k in ("tls.crt", "tls.key", "ca.crt", "extra")}}
    held = podspec.volume_files(recorded, volumes["argocd-repo-server-tls"], sources(**{"argocd-repo-server-tls": tls}))
    assert held == {"tls.crt": b"tls.crt", "tls.key": b"tls.key", "ca.crt": b"ca.crt"}  # only its items
    assert podspec.volume_files(recorded, volumes["argocd-home"], sources()) is None  # an emptyDir


def test_a_required_configmap_volume_that_is_missing_and_an_unserved_kind_are_named() -> None:
    missing = {"name": "v", "configMap": {"name": "absent"}}
    with pytest.raises(ContainerConfigError, match="ConfigMap absent not found"):
        podspec.volume_files(pod({}), missing, sources())
    with pytest.raises(ContainerConfigError, match=r"volume v is of a kind not served here: \['hostPath'\]"):
        podspec.volume_files(pod({}), {"name": "v", "hostPath": {"path": "/var/log"}}, sources())


def test_what_a_pod_refers_to_is_listed_for_the_reads() -> None:
    config_maps, secrets = podspec.referenced(argocd_pod("argocd-application-controller-0"))
    assert {"argocd-cm", "argocd-cmd-params-cm", "kube-root-ca.crt"} <= config_maps
    assert {"argocd-redis", "argocd-repo-server-tls"} <= secrets
