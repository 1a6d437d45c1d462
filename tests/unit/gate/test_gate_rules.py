"""Every rule: the platform fixture passes it, and one broken contract makes it fail at the right place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.gate.api import Report, check, select_rules

KARPENTER_CLASS = "gitops/ops/karpenter/ec2nodeclass.yaml"
NODEPOOL = "gitops/ops/karpenter/nodepool.yaml"
OPS_APPSET = "gitops/bootstrap/ops.yaml"
GAME_APPSET = "gitops/bootstrap/game.yaml"
DEPLOYMENT = "gitops/apps/game/deployment.yaml"
INGRESS = "gitops/apps/game/ingress.yaml"
SERVICE = "gitops/apps/game/service.yaml"
PLATFORM_TF = "infra/platform/main.tf"
ADDONS_TF = "infra/addons/main.tf"
KARPENTER_TF = "infra/modules/karpenter/main.tf"
PROJECT = "gitops/bootstrap/project.yaml"
KARPENTER_POLICY = "infra/modules/karpenter/controller-policy.json"
LB_POLICY = "infra/platform/lb-controller-policy.json"


Edit = tuple[str, str, str]  # (file relative to the tree, text that must be there, its replacement)


@dataclass(frozen=True)
class Broken:
    rule_id: str
    why: str
    edits: tuple[Edit, ...]
    file: str  # where the finding must point


BROKEN = [
    Broken("EKS001", "unknown NodePool field", ((NODEPOOL, "  limits:\n", "  limit:\n"),), NODEPOOL),
    Broken("EKS001", "unknown kind", ((DEPLOYMENT, "kind: Deployment", "kind: Deploymnt"),), DEPLOYMENT),
    Broken("EKS001", "removed Karpenter API", ((NODEPOOL, "karpenter.sh/v1", "karpenter.sh/v1beta1"),), NODEPOOL),
    Broken(
        "EKS001",
        "Kubernetes API removed before the pinned 1.35",
        ((SERVICE, "apiVersion: v1\nkind: Service", "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice"),),
        SERVICE,
    ),
    Broken(
        "EKS002",
        "subnet tag key misspelt in Terraform",
        (
            (
                PLATFORM_TF,
                '"karpenter.sh/discovery"          = var.cluster_name',
                '"karpenter.sh/discover"           = var.cluster_name',
            ),
        ),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS003",
        "security group tag key misspelt",
        (
            (
                PLATFORM_TF,
                '"karpenter.sh/discovery" = var.cluster_name\n  }\n}\n\nresource "aws_eks_cluster"',
                '"karpenter.sh/discover" = var.cluster_name\n  }\n}\n\nresource "aws_eks_cluster"',
            ),
        ),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS004",
        "discovery tag in provider default_tags tags every security group",
        (
            (
                PLATFORM_TF,
                'tags     = { project = "demo" }',
                'tags     = { project = "demo", "karpenter.sh/discovery" = "demo" }',
            ),
        ),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS005",
        "ApplicationSet patches a role Terraform does not create",
        (
            (
                OPS_APPSET,
                "'{{ index .metadata.annotations \"eks-platform/karpenter-node-role\" }}'",
                "KarpenterNodeRole-demo",
            ),
        ),
        OPS_APPSET,
    ),
    Broken(
        "EKS006",
        "chart clusterName is a stale literal",
        ((ADDONS_TF, "clusterName       = local.platform.cluster_name", 'clusterName       = "old-demo"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS007",
        "interruption queue name is not Terraform's queue",
        ((ADDONS_TF, "interruptionQueue = local.platform.karpenter_queue_name", 'interruptionQueue = "demo-q"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS007",
        "interruption queue never passed to the chart",
        ((ADDONS_TF, "      interruptionQueue = local.platform.karpenter_queue_name\n", ""),),
        ADDONS_TF,
    ),
    Broken("EKS008", "nodeSelector no node carries", ((DEPLOYMENT, "pool: apps", "pool: batch"),), DEPLOYMENT),
    Broken(
        "EKS008",
        "NodePool taint not tolerated",
        ((DEPLOYMENT, "Equal\n          value: apps", "Equal\n          value: x"),),
        DEPLOYMENT,
    ),
    Broken(
        "EKS009",
        "nodeClassRef names a missing class",
        ((NODEPOOL, "        name: apps", "        name: default"),),
        NODEPOOL,
    ),
    Broken(
        "EKS010",
        "Ingress names a Service port that does not exist",
        ((INGRESS, "                  name: http", "                  name: web"),),
        INGRESS,
    ),
    Broken(
        "EKS010",
        "Service targetPort is no container port",
        ((SERVICE, "targetPort: http", "targetPort: 8080"),),
        SERVICE,
    ),
    Broken(
        "EKS010",
        "target-type instance with a ClusterIP Service",
        ((INGRESS, "    alb.ingress.kubernetes.io/target-type: ip\n", ""),),
        INGRESS,
    ),
    Broken(
        "EKS011",
        "no subnet tagged for internet-facing load balancers",
        ((PLATFORM_TF, '    "kubernetes.io/role/elb" = "1"\n', ""),),
        INGRESS,
    ),
    Broken(
        "EKS012",
        "IngressClass nobody provides",
        ((INGRESS, "ingressClassName: alb", "ingressClassName: nginx"),),
        INGRESS,
    ),
    Broken(
        "EKS013",
        "ApplicationSet source path missing",
        ((GAME_APPSET, "path: gitops/apps/game", "path: gitops/game"),),
        GAME_APPSET,
    ),
    Broken(
        "EKS013",
        "a second repo URL",
        (
            (
                GAME_APPSET,
                "'{{ index .metadata.annotations \"eks-platform/gitops-repo-url\" }}'",
                "https://example.com/fork.git",
            ),
        ),
        GAME_APPSET,
    ),
    Broken(
        "EKS014",
        "Karpenter resources synced without skipping the dry run",
        ((OPS_APPSET, "SkipDryRunOnMissingResource=true", "Validate=true"),),
        OPS_APPSET,
    ),
    Broken(
        "EKS015",
        "Karpenter too old for Kubernetes 1.35",
        (("versions.yaml", 'karpenter: "1.14.1"', 'karpenter: "1.5.0"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS015",
        "chart version newer than any known release",
        (("versions.yaml", 'argo_cd_chart: "10.1.1"', 'argo_cd_chart: "101.1.0"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS049",
        "two minors in one upgrade",
        (("versions.yaml", 'upgrade_from_kubernetes: "1.34"', 'upgrade_from_kubernetes: "1.33"'),),
        "versions.yaml",
    ),
    Broken(
        "EKS049",
        "Karpenter too old for the minor the upgrade starts from",
        (("versions.yaml", 'karpenter: "1.14.1"', 'karpenter: "1.5.0"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS049",
        "the old side's kube-proxy of another minor",
        (
            (
                "versions.yaml",
                'upgrade_from_eks_addon_kube_proxy: "v1.34.6-eksbuild.2"',
                'upgrade_from_eks_addon_kube_proxy: "v1.35.3-eksbuild.2"',
            ),
        ),
        "versions.yaml",
    ),
    Broken(
        "EKS016",
        "the toolchain's control plane of another minor than the cluster's",
        (("versions.yaml", 'kubernetes_release: "1.35.4"', 'kubernetes_release: "1.36.5"'),),
        "versions.yaml",
    ),
    Broken(
        "EKS016",
        "the upgrade's old control plane of another minor than the upgrade starts from",
        (("versions.yaml", 'upgrade_from_kubernetes_release: "1.34.7"', 'upgrade_from_kubernetes_release: "1.35.4"'),),
        "versions.yaml",
    ),
    Broken(
        "EKS016",
        "provider constraint excludes the pinned version",
        ((ADDONS_TF, 'version = "~> 3.1"', 'version = "~> 2.17"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS016",
        "chart version literal differs from versions.yaml",
        ((ADDONS_TF, "version    = local.versions.argo_cd_chart", 'version    = "9.0.0"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS016",
        "required_version excludes the pinned Terraform",
        ((PLATFORM_TF, 'required_version = ">= 1.6"', 'required_version = "~> 1.5.0"'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS016", "image differs from the pin", ((DEPLOYMENT, "example/game:1.0.0", "example/game:latest"),), DEPLOYMENT
    ),
    Broken(
        "EKS046",
        "the toolchain builds another Argo CD than the chart's image",
        (("versions.yaml", 'argo_cd: "3.4.4"', 'argo_cd: "3.6.2"'),),
        ADDONS_TF,
    ),
    Broken(
        "EKS046",
        "a component's own image tag differs from the proven version",
        ((ADDONS_TF, "    dex:\n", "    controller:\n      image:\n        tag: v3.3.0\n    dex:\n"),),
        ADDONS_TF,
    ),
    Broken(
        "EKS017",
        "deprecated ingress class annotation",
        ((INGRESS, "  annotations:\n", "  annotations:\n    kubernetes.io/ingress.class: alb\n"),),
        INGRESS,
    ),
    Broken(
        "EKS018",
        "Helm value key from an old chart",
        ((ADDONS_TF, "    settings = {\n", '    settings = {\n      aws = { clusterName = "demo" }\n'),),
        ADDONS_TF,
    ),
    Broken("EKS018", "misspelt key in heredoc values", ((ADDONS_TF, "    dex:\n", "    dexx:\n"),), ADDONS_TF),
    Broken(
        "EKS019",
        "container without requests",
        (
            (
                DEPLOYMENT,
                "          resources:\n            requests:\n              cpu: 250m\n              memory: 128Mi\n",
                "",
            ),
        ),
        DEPLOYMENT,
    ),
    Broken(
        "EKS020",
        "Argo CD internet-facing over HTTP",
        (
            (
                ADDONS_TF,
                "    dex:\n",
                "    server:\n      ingress:\n        enabled: true\n        annotations:\n"
                "          alb.ingress.kubernetes.io/scheme: internet-facing\n    dex:\n",
            ),
        ),
        ADDONS_TF,
    ),
    Broken(
        "EKS021",
        "IMDSv1 allowed",
        ((PLATFORM_TF, 'http_tokens                 = "required"', 'http_tokens                 = "optional"'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS021",
        "hop limit 2 on an EC2NodeClass",
        ((KARPENTER_CLASS, "httpPutResponseHopLimit: 1", "httpPutResponseHopLimit: 2"),),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS022",
        "API endpoint open to the internet",
        ((PLATFORM_TF, '["203.0.113.7/32"]', '["0.0.0.0/0"]'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS023",
        "LB controller policy lacks an action",
        ((LB_POLICY, '        "wafv2:GetWebACL",\n', ""),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS023",
        "wildcard action",
        ((KARPENTER_POLICY, '"ec2:CreateFleet",', '"ec2:*", "ec2:CreateFleet",'),),
        KARPENTER_TF,
    ),
    Broken(
        "EKS024",
        "NodePool allows on-demand",
        ((NODEPOOL, 'values: ["spot"]', 'values: ["spot", "on-demand"]'),),
        NODEPOOL,
    ),
    Broken(
        "EKS025",
        "controllers tolerate everything and select nothing",
        (
            (ADDONS_TF, 'nodeSelector = { "workload-type" = "ops" }', "nodeSelector = {}"),
            (
                ADDONS_TF,
                'tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists", effect = "NoSchedule" }]',
                'tolerations  = [{ operator = "Exists" }]',
            ),
        ),
        ADDONS_TF,
    ),
    Broken(
        "EKS026", "suppression without a reason", ((INGRESS, "spec:\n", "spec:\n  # harness:ignore EKS012\n"),), INGRESS
    ),
    Broken(
        "EKS027",
        "template reads an annotation the cluster secret does not set",
        (
            (
                OPS_APPSET,
                '"eks-platform/cluster-name" }}\'\n                - op: replace\n                  path: '
                "/spec/securityGroupSelectorTerms",
                '"eks-platform/clustername" }}\'\n                - op: replace\n                  path: '
                "/spec/securityGroupSelectorTerms",
            ),
        ),
        OPS_APPSET,
    ),
    Broken(
        "EKS027",
        "cluster generator matches no cluster secret",
        ((GAME_APPSET, 'eks-platform/managed: "true"', 'eks-platform/managed: "yes"'),),
        GAME_APPSET,
    ),
    Broken(
        "EKS028", "image on the latest tag", ((DEPLOYMENT, "example/game:1.0.0", "example/game:latest"),), DEPLOYMENT
    ),
    Broken("EKS028", "image without a tag", ((DEPLOYMENT, "example/game:1.0.0", "example/game"),), DEPLOYMENT),
    Broken(
        "EKS029",
        "project refuses a namespaced kind the game delivers",
        ((PROJECT, "    - group: apps\n      kind: Deployment\n", ""),),
        PROJECT,
    ),
    Broken(
        "EKS029",
        "project refuses a cluster-scoped kind",
        ((PROJECT, "kind: EC2NodeClass", "kind: EC2NodeClas"),),
        PROJECT,
    ),
    Broken(
        "EKS029",
        "destination namespace not in the project",
        ((PROJECT, "namespace: game\n", "namespace: games\n"),),
        GAME_APPSET,
    ),
    Broken(
        "EKS029",
        "an Application without a destination namespace",
        ((OPS_APPSET, "        namespace: argocd\n", ""),),
        OPS_APPSET,
    ),
    Broken(
        "EKS029",
        "repository not admitted",
        ((PROJECT, "https://example.com/demo.git", "https://example.com/x.git"),),
        GAME_APPSET,
    ),
    Broken(
        "EKS029",
        "project without the resources finalizer",
        ((PROJECT, "  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n", ""),),
        PROJECT,
    ),
    Broken(
        "EKS029",
        "Application names a project nobody defines",
        ((GAME_APPSET, "project: platform", "project: platfrom"),),
        GAME_APPSET,
    ),
    Broken(
        "EKS030",
        "Application in the default project",
        ((GAME_APPSET, "project: platform", "project: default"),),
        GAME_APPSET,
    ),
    Broken("EKS030", "Application without a project", ((GAME_APPSET, "      project: platform\n", ""),), GAME_APPSET),
    Broken(
        "EKS031",
        "fixed name for every cluster",
        ((OPS_APPSET, "'ops-karpenter-{{ .nameNormalized }}'", "ops-karpenter"),),
        OPS_APPSET,
    ),
    Broken(
        "EKS031",
        "name from an annotation, not the cluster",
        (
            (
                GAME_APPSET,
                "'game-{{ .nameNormalized }}'",
                "'game-{{ index .metadata.annotations \"eks-platform/gitops-revision\" }}'",
            ),
        ),
        GAME_APPSET,
    ),
    Broken(
        "EKS032",
        "CRD chart of another version",
        (
            (
                ADDONS_TF,
                '  chart      = "karpenter-crd"\n  version    = local.versions.karpenter',
                '  chart      = "karpenter-crd"\n  version    = "1.13.0"',
            ),
        ),
        ADDONS_TF,
    ),
    Broken("EKS032", "controller chart installs the CRDs too", ((ADDONS_TF, "  skip_crds  = true\n", ""),), ADDONS_TF),
    Broken(
        "EKS033",
        "add-on version differs from its pin",
        ((PLATFORM_TF, "addon_version = local.versions.eks_addon_vpc_cni", 'addon_version = "v1.21.0-eksbuild.1"'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS033",
        "add-on without a version",
        ((PLATFORM_TF, "  addon_version = local.versions.eks_addon_vpc_cni\n", ""),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS033",
        "kube-proxy of another Kubernetes minor",
        (
            (
                "versions.yaml",
                'eks_addon_kube_proxy: "v1.35.3-eksbuild.29"',
                'eks_addon_kube_proxy: "v1.34.1-eksbuild.2"',
            ),
        ),
        "versions.yaml",
    ),
    Broken(
        "EKS034",
        "Pod Identity role for any namespace",
        ((PLATFORM_TF, '          "aws:RequestTag/kubernetes-namespace"       = "kube-system"\n', ""),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS034",
        "Pod Identity role for any cluster",
        ((PLATFORM_TF, '          "aws:RequestTag/eks-cluster-arn"            = aws_eks_cluster.this.arn\n', ""),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS034",
        "Pod Identity role for any service account (wildcard)",
        (
            (
                PLATFORM_TF,
                '"aws:RequestTag/kubernetes-service-account" = "aws-node"',
                '"aws:RequestTag/kubernetes-service-account" = "*"',
            ),
        ),
        PLATFORM_TF,
    ),
    Broken(
        "EKS041",
        "LB controller policy names a wrong ARN form",
        ((LB_POLICY, '"arn:aws:ec2:*:*:security-group/*"', '"arn:aws:ec2:*:*:securitygroup/*"'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS041",
        "PassRole on every role instead of the node role",
        ((KARPENTER_POLICY, '"Resource": "arn:aws:iam::111122223333:role/demo-karpenter-node"', '"Resource": "*"'),),
        KARPENTER_TF,
    ),
    Broken(
        "EKS041",
        "regional read actions lose their region condition",
        ((KARPENTER_POLICY, '"aws:RequestedRegion": "eu-west-1"', '"aws:RequestedRegionX": "eu-west-1"'),),
        KARPENTER_TF,
    ),
    Broken(
        "EKS041",
        "condition value differs from upstream",
        ((LB_POLICY, '"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"', '"iam:AWSServiceName": "*"'),),
        PLATFORM_TF,
    ),
    Broken(
        "EKS042",
        "seccomp annotation instead of securityContext.seccompProfile",
        (
            (
                DEPLOYMENT,
                "  template:\n    metadata:\n",
                "  template:\n    metadata:\n      annotations:\n        seccomp.security.alpha.kubernetes.io/pod: "
                "runtime/default\n",
            ),
        ),
        DEPLOYMENT,
    ),
    Broken(
        "EKS042",
        "beta node label in a nodeSelector",
        ((DEPLOYMENT, "        pool: apps\n", "        pool: apps\n        beta.kubernetes.io/arch: amd64\n"),),
        DEPLOYMENT,
    ),
    Broken(
        "EKS042",
        "kustomization uses commonLabels",
        (("gitops/ops/karpenter/kustomization.yaml", "resources:\n", "commonLabels:\n  team: ops\nresources:\n"),),
        "gitops/ops/karpenter/kustomization.yaml",
    ),
    Broken("EKS042", "Service loadBalancerIP", ((SERVICE, "spec:\n", "spec:\n  loadBalancerIP: 10.0.0.1\n"),), SERVICE),
    Broken(
        "EKS043",
        "cluster name written in the base EC2NodeClass",
        (
            (
                KARPENTER_CLASS,
                "        karpenter.sh/discovery: placeholder\n  securityGroupSelectorTerms",
                "        karpenter.sh/discovery: demo\n  securityGroupSelectorTerms",
            ),
        ),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS043",
        "node role name written in the base EC2NodeClass",
        ((KARPENTER_CLASS, "role: placeholder", "role: demo-karpenter-node"),),
        KARPENTER_CLASS,
    ),
    Broken(
        "EKS043",
        "repository URL written in an ApplicationSet",
        (
            (
                GAME_APPSET,
                "'{{ index .metadata.annotations \"eks-platform/gitops-repo-url\" }}'",
                "https://example.com/demo.git",
            ),
        ),
        GAME_APPSET,
    ),
    Broken(
        "EKS043",
        "account id in an ARN",
        (
            (
                INGRESS,
                "  annotations:\n",
                "  annotations:\n    alb.ingress.kubernetes.io/certificate-arn: "
                "arn:aws:acm:eu-west-1:111122223333:certificate/abc\n",
            ),
        ),
        INGRESS,
    ),
    Broken(
        "EKS040",
        "replace of a path that does not exist",
        ((OPS_APPSET, "path: /spec/role\n", "path: /spec/rolee\n"),),
        OPS_APPSET,
    ),
    Broken(
        "EKS040",
        "remove of a path that does not exist",
        (
            (
                OPS_APPSET,
                "- op: replace\n                  path: /spec/role\n",
                "- op: remove\n                  path: /spec/amiSelector\n                - op: replace\n"
                "                  path: /spec/role\n",
            ),
        ),
        OPS_APPSET,
    ),
]


# Rules whose failing cases need more than an edit of the fixture: a stand-in helm for --render-charts; Pod
# Identity roles in modules of their own, as this repository has them (the fixture keeps its roles in the root).
FAILING_CASES_ELSEWHERE = {
    "EKS044": "test_gate_rendering.py",
    "EKS045": "test_gate_rendering.py",
    "EKS047": "test_gate_service_accounts.py",
    "EKS048": "test_gate_service_accounts.py",
}


def test_every_rule_has_a_failing_case() -> None:
    assert {b.rule_id for b in BROKEN} | set(FAILING_CASES_ELSEWHERE) == set(r.id for r in select_rules())


def test_the_platform_fixture_passes_every_rule(platform: Callable[..., Report]) -> None:
    report = platform()

    assert [(f.rule_id, f.file, f.line, f.message) for f in report.findings] == []
    assert len(report.rules) == len(select_rules())


@pytest.mark.parametrize("broken", BROKEN, ids=[f"{b.rule_id}-{b.why}" for b in BROKEN])
def test_a_broken_contract_is_reported_where_it_is(broken: Broken, platform: Callable[..., Report]) -> None:
    report = platform(*broken.edits, select=(broken.rule_id,))

    found = [f for f in report.findings if f.rule_id == broken.rule_id]
    assert found, f"{broken.rule_id} silent for: {broken.why}"
    assert any(f.file.endswith(broken.file) for f in found), [(f.file, f.line) for f in found]
    assert all(f.line >= 1 and f.fix for f in found)


PLAIN = Path(__file__).parent / "fixtures" / "plain" / "gitops"


def test_a_plain_repo_with_literal_values_is_checked_as_written(tmp_path: Path, reference: Path) -> None:
    infra = Path(__file__).parent / "fixtures" / "platform" / "infra"
    wrong_role = tmp_path / "gitops"
    wrong_role.mkdir()
    text = (PLAIN / "karpenter.yaml").read_text(encoding="utf-8")
    (wrong_role / "karpenter.yaml").write_text(text.replace("role: demo-karpenter-node", "role: demo-node"))

    assert check([infra], [PLAIN], reference).findings == []
    assert [(f.rule_id, f.line) for f in check([infra], [wrong_role], reference).findings] == [("EKS005", 9)]


def test_an_argo_cd_application_of_the_lb_chart_provides_the_alb_class(
    platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree((ADDONS_TF, 'chart      = "aws-load-balancer-controller"', 'chart      = "other"'))
    app = root / "gitops" / "bootstrap" / "lb.yaml"
    app.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: lb\n  namespace: argocd\n"
        "spec:\n  project: default\n  source:\n    repoURL: https://aws.github.io/eks-charts\n"
        "    chart: aws-load-balancer-controller\n    targetRevision: 3.5.0\n"
        "  destination:\n    server: https://kubernetes.default.svc\n",
        encoding="utf-8",
    )

    with_app = check([root / "infra"], [root / "gitops"], reference, select={"EKS012"})
    app.unlink()
    without = check([root / "infra"], [root / "gitops"], reference, select={"EKS012"})

    assert with_app.findings == []
    assert [f.rule_id for f in without.findings] == ["EKS012"]


def test_subnets_counted_only_at_apply_time_are_not_judged(platform: Callable[..., Report]) -> None:
    public = (
        '  availability_zone = local.azs[count.index]\n  cidr_block        = cidrsubnet("10.0.0.0/16", 8, count.index)'
    )
    unknown_count = (
        PLATFORM_TF,
        f"count             = length(local.azs)\n{public}",
        f"count             = length(var.azs)\n{public}",
    )

    assert platform(unknown_count, select=("EKS011",)).findings == []


def test_helm_values_of_an_argo_cd_chart_application_are_checked(
    platform_tree: Callable[..., Path], reference: Path
) -> None:
    root = platform_tree()
    app = root / "gitops" / "bootstrap" / "karpenter.yaml"

    def check_values(values: str) -> list[tuple[str, int]]:
        app.write_text(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: k\n  namespace: argocd\n"
            "spec:\n  project: default\n  source:\n    repoURL: public.ecr.aws/karpenter\n    chart: karpenter\n"
            f"    targetRevision: 1.14.1\n    helm:\n      valuesObject:\n{values}"
            "  destination:\n    server: https://kubernetes.default.svc\n",
            encoding="utf-8",
        )
        report = check([root / "infra"], [root / "gitops"], reference, select={"EKS018"})
        return [(f.rule_id, f.line) for f in report.findings]

    assert check_values("        settings:\n          clusterName: demo\n") == []
    assert check_values("        settings:\n          clustername: demo\n") == [("EKS018", 15)]


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "image, moving",
    [
        ("public.ecr.aws/example/game:latest", True),
        ("public.ecr.aws/example/game", True),
        ("nginx", True),
        ("registry:5000/team/app", True),
        ("localhost:5000/app", True),
        ("localhost:5000/app:latest", True),
        ("nginx@sha256:0123", True),  # not a digest: too short
        ("localhost:5000/app:1.0", False),
        ("public.ecr.aws/example/game:1.27.3", False),
        (f"public.ecr.aws/example/game@{DIGEST}", False),
        (f"public.ecr.aws/example/game:1.27.3@{DIGEST}", False),
        (f"public.ecr.aws/example/game:latest@{DIGEST}", False),  # the digest decides, not the tag
        (f"localhost:5000/app@{DIGEST}", False),
    ],
)
def test_only_images_on_a_moving_tag_are_reported(image: str, moving: bool, platform: Callable[..., Report]) -> None:
    report = platform((DEPLOYMENT, "public.ecr.aws/example/game:1.0.0", image), select=("EKS028",))

    found = [(f.rule_id, f.severity.value, f.file.endswith(DEPLOYMENT), f.line) for f in report.findings]
    assert found == ([("EKS028", "warning", True, 25)] if moving else [])
    if moving:
        (finding,) = report.findings
        assert f"image {image} is a moving tag" in finding.message
        assert "harness pin-image" in finding.fix and "@sha256:<digest>" in finding.fix


def test_an_init_container_on_a_moving_tag_is_reported(platform: Callable[..., Report]) -> None:
    init = (
        DEPLOYMENT,
        "      containers:\n",
        "      initContainers:\n        - name: wait\n          image: busybox\n      containers:\n",
    )

    report = platform(init, select=("EKS028",))

    assert [(f.rule_id, f.line) for f in report.findings] == [("EKS028", 25)]
    assert "image busybox is a moving tag" in report.findings[0].message
    assert "write busybox@sha256:<digest>" in report.findings[0].fix


def test_a_moving_tag_with_a_reason_can_be_suppressed(platform: Callable[..., Report]) -> None:
    latest = (DEPLOYMENT, "example/game:1.0.0", "example/game:latest")
    pin = ("versions.yaml", "example/game:1.0.0", "example/game:latest")  # so EKS016 agrees
    reason = (
        DEPLOYMENT,
        "        - name: game\n",
        "        - name: game\n          # harness:ignore EKS028 rebuilt nightly on purpose\n",
    )

    assert [f.rule_id for f in platform(latest, pin).findings] == ["EKS028"]
    report = platform(latest, pin, reason)

    assert report.findings == []
    assert [(f.rule_id, s.reason) for f, s in report.suppressed] == [("EKS028", "rebuilt nightly on purpose")]


def test_a_chart_whose_kube_version_excludes_the_old_minor_stops_the_upgrade(
    tmp_path: Path, reference: Path, platform_tree: Callable[..., Path]
) -> None:
    """The Argo CD chart's own kubeVersion (Chart.yaml, in a copy of the reference data) raised past the minor the
    upgrade starts from: EKS049 names the chart, its range and the minor, at the chart's pin."""
    import shutil

    copy = tmp_path / "reference"
    shutil.copytree(reference, copy)
    chart = copy / "charts" / "argo-cd-10.1.1" / "Chart.yaml"
    chart.write_text(chart.read_text(encoding="utf-8").replace(">=1.25.0-0", ">=1.35.0-0"), encoding="utf-8")
    root = platform_tree()
    report = check([root / "infra"], [root / "gitops"], copy, select=("EKS049",))
    (found,) = report.findings
    assert found.file.endswith("versions.yaml") and "'>=1.35.0-0': Kubernetes 1.34" in found.message


def test_an_upgrade_that_leaves_kube_proxy_beyond_its_skew_is_named(platform: Callable[..., Report]) -> None:
    report = platform(
        ("versions.yaml", 'upgrade_from_kubernetes: "1.34"', 'upgrade_from_kubernetes: "1.31"'),
        ("versions.yaml", '"v1.34.6-eksbuild.2"', '"v1.31.14-eksbuild.9"'),
        select=("EKS049",),
    )
    messages = [f.message for f in report.findings]
    assert any("not one minor step" in m for m in messages), messages
    assert any("more than 3 minors behind Kubernetes 1.35" in m for m in messages), messages
