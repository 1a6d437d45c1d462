"""Talk to an EKS cluster's Kubernetes API with nothing but boto3 and the kubernetes client.

How it connects (no kubeconfig file, no aws CLI, no exec plugin):

1. ``describe_cluster`` reads the API endpoint and CA bundle from EKS.
2. ``eks_token`` presigns an STS ``GetCallerIdentity`` request whose signature covers the header
   ``x-k8s-aws-id: <cluster name>`` and lives 60 s; the bearer token is ``k8s-aws-v1.`` followed by the
   base64url (no padding) of that URL. EKS replays the URL to STS to learn who is calling, then maps that
   IAM identity to Kubernetes permissions through an access entry.
3. ``api_client`` builds a kubernetes ``ApiClient`` from endpoint + CA data and a token source that mints a
   fresh token before the old one expires (EKS accepts a token for 15 minutes; an e2e run lasts longer).

Everything the e2e and the teardown read, delete or scale goes through the small ``KubeClient`` protocol
(harness.kube.api), so the judges in ``core``, ``argocd``, ``karpenter`` and ``ingress`` are tested with a fake
that serves recorded API objects. Objects are plain dicts exactly as the API serves them as JSON (camelCase
keys, RFC 3339 times). ``KubernetesApiClient`` is the real implementation; it turns 401/403/unreachable into one-line
``EnvironmentProblem`` errors.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import urllib3
import yaml
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from harness.errors import EnvironmentProblem, InputError
from harness.kube.api import CustomResource, KubeObject, NotServed

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
# EKS honours a token for 15 minutes; mint a new one well before that.
TOKEN_REFRESH_SECONDS = 10 * 60


@dataclass(frozen=True)
class ClusterAccess:
    """What a client needs to reach one EKS cluster's API."""

    name: str
    region: str
    endpoint: str
    ca_data: str  # base64 PEM bundle, as EKS returns it in certificateAuthority.data


# ---------------------------------------------------------------- token and client


def eks_token(cluster_name: str, *, session: boto3.Session | None = None, region: str | None = None) -> str:
    """A bearer token for the EKS cluster ``cluster_name`` from the session's AWS credentials."""
    session = session or boto3.Session()
    region = region or session.region_name
    if not region:
        raise EnvironmentProblem("no AWS region: set AWS_REGION")
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise EnvironmentProblem(f"cannot load AWS credentials: {exc}") from None
    if credentials is None:
        raise EnvironmentProblem("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    # The regional STS endpoint of the right partition, as botocore resolves it (works offline).
    sts_endpoint = session.client("sts", region_name=region).meta.endpoint_url
    request = AWSRequest(
        method="GET",
        url=f"{sts_endpoint}/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={CLUSTER_ID_HEADER: cluster_name},
    )
    SigV4QueryAuth(credentials.get_frozen_credentials(), "sts", region, expires=PRESIGN_EXPIRES_SECONDS).add_auth(
        request
    )
    presigned_url = str(request.url)
    encoded = base64.urlsafe_b64encode(presigned_url.encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded


def describe_cluster(cluster_name: str, *, session: boto3.Session | None = None) -> ClusterAccess:
    """Endpoint and CA of an EKS cluster; a missing cluster or credentials become one-line errors."""
    session = session or boto3.Session()
    if not session.region_name:
        raise EnvironmentProblem("no AWS region: set AWS_REGION")
    try:
        cluster = session.client("eks").describe_cluster(name=cluster_name)["cluster"]
    except botocore.exceptions.NoCredentialsError:
        raise EnvironmentProblem("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID") from None
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise EnvironmentProblem(
            f"EKS cluster {cluster_name!r} in {session.region_name}: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:  # unreachable endpoint, credentials that fail to load
        raise EnvironmentProblem(f"EKS DescribeCluster {cluster_name!r}: {exc}") from None
    endpoint, ca_data = cluster.get("endpoint"), cluster.get("certificateAuthority", {}).get("data")
    if not endpoint or not ca_data:
        raise EnvironmentProblem(
            f"EKS cluster {cluster_name!r} has no endpoint/CA yet (status {cluster.get('status')}): wait until ACTIVE"
        )
    return ClusterAccess(cluster_name, session.region_name, endpoint, ca_data)


class TokenSource:
    """Mints an EKS token and re-mints it when it is older than ``max_age`` seconds (injectable clock)."""

    def __init__(
        self,
        mint: Callable[[], str],
        *,
        max_age: float = TOKEN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mint, self._max_age, self._clock = mint, max_age, clock
        self._token: str | None = None
        self._minted_at = 0.0

    def __call__(self) -> str:
        now = self._clock()
        if self._token is None or now - self._minted_at >= self._max_age:
            self._token, self._minted_at = self._mint(), now
        return self._token


def _pem_from_eks(ca_data: str) -> str:
    try:
        pem = base64.b64decode(ca_data, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise InputError("cluster CA data is not base64 of a PEM bundle") from None
    if "BEGIN CERTIFICATE" not in pem:
        raise InputError("cluster CA data does not contain a PEM certificate")
    return pem


def api_client(endpoint: str, ca_data: str | None, token: Callable[[], str]) -> k8s.ApiClient:
    """A kubernetes ApiClient for ``endpoint`` that trusts ``ca_data`` (base64 PEM, as EKS returns it).

    ``token`` is called before every request (cheap: ``TokenSource`` caches), so long runs never send an
    expired token. ``ca_data=None`` is only for a plain-http test server.
    """
    configuration = k8s.Configuration(host=endpoint.rstrip("/"))
    if ca_data is not None:
        configuration.ca_cert_data = _pem_from_eks(ca_data)
    configuration.api_key_prefix["authorization"] = "Bearer"
    # The client only consults the refresh hook for keys that are already present.
    configuration.api_key["authorization"] = token()

    def refresh(config: k8s.Configuration) -> None:
        config.api_key["authorization"] = token()

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]  # the client annotates it as None
    return k8s.ApiClient(configuration)


def connect(cluster_name: str, *, session: boto3.Session | None = None) -> KubernetesApiClient:
    """A ``KubernetesApiClient`` for an EKS cluster, authenticated with the session's IAM identity."""
    session = session or boto3.Session()
    cluster = describe_cluster(cluster_name, session=session)
    tokens = TokenSource(lambda: eks_token(cluster_name, session=session, region=cluster.region))
    return KubernetesApiClient(api_client(cluster.endpoint, cluster.ca_data, tokens), endpoint=cluster.endpoint)


def connect_kubeconfig(path: Path) -> KubernetesApiClient:
    """A ``KubernetesApiClient`` from a kubeconfig file (the local target's, with the run's client certificate)."""
    from kubernetes.config import new_client_from_config

    client = new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]  # untyped upstream
    return KubernetesApiClient(client, endpoint=str(client.configuration.host))


def write_kubeconfig(path: Path, cluster: ClusterAccess, token: str) -> Path:
    """A kubeconfig for the user's own kubectl, with an embedded (short-lived, 15 min) token and no exec.

    The file holds a credential: it is written with mode 0600 into the run directory only.
    """
    context = cluster.name
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": cluster.endpoint, "certificate-authority-data": cluster.ca_data}}
        ],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the real client


def _api_problem(exc: ApiException, endpoint: str, doing: str) -> EnvironmentProblem:
    status = exc.status or 0
    detail = ""
    if exc.body:
        try:
            detail = str(json.loads(exc.body).get("message", ""))
        except (ValueError, AttributeError):
            detail = str(exc.body).strip().splitlines()[0][:200]
    if status == 401:
        return EnvironmentProblem(
            f"Kubernetes API {endpoint} rejected the token (401 Unauthorized) while {doing}: "
            "the IAM identity needs an EKS access entry, or the token/clock is wrong"
        )
    if status == 403:
        return EnvironmentProblem(f"Kubernetes API {endpoint} forbids {doing} (403): {detail or exc.reason}")
    if status == 0:
        reason = str(exc.reason or "").splitlines()[0]
        return EnvironmentProblem(f"cannot reach Kubernetes API {endpoint} while {doing}: {reason}")
    return EnvironmentProblem(f"Kubernetes API {endpoint} answered {status} while {doing}: {detail or exc.reason}")


class KubernetesApiClient:
    """``KubeClient`` on the official kubernetes client; objects come back as the API's own JSON."""

    def __init__(self, api: k8s.ApiClient, *, endpoint: str | None = None) -> None:
        self._core = k8s.CoreV1Api(api)
        self._apps = k8s.AppsV1Api(api)
        self._networking = k8s.NetworkingV1Api(api)
        self._policy = k8s.PolicyV1Api(api)
        self._version = k8s.VersionApi(api)
        self._custom = k8s.CustomObjectsApi(api)
        self._endpoint = endpoint or api.configuration.host

    def _call(
        self,
        doing: str,
        request: Callable[[], Any],
        *,
        missing_ok: bool = False,
        text: bool = False,
        collection: CustomResource | None = None,
    ) -> Any:
        """Run one API request unparsed; decode its JSON (or text); map errors to one line (404 -> None if allowed;
        404 on the list of a `collection` -> NotServed: a served kind answers an empty list, even in a namespace
        that does not exist)."""
        try:
            response = request()
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            if collection is not None and exc.status == 404:
                raise NotServed(
                    f"Kubernetes API {self._endpoint} does not serve {collection.plural}.{collection.group}/"
                    f"{collection.version} (404 while {doing}): its CRD is not installed"
                ) from None
            raise _api_problem(exc, self._endpoint, doing) from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise EnvironmentProblem(f"cannot reach Kubernetes API {self._endpoint} while {doing}: {reason}") from None
        data = response.data
        if text:
            return data.decode("utf-8", errors="replace")
        return json.loads(data) if data else {}

    def _object(self, doing: str, request: Callable[[], Any]) -> KubeObject | None:
        found: KubeObject | None = self._call(doing, request, missing_ok=True)
        return found

    def _items(
        self, doing: str, request: Callable[[], Any], collection: CustomResource | None = None
    ) -> list[KubeObject]:
        return list(self._call(doing, request, collection=collection).get("items") or [])

    def list_nodes(self, label_selector: str = "") -> list[KubeObject]:
        return self._items(
            "listing nodes", lambda: self._core.list_node(label_selector=label_selector, _preload_content=False)
        )

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list[KubeObject]:
        if namespace is None:
            return self._items(
                "listing pods",
                lambda: self._core.list_pod_for_all_namespaces(label_selector=label_selector, _preload_content=False),
            )
        return self._items(
            f"listing pods in {namespace}",
            lambda: self._core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False),
        )

    def list_events(self, namespace: str | None = None, field_selector: str = "") -> list[KubeObject]:
        if namespace is None:
            return self._items(
                "listing events",
                lambda: self._core.list_event_for_all_namespaces(field_selector=field_selector, _preload_content=False),
            )
        return self._items(
            f"listing events in {namespace}",
            lambda: self._core.list_namespaced_event(namespace, field_selector=field_selector, _preload_content=False),
        )

    def get_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> KubeObject | None:
        doing = f"reading {resource.plural}/{name}"
        if resource.namespaced:
            return self._object(
                doing,
                lambda: self._custom.get_namespaced_custom_object(
                    resource.group,
                    resource.version,
                    _namespace(resource, namespace),
                    resource.plural,
                    name,
                    _preload_content=False,
                ),
            )
        return self._object(
            doing,
            lambda: self._custom.get_cluster_custom_object(
                resource.group, resource.version, resource.plural, name, _preload_content=False
            ),
        )

    def list_custom(
        self, resource: CustomResource, namespace: str | None = None, label_selector: str = ""
    ) -> list[KubeObject]:
        doing = f"listing {resource.plural}.{resource.group}"
        if resource.namespaced and namespace is not None:
            return self._items(
                doing,
                lambda: self._custom.list_namespaced_custom_object(
                    resource.group,
                    resource.version,
                    namespace,
                    resource.plural,
                    label_selector=label_selector,
                    _preload_content=False,
                ),
                resource,
            )
        return self._items(
            doing,
            lambda: self._custom.list_cluster_custom_object(
                resource.group,
                resource.version,
                resource.plural,
                label_selector=label_selector,
                _preload_content=False,
            ),
            resource,
        )

    def delete_custom(self, resource: CustomResource, name: str, namespace: str | None = None) -> bool:
        doing = f"deleting {resource.plural}/{name}"
        if resource.namespaced:
            result = self._call(
                doing,
                lambda: self._custom.delete_namespaced_custom_object(
                    resource.group,
                    resource.version,
                    _namespace(resource, namespace),
                    resource.plural,
                    name,
                    _preload_content=False,
                ),
                missing_ok=True,
            )
        else:
            result = self._call(
                doing,
                lambda: self._custom.delete_cluster_custom_object(
                    resource.group, resource.version, resource.plural, name, _preload_content=False
                ),
                missing_ok=True,
            )
        return result is not None

    def get_service(self, namespace: str, name: str) -> KubeObject | None:
        return self._object(
            f"reading service {namespace}/{name}",
            lambda: self._core.read_namespaced_service(name, namespace, _preload_content=False),
        )

    def get_ingress(self, namespace: str, name: str) -> KubeObject | None:
        return self._object(
            f"reading ingress {namespace}/{name}",
            lambda: self._networking.read_namespaced_ingress(name, namespace, _preload_content=False),
        )

    def list_ingresses(self, namespace: str | None = None) -> list[KubeObject]:
        if namespace is None:
            return self._items(
                "listing ingresses",
                lambda: self._networking.list_ingress_for_all_namespaces(_preload_content=False),
            )
        return self._items(
            f"listing ingresses in {namespace}",
            lambda: self._networking.list_namespaced_ingress(namespace, _preload_content=False),
        )

    def delete_ingress(self, namespace: str, name: str) -> bool:
        result = self._call(
            f"deleting ingress {namespace}/{name}",
            lambda: self._networking.delete_namespaced_ingress(name, namespace, _preload_content=False),
            missing_ok=True,
        )
        return result is not None

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None:
        return self._object(
            f"reading deployment {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(name, namespace, _preload_content=False),
        )

    def get_pdb(self, namespace: str, name: str) -> KubeObject | None:
        return self._object(
            f"reading poddisruptionbudget {namespace}/{name}",
            lambda: self._policy.read_namespaced_pod_disruption_budget(name, namespace, _preload_content=False),
        )

    def server_version(self) -> str:
        return str(
            self._call("reading the server version", lambda: self._version.get_code(_preload_content=False))[
                "gitVersion"
            ]
        )

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        if replicas < 0:
            raise InputError(f"replicas must be >= 0, got {replicas}")
        self._call(
            f"scaling deployment {namespace}/{name} to {replicas}",
            lambda: self._apps.patch_namespaced_deployment_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _preload_content=False
            ),
        )

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int = 200) -> str:
        logs: str = self._call(
            f"reading logs of pod {namespace}/{name}",
            lambda: self._core.read_namespaced_pod_log(
                name, namespace, container=container, tail_lines=tail_lines, _preload_content=False
            ),
            text=True,
        )
        return logs


def _namespace(resource: CustomResource, namespace: str | None) -> str:
    if not namespace:
        raise InputError(f"{resource.plural}.{resource.group} is namespaced: pass a namespace")
    return namespace
