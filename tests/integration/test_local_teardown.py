"""The teardown against a real API server (etcd and kube-apiserver from the toolchain), as a run interrupted
before the add-ons installed Argo CD's and Karpenter's CRDs leaves it: kinds the API does not serve have nothing
to remove; once a CRD is installed its objects are deleted; an API that cannot be reached still fails the step.
Skips with one line when the toolchain is not built (`make toolchain`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from harness.kube.client import connect_kubeconfig
from harness.project import reference_dir
from harness.results import Status
from harness.run import create_run
from harness.targets.controlplane import ControlPlane, control_plane
from harness.targets.teardown import KUBERNETES_STEPS, Teardown, TeardownFacts, TeardownTimeouts, plan_teardown
from harness.toolchain.build import missing

UNBUILT = missing(["etcd", "kube-apiserver", "kubectl"])
pytestmark = [pytest.mark.integration, pytest.mark.skipif(UNBUILT is not None, reason=str(UNBUILT))]
FACTS = TeardownFacts("", "local", addons_applied=True, platform_applied=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ControlPlane]:
    with control_plane(tmp_path / "plane", full=False) as running:
        yield running


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="eu-west-1")


def kubernetes_steps(cluster: ControlPlane, aws: Callable[[str], Any], tmp_path: Path) -> dict[str, Any]:
    kube = connect_kubeconfig(cluster.kubeconfig)
    run = create_run("local", "r-teardown-crds", base=tmp_path)
    teardown = Teardown(run, aws, lambda: kube, lambda root: None, TeardownTimeouts(30, 30, 30))
    steps = [s for s in plan_teardown(FACTS) if s.name in KUBERNETES_STEPS]
    return {r.name: r for r in teardown.execute(steps)}


def test_kinds_whose_crds_were_never_installed_have_nothing_to_remove(
    cluster: ControlPlane, aws: Callable[[str], Any], tmp_path: Path
) -> None:
    results = kubernetes_steps(cluster, aws, tmp_path)
    assert all(r.status is Status.PASS for r in results.values()), [(r.name, r.why) for r in results.values()]


def test_an_installed_crds_objects_are_removed(
    cluster: ControlPlane, aws: Callable[[str], Any], tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(reference_dir() / "crds" / "argoproj.io_application.yaml"))
    cluster.crd_established("applications.argoproj.io")
    cluster.kubectl("create", "namespace", "argocd")
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "bootstrap", "namespace": "argocd"},
           "spec": {"project": "platform", "destination": {"server": "https://kubernetes.default.svc"},
                    "source": {"repoURL": "https://example.com/x.git", "path": "gitops"}}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(app))
    results = kubernetes_steps(cluster, aws, tmp_path)
    assert results["remove-gitops"].status is Status.PASS, results["remove-gitops"].why
    assert results["remove-gitops"].evidence["deleted"] == ["application/bootstrap"]


def test_an_api_that_cannot_be_reached_still_fails(
    cluster: ControlPlane, aws: Callable[[str], Any], tmp_path: Path
) -> None:
    cluster.supervisor.stop_all()
    results = kubernetes_steps(cluster, aws, tmp_path)
    assert results["remove-gitops"].status is Status.FAIL and "cannot reach" in results["remove-gitops"].why
