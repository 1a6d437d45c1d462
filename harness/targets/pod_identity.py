"""EKS Pod Identity on the local target: what the eks-pod-identity-agent DaemonSet and EKS's
AssumeRoleForPodIdentity do for the pods of the ops nodes (harness.targets.kubelet).

A controller's AWS SDK reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and sends the token in
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (its pod's ServiceAccount's, audience ``pods.eks.amazonaws.com``), as in a
pod on EKS, where the Pod Identity webhook put both (here the kubelet does, kubelet.with_pod_identity). The agent
(``python -m harness.targets.pod_identity``, one process per run) has the API server review the token (TokenReview),
looks up the association for the ServiceAccount, assumes that role through the emulator's STS with the session tags
EKS sets, and answers with the role's credentials. No association: no credentials, and the
refusal is recorded (``refusals.jsonl``) so the run names it.

The emulator has no association API (infra/targets.yaml `eks_pod_identity_associations`), so the associations come
from infra/platform's outputs: each controller's ServiceAccount and the role Terraform associates with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.results import Result
from harness.targets.controlplane import AUDIENCE

PROCESS = "eks-pod-identity-agent"  # its name among the run's processes
CREDENTIALS_CHECK = "the controllers get AWS credentials from their Pod Identity associations"
CREDENTIALS_PATH = "/v1/credentials"
REFUSALS = "refusals.jsonl"
# infra/platform's outputs that pair a ServiceAccount ({namespace, name}) with the role associated with it.
ASSOCIATION_OUTPUTS = (
    ("karpenter_service_account", "karpenter_controller_role_arn"),
    ("lb_controller_service_account", "lb_controller_role_arn"),
)


def associations(outputs: Mapping[str, Any]) -> dict[str, str]:
    """ServiceAccount ("namespace/name") -> role ARN, as infra/platform associates them."""
    found = {}
    for account, role in ASSOCIATION_OUTPUTS:
        if account in outputs and role in outputs:
            found[f"{outputs[account]['namespace']}/{outputs[account]['name']}"] = str(outputs[role])
    return found


def session_tags(cluster_arn: str, cluster_name: str, namespace: str, account: str) -> list[dict[str, str]]:
    """The session tags EKS Pod Identity sets that a host process has (no pod name or uid: there is no pod)."""
    tags = {
        "eks-cluster-arn": cluster_arn,
        "eks-cluster-name": cluster_name,
        "kubernetes-namespace": namespace,
        "kubernetes-service-account": account,
    }
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def service_account(review: Mapping[str, Any]) -> str | None:
    """ "namespace/name" of an authenticated ServiceAccount token's TokenReview, else None."""
    status = review.get("status") or {}
    user = str((status.get("user") or {}).get("username", ""))
    prefix = "system:serviceaccount:"
    if not status.get("authenticated") or not user.startswith(prefix):
        return None
    namespace, _, name = user[len(prefix) :].partition(":")
    return f"{namespace}/{name}"


def read_refusals(folder: Path) -> list[dict[str, str]]:
    """What the agent refused so far: {"service_account", "why"} per request."""
    try:
        lines = (folder / REFUSALS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def judge_credentials(refused: Sequence[Mapping[str, str]], callers: Mapping[str, str]) -> Result:
    """PASS when the agent refused no controller its credentials; else FAIL naming the first (``callers``:
    ServiceAccount user -> the run's process that calls as it)."""
    if refused:
        first = refused[0]
        namespace, _, name = first.get("service_account", "").partition("/")
        caller = callers.get(f"system:serviceaccount:{namespace}:{name}") or first.get("service_account") or "a caller"
        why = f"{caller} got no AWS credentials: {first['why']}"
        return Result.failed(CREDENTIALS_CHECK, why, refusals=len(refused))
    return Result.passed(CREDENTIALS_CHECK, "every AWS call of the controllers ran on its Pod Identity role")


class Agent:
    """The agent's work for one request: review the token, find the association, assume its role."""

    def __init__(self, args: argparse.Namespace) -> None:
        import boto3  # the agent's own process: AWS calls go to the emulator with the harness's credentials
        import requests

        self.args = args
        self.requests = requests
        self.associations: dict[str, str] = json.loads(Path(args.associations).read_text(encoding="utf-8"))
        self.sts = boto3.client("sts", endpoint_url=args.endpoint, region_name=args.region)

    def review(self, token: str) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
        body["spec"] = {"token": token, "audiences": [AUDIENCE]}  # type: ignore[assignment]
        answer = self.requests.post(
            f"{self.args.server}/apis/authentication.k8s.io/v1/tokenreviews",
            json=body,
            cert=(self.args.cert, self.args.key),
            verify=self.args.ca,
            timeout=10,
        )
        answer.raise_for_status()
        review: dict[str, Any] = answer.json()
        return review

    def credentials(self, token: str) -> tuple[int, dict[str, Any]]:
        account = service_account(self.review(token))
        if account is None:
            return self.refuse("", "the token is not an authenticated ServiceAccount token for " + AUDIENCE)
        role = self.associations.get(account)
        if role is None:
            known = ", ".join(f"{a} -> {r}" for a, r in sorted(self.associations.items())) or "none"
            return self.refuse(account, f"no Pod Identity association for {account} (infra/platform: {known})")
        namespace, name = account.split("/", 1)
        assumed = self.sts.assume_role(
            RoleArn=role,
            RoleSessionName=f"eks-{self.args.cluster_name}-{name}"[:64],
            Tags=session_tags(self.args.cluster_arn, self.args.cluster_name, namespace, name),
        )["Credentials"]
        expiration = assumed["Expiration"]
        return 200, {
            "AccessKeyId": assumed["AccessKeyId"],
            "SecretAccessKey": assumed["SecretAccessKey"],
            "Token": assumed["SessionToken"],
            "Expiration": expiration.isoformat() if isinstance(expiration, datetime) else str(expiration),
            "AccountId": role.split(":")[4],
        }

    def refuse(self, account: str, why: str) -> tuple[int, dict[str, Any]]:
        record = {"service_account": account, "why": why}
        with (Path(self.args.folder) / REFUSALS).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        return 400, {"code": "AccessDeniedException", "message": why}


def serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.targets.pod_identity")
    for flag in ("port", "folder", "associations", "server", "ca", "cert", "key", "endpoint", "region"):
        parser.add_argument(f"--{flag}", required=True)
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--cluster-arn", required=True)
    args = parser.parse_args(argv)
    agent = Agent(args)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self.answer(200, {"status": "ok"})
            if self.path != CREDENTIALS_PATH:
                return self.answer(404, {"message": f"no {self.path}"})
            token = self.headers.get("Authorization", "")
            try:
                code, body = agent.credentials(token)
            except Exception as exc:
                code, body = 500, {"message": f"{type(exc).__name__}: {exc}"}
            return self.answer(code, body)

        def answer(self, code: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("127.0.0.1", int(args.port)), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
