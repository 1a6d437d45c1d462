"""Pure parts of the local target: platform reads made concrete, webhooks routed to a loopback URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.gate.api import build_model
from harness.gate.hcl import Unknown
from harness.project import reference_dir, repo_root
from harness.targets.local_addons import addon_addresses, chart_dir
from harness.targets.nodes import kubelet_version, node_manifests
from harness.targets.releases import platform_value, release, secret
from harness.toolchain.components import UPGRADE_FROM, control_plane_build

OUTPUTS = {
    "cluster_name": "eks-x",
    "region": "eu-west-1",
    "vpc_id": "vpc-1",
    "tags": {"run-id": "r1"},
    "ops_node_labels": {"workload-type": "ops", "karpenter.sh/controller": "true"},
    "lb_controller_service_account": {"name": "aws-load-balancer-controller", "namespace": "kube-system"},
    "karpenter_service_account": {"name": "karpenter", "namespace": "kube-system"},
    "karpenter_interruption_queue_name": "q",
    "karpenter_node_role_name": "eks-x-karpenter-node",
}


def test_platform_reads_in_both_forms_become_the_real_outputs() -> None:
    value = {
        "a": Unknown("remote_state.outputs.cluster_name"),
        "b": [Unknown('local.platform.ops_node_labels["workload-type"]')],
        "c": "literal",
    }
    assert platform_value(value, OUTPUTS, "main.tf:1") == {"a": "eks-x", "b": ["ops"], "c": "literal"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("var.gitops_repo_url", r"main.tf:7: var.gitops_repo_url is neither a literal, a given variable nor a"),
        ("local.platform.no_such_output", r"main.tf:7: the platform has no output local.platform.no_such_output"),
    ],
)
def test_a_value_that_cannot_be_made_concrete_names_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        platform_value({"x": Unknown(text)}, OUTPUTS, "main.tf:7")


def test_the_lb_controller_release_is_read_from_infra_addons() -> None:
    model = build_model([repo_root() / "infra" / "addons"], [], reference_dir())
    chosen = release(model, "helm_release.aws_load_balancer_controller", OUTPUTS)
    assert (chosen.chart, chosen.namespace) == ("aws-load-balancer-controller", "kube-system")
    assert chosen.values["clusterName"] == "eks-x"
    assert chosen.values["vpcId"] == "vpc-1"
    assert chosen.values["nodeSelector"] == {"workload-type": "ops"}
    with pytest.raises(InputError, match=r"infra/addons: no helm_release\.nope"):
        release(model, "helm_release.nope", OUTPUTS)


def test_node_manifests_follow_the_node_group() -> None:
    """Labels and taints from the node group, capacity from the instance type, zones spread."""
    group = {
        "nodegroupName": "ops",
        "scalingConfig": {"desiredSize": 3},
        "labels": {"workload-type": "ops"},
        "taints": [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}],
    }
    m7i_large = {
        "InstanceType": "m7i.large",
        "VCpuInfo": {"DefaultVCpus": 2},
        "MemoryInfo": {"SizeInMiB": 8192},
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
        "NetworkInfo": {"MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10},
    }
    nodes = node_manifests(group, m7i_large, ["us-east-1a", "us-east-1b"], "v1.36.5")
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == [
        "us-east-1a",
        "us-east-1b",
        "us-east-1a",
    ]
    assert nodes[0]["spec"]["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}]
    assert nodes[0]["status"]["capacity"]["pods"] == "29"  # the VPC CNI's limit for m7i.large
    assert nodes[0]["metadata"]["labels"]["workload-type"] == "ops"
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.36.5"}


def test_the_ops_kubelet_is_the_toolchain_release_of_the_node_groups_minor() -> None:
    """The node group's `version` picks the release: the pinned minor's or the upgrade's previous one; a minor
    the toolchain builds no control plane of is refused in one line."""
    pins = {
        "kubernetes": "1.36",
        "kubernetes_release": "1.36.5",
        "upgrade_from_kubernetes": "1.35",
        "upgrade_from_kubernetes_release": "1.35.5",
    }
    assert kubelet_version({"version": "1.36"}, pins) == "v1.36.5"
    assert kubelet_version({"version": "1.35"}, pins) == "v1.35.5"
    assert control_plane_build("1.35", pins) == ("1.35.5", UPGRADE_FROM)
    with pytest.raises(InputError, match=r"no control plane of Kubernetes 1\.34 \(versions.yaml: 1\.36, 1\.35\)"):
        kubelet_version({"version": "1.34"}, pins)


def test_the_addons_go_in_in_an_order_that_honours_every_depends_on() -> None:
    """local_addons.addon_addresses installs in declaration order; that is only right while each depends_on names an
    earlier resource, which this holds infra/addons to."""
    import hcl2

    root = repo_root() / "infra" / "addons"
    order = addon_addresses(root)
    assert order[0] == "helm_release.aws_load_balancer_controller" and order[-1] == "helm_release.bootstrap"
    for path in sorted(root.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    address = f"{kind}.{name}"
                    if address not in order:
                        continue
                    for needed in body.get("depends_on", []):
                        needed = needed.strip("${}")
                        if needed in order:
                            assert order.index(needed) < order.index(address), f"{address} needs {needed} first"


def test_a_depends_on_against_the_declaration_order_is_caught(tmp_path: Path) -> None:
    """The failing case of the test above: a release declared before what it depends on."""
    root = repo_root() / "infra" / "addons"
    text = (root / "main.tf").read_text(encoding="utf-8")
    first, rest = text.split('resource "helm_release" "karpenter_crd"', 1)
    crd_block, after = rest.split("\n}\n", 1)
    moved = 'resource "helm_release" "karpenter_crd"' + crd_block + "\n}\n"
    # karpenter_crd moved to the end: karpenter (which depends on it) now comes first.
    (tmp_path / "main.tf").write_text(first + after + "\n" + moved, encoding="utf-8")
    for other in root.glob("*.tf"):
        if other.name != "main.tf":
            (tmp_path / other.name).write_text(other.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "charts").symlink_to(root / "charts")
    order = addon_addresses(tmp_path)
    assert order.index("helm_release.karpenter") < order.index("helm_release.karpenter_crd")


def test_chart_sources_are_the_addons_own_folder_or_the_pinned_reference_folders() -> None:
    root = repo_root() / "infra" / "addons"
    model = build_model([root], [], reference_dir())
    bootstrap = release(model, "helm_release.bootstrap", OUTPUTS, {"gitops_repo_url": "https://h/r.git"})
    assert chart_dir(bootstrap.chart, bootstrap.version, root) == root / "charts" / "bootstrap"
    argocd = release(model, "helm_release.argocd", OUTPUTS, {"gitops_repo_url": "https://h/r.git"})
    assert chart_dir(argocd.chart, argocd.version, root) == reference_dir() / "charts" / f"argo-cd-{argocd.version}"


def test_the_runs_input_values_reach_the_cluster_secret_as_apply_var_would_give_them() -> None:
    """The cluster secret's run-id and expiry annotations tag everything the controllers create; infra/addons
    defaults them to empty, so the run's values must win over the defaults (they did not, once)."""
    root = repo_root() / "infra" / "addons"
    variables = {
        "gitops_repo_url": "https://h/r.git",
        "run_id": "r20261129-0000-abcd",
        "expires_at": "2026-11-29T06:00:00Z",
    }
    given = secret(
        build_model([root], [], reference_dir(), variables=variables),
        "kubernetes_secret_v1.in_cluster",
        OUTPUTS,
        variables,
    )
    annotations = given["metadata"]["annotations"]
    assert annotations["eks-platform/run-id"] == "r20261129-0000-abcd"
    assert annotations["eks-platform/expires-at"] == "2026-11-29T06:00:00Z"
    defaults = secret(build_model([root], [], reference_dir()), "kubernetes_secret_v1.in_cluster", OUTPUTS, variables)
    assert defaults["metadata"]["annotations"]["eks-platform/run-id"] == ""
