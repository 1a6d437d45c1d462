"""On `local` each controller calls the API server as its pod's ServiceAccount, so the RBAC its chart creates
decides what it may do, as on EKS. A chart whose RBAC is turned off (`rbac.create = false` in the LB controller's
values, in a copy of the repository) makes a run that fails on the first refused call, naming the controller and
the call, and leaves nothing behind. Its AWS credentials come the same way, from the Pod Identity association for
that ServiceAccount (harness.targets.pod_identity): a ServiceAccount no association names gets none. And its
AWS calls meet its role's IAM policy (harness.aws.authorization): an action the policy lacks is denied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.errors import HarnessError
from harness.targets.local import unavailable
from harness.terraform.runner import find_cli

if TYPE_CHECKING:
    from tests.conftest import LocalE2E

pytestmark = [pytest.mark.integration, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]
ADDONS, LB_CONTROLLER = "infra/addons/main.tf", "infra/modules/lb-controller/main.tf"
# (the file, what it says, what the broken copy says instead, the words the run must fail with)
BROKEN = {
    "lb-controller-rbac-off": (
        ADDONS,
        "    replicaCount = 2\n    serviceAccount = {",
        "    replicaCount = 2\n    rbac = { create = false }\n    serviceAccount = {",
        "aws-load-balancer-controller (system:serviceaccount:kube-system:aws-load-balancer-controller) was refused: ",
    ),
    "karpenter-service-account-renamed": (
        ADDONS,
        "      name = local.platform.karpenter_service_account.name\n",
        '      name = "karpenter-renamed"\n',
        "karpenter got no AWS credentials: no Pod Identity association for kube-system/karpenter-renamed",
    ),
    "lb-controller-policy-without-create-target-group": (
        LB_CONTROLLER,
        '      "elasticloadbalancing:CreateLoadBalancer",\n      "elasticloadbalancing:CreateTargetGroup",\n',
        '      "elasticloadbalancing:CreateLoadBalancer",\n',
        "aws-load-balancer-controller: IAM would deny elasticloadbalancing:CreateTargetGroup on "
        "arn:aws:elasticloadbalancing:",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_controller_whose_identity_eks_would_refuse_fails_the_run_in_those_words(
    case: str, repo_copy: Path, local_e2e: LocalE2E
) -> None:
    """The chart grants the LB controller no RBAC: the API server refuses its first list. Karpenter's
    ServiceAccount renamed in its chart values only: Pod Identity has no association for it, so no credentials.
    The LB controller's IAM policy without CreateTargetGroup: IAM (the emulator's, harness.aws.authorization)
    denies the call the Ingress needs."""
    try:
        find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))
    file, declared, broken, words = BROKEN[case]
    text = (repo_copy / file).read_text(encoding="utf-8")
    assert text.count(declared) == 1, f"{file} no longer says {declared!r}: update this test"
    (repo_copy / file).write_text(text.replace(declared, broken), encoding="utf-8")
    done, run = local_e2e(repo_copy, 900)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    failed = next(line for line in output.splitlines() if line.startswith("stage ") and ": fail" in line)
    assert words in failed, output
    assert "teardown sweep: pass" in output, output
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["settings"].get("processes") in (None, [])
