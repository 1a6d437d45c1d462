"""The local target's Pod Identity: associations from infra/platform's outputs, the TokenReview that names the
caller, the session tags, and the judge of what the agent refused."""

from __future__ import annotations

from harness.results import Status
from harness.targets.pod_identity import associations, judge_credentials, service_account, session_tags

OUTPUTS = {
    "karpenter_service_account": {"namespace": "kube-system", "name": "karpenter"},
    "karpenter_controller_role_arn": "arn:aws:iam::123456789012:role/eks-r1-karpenter",
    "lb_controller_service_account": {"namespace": "kube-system", "name": "aws-load-balancer-controller"},
    "lb_controller_role_arn": "arn:aws:iam::123456789012:role/eks-r1-lbc",
}


def test_the_associations_are_the_platforms_service_accounts_and_roles() -> None:
    assert associations(OUTPUTS) == {
        "kube-system/karpenter": "arn:aws:iam::123456789012:role/eks-r1-karpenter",
        "kube-system/aws-load-balancer-controller": "arn:aws:iam::123456789012:role/eks-r1-lbc",
    }
    assert associations({k: v for k, v in OUTPUTS.items() if not k.startswith("lb_")}) == {
        "kube-system/karpenter": "arn:aws:iam::123456789012:role/eks-r1-karpenter"
    }


def test_only_an_authenticated_service_account_token_names_an_account() -> None:
    user = {"username": "system:serviceaccount:kube-system:karpenter"}
    assert service_account({"status": {"authenticated": True, "user": user}}) == "kube-system/karpenter"
    assert service_account({"status": {"authenticated": False, "user": user}}) is None
    assert service_account({"status": {"authenticated": True, "user": {"username": "admin"}}}) is None


def test_the_session_tags_are_the_ones_eks_sets_that_a_host_process_has() -> None:
    tags = {t["Key"]: t["Value"] for t in session_tags("arn:eks", "eks-r1", "kube-system", "karpenter")}
    assert tags == {
        "eks-cluster-arn": "arn:eks",
        "eks-cluster-name": "eks-r1",
        "kubernetes-namespace": "kube-system",
        "kubernetes-service-account": "karpenter",
    }


def test_a_refusal_names_the_process_and_the_missing_association() -> None:
    callers = {"system:serviceaccount:kube-system:renamed": "karpenter"}
    why = "no Pod Identity association for kube-system/renamed (infra/platform: kube-system/karpenter -> arn:role)"
    failed = judge_credentials([{"service_account": "kube-system/renamed", "why": why}], callers)
    assert failed.status is Status.FAIL and failed.why == f"karpenter got no AWS credentials: {why}"
    assert judge_credentials([], callers).status is Status.PASS
