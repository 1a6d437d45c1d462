"""EKS token, client wiring and the real KubernetesApiClient, offline.

The token is checked by recomputing its SigV4 signature independently from the AWS specification. The
reader runs the real kubernetes client against a local HTTP server that answers like the API server
(recorded objects, 401/403/404), so request paths, selectors, auth headers and error mapping are real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import CredentialRetrievalError
from kube_fixtures import items, load
from moto import mock_aws

from harness.errors import EnvironmentProblem, InputError
from harness.kube import client as kube
from harness.kube.api import APPLICATION, NODE_CLAIM, NODE_POOL, NotServed
from harness.kube.client import (
    ClusterAccess,
    KubernetesApiClient,
    TokenSource,
    api_client,
    describe_cluster,
    eks_token,
    write_kubeconfig,
)

REGION = "eu-west-1"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUXz\n-----END CERTIFICATE-----\n"


def session(token: str | None = None) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET, aws_session_token=token, region_name=REGION
    )


def decode(token: str) -> str:
    body = token.removeprefix(kube.TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(url: str, cluster: str) -> str:
    """SigV4 for a presigned GET, written from the AWS specification (not from botocore)."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    headers = f"host:{parts.hostname}\nx-k8s-aws-id:{cluster}\n"
    canonical = "\n".join(["GET", "/", query, headers, "host;x-k8s-aws-id", hashlib.sha256(b"").hexdigest()])
    fields = dict(params)
    date = fields["X-Amz-Date"]
    scope = f"{date[:8]}/{REGION}/sts/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{SECRET}".encode(), date[:8]), REGION), "sts"), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- token


def test_token_is_a_presigned_get_caller_identity_url_scoped_to_the_cluster() -> None:
    token = eks_token("platform-demo", session=session())
    assert token.startswith("k8s-aws-v1.")
    assert "=" not in token and "+" not in token and "/" not in token  # base64url without padding
    url = decode(token)
    parts = urlsplit(url)
    fields = dict(parse_qsl(parts.query))
    assert (parts.scheme, parts.hostname) == ("https", f"sts.{REGION}.amazonaws.com")
    assert fields["Action"] == "GetCallerIdentity" and fields["Version"] == "2011-06-15"
    assert fields["X-Amz-Expires"] == "60"
    assert fields["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert fields["X-Amz-Credential"].startswith(f"AKIDEXAMPLE/{fields['X-Amz-Date'][:8]}/{REGION}/sts/")
    assert fields["X-Amz-Signature"] == expected_signature(url, "platform-demo")


def test_token_signature_covers_the_cluster_name() -> None:
    url = decode(eks_token("platform-demo", session=session()))
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"] != expected_signature(url, "another-cluster")


def test_token_carries_the_session_token_of_temporary_credentials() -> None:
    fields = dict(parse_qsl(urlsplit(decode(eks_token("c", session=session("FwoGZXIvYXdzEXAMPLE")))).query))
    assert fields["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLE"


def test_token_without_credentials_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    anonymous = boto3.Session(region_name=REGION)
    monkeypatch.setattr(anonymous, "get_credentials", lambda: None)  # what boto3 returns when nothing is found
    with pytest.raises(EnvironmentProblem, match="no AWS credentials"):
        eks_token("c", session=anonymous)


def test_credentials_that_fail_to_load_are_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = boto3.Session(region_name=REGION)

    def refuse() -> None:
        raise CredentialRetrievalError(provider="container-role", error_msg="Received non 200 response 403")

    monkeypatch.setattr(broken, "get_credentials", refuse)
    with pytest.raises(EnvironmentProblem, match=r"cannot load AWS credentials: .*container-role"):
        eks_token("c", session=broken)


def test_token_without_region_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(EnvironmentProblem, match="no AWS region"):
        eks_token("c", session=boto3.Session(aws_access_key_id="a", aws_secret_access_key="b"))


def test_token_source_reuses_a_token_until_it_is_old_then_mints_a_new_one() -> None:
    now = [0.0]
    minted: list[str] = []

    def mint() -> str:
        minted.append(f"t{len(minted)}")
        return minted[-1]

    tokens = TokenSource(mint, max_age=600, clock=lambda: now[0])
    assert (tokens(), tokens()) == ("t0", "t0")
    now[0] = 599.0
    assert tokens() == "t0"
    now[0] = 600.0
    assert tokens() == "t1"


# ---------------------------------------------------------------- cluster access


def test_describe_cluster_reads_endpoint_and_ca() -> None:
    with mock_aws():
        aws = session()
        eks = aws.client("eks")
        role = "arn:aws:iam::123456789012:role/eks-cluster"
        eks.create_cluster(
            name="platform-demo", roleArn=role, resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]}
        )
        access = describe_cluster("platform-demo", session=aws)
    assert access.name == "platform-demo" and access.region == REGION
    assert access.endpoint.startswith("https://")
    assert access.ca_data


def test_describe_missing_cluster_names_it_in_one_line() -> None:
    with mock_aws(), pytest.raises(EnvironmentProblem, match="'nope' in eu-west-1: ResourceNotFoundException"):
        describe_cluster("nope", session=session())


def test_describe_with_an_unreachable_eks_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound then closed: connection refused
    aws = session()
    make_client = aws.client
    no_retries = Config(retries={"max_attempts": 1})

    def client_to_closed_port(service: str, **kwargs: Any) -> Any:
        return make_client(service, endpoint_url=f"http://127.0.0.1:{port}", config=no_retries, **kwargs)

    monkeypatch.setattr(aws, "client", client_to_closed_port)
    with pytest.raises(EnvironmentProblem, match="EKS DescribeCluster 'platform-demo': Could not connect") as error:
        describe_cluster("platform-demo", session=aws)
    assert "\n" not in str(error.value)


def test_ca_data_must_be_base64_pem() -> None:
    with pytest.raises(InputError, match="not base64"):
        api_client("https://example", "not base64!", lambda: "t")
    with pytest.raises(InputError, match="PEM"):
        api_client("https://example", base64.b64encode(b"hello").decode(), lambda: "t")
    client = api_client("https://example", base64.b64encode(PEM.encode()).decode(), lambda: "t")
    assert client.configuration.ca_cert_data == PEM


def test_kubeconfig_is_private_and_exec_less(tmp_path: Path) -> None:
    access = ClusterAccess("platform-demo", REGION, "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "Q0E=")
    path = write_kubeconfig(tmp_path / "run" / "kubeconfig", access, "k8s-aws-v1.abc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"] == {"server": access.endpoint, "certificate-authority-data": "Q0E="}
    assert config["users"][0]["user"] == {"token": "k8s-aws-v1.abc"}
    assert config["current-context"] == "platform-demo"


# ---------------------------------------------------------------- the reader against a local API server


class FakeApiServer(BaseHTTPRequestHandler):
    """Answers like kube-apiserver for the paths the reader uses; records each request."""

    routes: ClassVar[dict[tuple[str, str], tuple[int, Any]]] = {}
    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append(
            {
                "method": self.command,
                "path": parts.path,
                "query": dict(parse_qsl(parts.query)),
                "auth": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "body": json.loads(body) if body else None,
            }
        )
        status, payload = self.routes.get((self.command, parts.path), (404, _status(404, "NotFound", "not found")))
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@pytest.fixture
def api() -> Iterator[tuple[type[FakeApiServer], str]]:
    handler = type("Handler", (FakeApiServer,), {"routes": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def reader_for(endpoint: str, token: str = "k8s-aws-v1.test") -> KubernetesApiClient:
    return KubernetesApiClient(api_client(endpoint, None, lambda: token))


def test_reader_lists_pods_with_selector_and_bearer_token(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    recorded = "recorded/synced/pods_game-2048.yaml"  # the PodList a local-target run's API server served
    handler.routes[("GET", "/api/v1/namespaces/game-2048/pods")] = (200, load(recorded))
    pods = reader_for(endpoint).list_pods("game-2048", "app.kubernetes.io/name=game-2048")
    assert [p["metadata"]["name"] for p in pods] == ["game-2048-665967d87f-dt5n5", "game-2048-665967d87f-r7pxb"]
    # objects come back as the API's own JSON, camelCase and RFC 3339 strings
    assert pods == items(recorded)
    assert pods[0]["metadata"]["creationTimestamp"] == "2026-11-29T02:12:21Z"
    (request,) = handler.seen
    assert request["query"] == {"labelSelector": "app.kubernetes.io/name=game-2048"}
    assert request["auth"] == "Bearer k8s-aws-v1.test"


def test_every_request_asks_the_token_source_so_long_runs_get_fresh_tokens(
    api: tuple[type[FakeApiServer], str],
) -> None:
    handler, endpoint = api
    handler.routes[("GET", "/api/v1/nodes")] = (200, load("recorded/synced/nodes.yaml"))
    tokens = iter(["k8s-aws-v1.first", "k8s-aws-v1.first", "k8s-aws-v1.second"])
    reader = KubernetesApiClient(api_client(endpoint, None, lambda: next(tokens)))
    reader.list_nodes()
    reader.list_nodes()
    assert [r["auth"] for r in handler.seen] == ["Bearer k8s-aws-v1.first", "Bearer k8s-aws-v1.second"]


def test_reader_reads_custom_objects_cluster_and_namespace_scoped(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    handler.routes[("GET", "/apis/karpenter.sh/v1/nodepools")] = (200, load("recorded/synced/nodepools.yaml"))
    app = items("recorded/synced/applications.yaml")[0]
    handler.routes[("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/bootstrap")] = (200, app)
    reader = reader_for(endpoint)
    assert [pool["metadata"]["name"] for pool in reader.list_custom(NODE_POOL)] == ["apps"]
    assert reader.get_custom(APPLICATION, "bootstrap", "argocd") == app
    assert reader.get_custom(APPLICATION, "game-2048-in-cluster", "argocd") is None  # 404: not there (yet)


def test_reader_needs_a_namespace_for_namespaced_kinds(api: tuple[type[FakeApiServer], str]) -> None:
    with pytest.raises(InputError, match="namespaced"):
        reader_for(api[1]).get_custom(APPLICATION, "game-2048")


def test_reader_scales_through_the_scale_subresource(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    path = "/apis/apps/v1/namespaces/game-2048/deployments/game-2048/scale"
    handler.routes[("PATCH", path)] = (200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 6}})
    reader_for(endpoint).scale_deployment("game-2048", "game-2048", 6)
    (request,) = handler.seen
    assert (request["method"], request["path"], request["body"]) == ("PATCH", path, {"spec": {"replicas": 6}})
    with pytest.raises(InputError, match=">= 0"):
        reader_for(endpoint).scale_deployment("game-2048", "game-2048", -1)


def test_reader_deletes_and_reports_what_was_already_gone(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    path = "/apis/networking.k8s.io/v1/namespaces/game-2048/ingresses/game-2048"
    handler.routes[("DELETE", path)] = (200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
    reader = reader_for(endpoint)
    assert reader.delete_ingress("game-2048", "game-2048") is True
    assert reader.delete_ingress("game-2048", "other") is False
    assert reader.delete_custom(NODE_CLAIM, "apps-x7k2p") is False


def test_reader_returns_logs_as_text(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    line = '{"level":"INFO","message":"launched nodeclaim","NodeClaim":{"name":"apps-x7k2p"}}'
    handler.routes[("GET", "/api/v1/namespaces/kube-system/pods/karpenter-5c7d9f8b6-2mzqx/log")] = (200, line)
    assert reader_for(endpoint).pod_logs("kube-system", "karpenter-5c7d9f8b6-2mzqx", tail_lines=50) == line
    assert handler.seen[0]["query"] == {"tailLines": "50"}


def test_connect_sends_an_eks_token_for_the_described_cluster(
    api: tuple[type[FakeApiServer], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, endpoint = api
    handler.routes[("GET", "/api/v1/nodes")] = (200, load("recorded/synced/nodes.yaml"))
    ca = base64.b64encode(PEM.encode()).decode()
    described: list[str] = []

    def describe(name: str, *, session: boto3.Session | None = None) -> ClusterAccess:
        described.append(name)
        return ClusterAccess(name, REGION, endpoint, ca)

    monkeypatch.setattr(kube, "describe_cluster", describe)
    nodes = kube.connect("platform-demo", session=session()).list_nodes()
    assert [n["metadata"]["name"] for n in nodes] == ["ops-0", "ops-1"] and described == ["platform-demo"]
    auth = handler.seen[0]["auth"]
    assert auth.startswith("Bearer k8s-aws-v1.")
    url = decode(auth.removeprefix("Bearer "))
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"] == expected_signature(url, "platform-demo")


def test_401_says_the_identity_needs_an_access_entry(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    handler.routes[("GET", "/api/v1/nodes")] = (401, _status(401, "Unauthorized", "Unauthorized"))
    with pytest.raises(EnvironmentProblem) as error:
        reader_for(endpoint).list_nodes()
    assert "401" in str(error.value) and "access entry" in str(error.value)
    assert "\n" not in str(error.value)


def test_403_quotes_the_api_servers_reason(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    message = 'nodes is forbidden: User "arn:aws:sts::123456789012:assumed-role/ci/e2e" cannot list resource "nodes"'
    handler.routes[("GET", "/api/v1/nodes")] = (403, _status(403, "Forbidden", message))
    with pytest.raises(EnvironmentProblem, match="forbids listing nodes \\(403\\): nodes is forbidden"):
        reader_for(endpoint).list_nodes()


def test_unreachable_endpoint_is_one_line() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound then closed: nothing listens there
    with pytest.raises(EnvironmentProblem, match=f"cannot reach Kubernetes API http://127.0.0.1:{port}") as error:
        reader_for(f"http://127.0.0.1:{port}").list_pods("argocd")
    assert "\n" not in str(error.value)


def test_a_kind_the_api_does_not_serve_is_told_apart_from_an_empty_list(api: tuple[type[FakeApiServer], str]) -> None:
    handler, endpoint = api
    applications = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
    not_found = _status(404, "NotFound", "the server could not find the requested resource")
    handler.routes[("GET", applications)] = (404, not_found)
    with pytest.raises(NotServed, match=r"does not serve applications\.argoproj\.io/v1alpha1") as error:
        reader_for(endpoint).list_custom(APPLICATION, "argocd")
    assert "\n" not in str(error.value)
    handler.routes[("GET", applications)] = (200, {"kind": "ApplicationList", "items": []})
    assert reader_for(endpoint).list_custom(APPLICATION, "argocd") == []


@pytest.mark.parametrize("status", [403, 500])
def test_other_errors_listing_a_kind_stay_errors(api: tuple[type[FakeApiServer], str], status: int) -> None:
    handler, endpoint = api
    handler.routes[("GET", "/apis/karpenter.sh/v1/nodepools")] = (status, _status(status, "Failure", "no"))
    with pytest.raises(EnvironmentProblem, match=f"{status}") as error:
        reader_for(endpoint).list_custom(NODE_POOL)
    assert not isinstance(error.value, NotServed)
