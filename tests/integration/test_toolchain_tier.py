"""The toolchain's binaries for real: a control plane on loopback reports the pinned version, and the three
pinned charts render with the values infra/addons gives them into objects the pinned schemas accept.

Each test skips with one line naming `make toolchain` and its one-time cost when a binary is not built.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.gate.api import build_model, check
from harness.gate.charts import render, validator_for
from harness.project import reference_dir, repo_root, versions
from harness.targets.controlplane import control_plane
from harness.targets.releases import chart_folder, release
from harness.toolchain.build import locate, missing, shipped_data

pytestmark = pytest.mark.integration


def needs(*binaries: str) -> None:
    if reason := missing(list(binaries)):
        pytest.skip(reason)


def test_control_plane_reports_the_pinned_version(tmp_path: Path) -> None:
    needs("etcd", "kube-apiserver", "kubectl")
    pinned = f"v{versions()['kubernetes_release']}"
    assert pinned.startswith(f"v{versions()['kubernetes']}.")
    with control_plane(tmp_path, full=False) as cluster:
        info = cluster.get("/version").json()
        assert info["gitVersion"] == pinned
        assert (info["major"], info["minor"]) == tuple(versions()["kubernetes"].split("."))
        kubectl = subprocess.run(
            [str(locate("kubectl")), "--kubeconfig", str(cluster.kubeconfig), "version", "-o", "yaml"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        both = yaml.safe_load(kubectl.stdout)
        assert both["serverVersion"]["gitVersion"] == pinned
        assert both["clientVersion"]["gitVersion"] == pinned
        assert cluster.kubeconfig.parent == tmp_path  # never ~/.kube
    assert not cluster.supervisor.running


NODE = """
apiVersion: v1
kind: Node
metadata:
  name: ops-1
  labels: {workload-type: ops, kubernetes.io/os: linux}
  annotations: {kwok.x-k8s.io/node: fake}
spec:
  taints: [{key: CriticalAddonsOnly, value: "true", effect: NoSchedule}]
status:
  allocatable: {cpu: "2", memory: 8Gi, pods: "29"}
  capacity: {cpu: "2", memory: 8Gi, pods: "29"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {workload-type: ops}
      tolerations: [{key: CriticalAddonsOnly, operator: Exists}]
      containers: [{name: web, image: registry.invalid/web:1}]
"""


def test_kwok_nodes_run_what_the_scheduler_places_on_them(tmp_path: Path) -> None:
    needs("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
    with control_plane(tmp_path) as cluster:
        run = cluster.kubectl
        run("apply", "-f", "-", stdin=NODE)
        run("wait", "node/ops-1", "--for=condition=Ready", "--timeout=60s")
        # The Deployment controller, the scheduler and KWOK's pod stages, all real: Available with both replicas.
        run("-n", "default", "wait", "deployment/web", "--for=condition=Available", "--timeout=90s")
        pods = yaml.safe_load(run("-n", "default", "get", "pods", "-l", "app=web", "-o", "yaml"))["items"]
        assert len(pods) == 2
        assert {p["spec"]["nodeName"] for p in pods} == {"ops-1"}
        assert all(p["status"]["phase"] == "Running" and p["status"].get("podIP") for p in pods)
        assert not cluster.supervisor.crashed()


def test_a_crashed_control_plane_process_is_one_line_with_its_log(tmp_path: Path) -> None:
    needs("etcd", "kube-apiserver")
    from harness.errors import EnvironmentProblem

    (tmp_path / "etcd").write_text("a file where etcd wants its data folder")
    with pytest.raises(EnvironmentProblem) as caught, control_plane(tmp_path, full=False):
        pass
    message = str(caught.value)
    assert message.startswith("etcd exited with code ")
    assert "log: " in message and "\n" not in message


# --- charts ---------------------------------------------------------------------------------------------------

# infra/addons' releases of the pinned upstream charts.
RELEASES = ("helm_release.aws_load_balancer_controller", "helm_release.karpenter", "helm_release.argocd")


@pytest.mark.parametrize("address", RELEASES)
def test_chart_renders_with_the_addons_values_into_valid_objects(
    address: str, harness_platform_outputs: dict[str, Any]
) -> None:
    needs("helm")
    model = build_model([repo_root() / "infra" / "addons"], [], reference_dir())
    # The release as the local target installs it: values with the platform's real outputs filled in.
    chosen = release(model, address, harness_platform_outputs)
    chart = chart_folder(reference_dir(), chosen.chart, chosen.version, shipped_data())
    # The gate's own rendering (harness check --render-charts), cached by chart and values.
    objects, error = render(
        locate("helm"), chart, chosen.chart, chosen.namespace, chosen.values, versions()["kubernetes"]
    )
    assert error is None, error
    assert len(objects) >= 5
    # Custom resources validate against the pinned CRDs, and against those the chart installs itself.
    validator = validator_for(model, [chart])
    problems = {f"{o['kind']}/{o['metadata']['name']}": validator.problems(o) for o in objects}
    problems = {name: found for name, found in problems.items() if found}
    assert problems == {}
    # The values took effect: every workload of the release lands on the ops nodes.
    selectors = [
        o["spec"]["template"]["spec"].get("nodeSelector", {})
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    ]
    ops = set(harness_platform_outputs["ops_node_labels"].items())
    assert selectors and all(set(s.items()) & ops for s in selectors)


@pytest.mark.parametrize("tree", ["repository", "gate fixture"])
def test_harness_check_render_charts_passes_with_the_pinned_helm(tree: str) -> None:
    """The gate's --render-charts on this repository and on the gate's platform fixture: every release renders
    into valid objects (EKS044), and no value it sets is lost (EKS045), with the pinned helm."""
    needs("helm")
    root = repo_root() if tree == "repository" else repo_root() / "tests" / "unit" / "gate" / "fixtures" / "platform"

    report = check(
        [root / "infra"], [root / "gitops"], reference_dir(), select=("EKS044", "EKS045"), render_charts=True
    )

    assert [(f.rule_id, f.message) for f in report.findings] == []
    assert not any("no helm" in note for note in report.notes)


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        # client-go parses the ExecCredential and sends its token: this API server does not know EKS tokens.
        ("harness", "the server has asked for the client to provide credentials"),
        # A plugin printing anything else is refused by client-go itself.
        ("broken", "decoding stdout"),
    ],
)
def test_kubectl_accepts_harness_eks_token_as_an_exec_credential(
    plugin: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs("etcd", "kube-apiserver", "kubectl")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    if plugin == "harness":
        command, args = (
            sys.executable,
            ["-m", "harness", "eks-token", "--cluster-name", "eks-demo", "--region", "eu-west-1"],
        )
    else:
        command, args = "sh", ["-c", "echo not-a-credential"]
    with control_plane(tmp_path, full=False) as cluster:
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        config["users"] = [
            {
                "name": "admin",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": command,
                        "args": args,
                        "interactiveMode": "Never",
                    }
                },
            }
        ]
        exec_config = tmp_path / "exec-kubeconfig"
        exec_config.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            # A discovery cache of its own: one another server on this port left in ~/.kube/cache skips discovery,
            # and kubectl words the same 401 differently ("You must be logged in to the server").
            [
                str(locate("kubectl")),
                "--kubeconfig",
                str(exec_config),
                f"--cache-dir={tmp_path / 'cache'}",
                "get",
                "namespaces",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert re.search(expected, done.stderr), done.stderr
