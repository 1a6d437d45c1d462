"""The OCI distribution API, for anonymous pulls: what manifest a tag points at, and its config blob.

Bearer-token auth as ECR Public and Docker Hub answer it (as `crane digest` does), with retries on
transient failures; `harness.images.reference` judges what comes back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import requests
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from harness.errors import EnvironmentProblem, InputError
from harness.images.reference import (
    IMAGE_TYPES,
    INDEX_TYPES,
    ImageRef,
    Resolved,
    api_base,
    config_platform,
    content_digest,
    index_platforms,
    judge_manifest,
)


def _bearer_challenge(header: str) -> dict[str, str] | None:
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


class _Transient(Exception):
    """A failure worth another try: connection trouble, rate limiting, a registry's 5xx."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient)


class RegistryClient:
    """Anonymous pulls over the OCI distribution API, with retries on transient failures."""

    ACCEPT = ", ".join(INDEX_TYPES + IMAGE_TYPES)

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        attempts: int = 4,
        timeout: float = 20.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.session = session or requests.Session()
        self.attempts = attempts
        self.timeout = timeout
        self.sleep = sleep
        self._tokens: dict[tuple[str, str], str] = {}

    def resolve(self, ref: ImageRef, image: str) -> Resolved:
        tag_or_digest = ref.tag or ref.digest or "latest"
        response = self._get(ref, f"/manifests/{tag_or_digest}", image, accept=self.ACCEPT)
        media_type = response.headers.get("Content-Type", "")
        served = response.headers.get("Docker-Content-Digest")
        manifest = judge_manifest(image, media_type, response.content, served)
        digest = served or content_digest(response.content)
        kind = media_type.split(";")[0].strip()
        if kind in INDEX_TYPES:
            return Resolved(digest, kind, index_platforms(manifest))
        config = manifest.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str):
            raise InputError(f"image {image}: manifest names no config blob")
        blob = self._get(ref, f"/blobs/{config_digest}", image)
        try:
            config_json = json.loads(blob.content)
        except ValueError:
            raise InputError(f"image {image}: config blob {config_digest} is not JSON") from None
        return Resolved(digest, kind, config_platform(config_json if isinstance(config_json, dict) else {}))

    def _get(self, ref: ImageRef, path: str, image: str, accept: str | None = None) -> requests.Response:
        url = f"{api_base(ref.registry)}/v2/{ref.repository}{path}"
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=8) + wait_random(0, 0.5),
            sleep=self.sleep or time.sleep,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send(ref, url, image, accept)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise EnvironmentProblem(
                f"cannot reach registry {ref.registry} for {image} after {self.attempts} "
                f"tries ({cause}); pinning needs access to the registry"
            ) from None
        return response

    def _send(self, ref: ImageRef, url: str, image: str, accept: str | None) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        key = (ref.registry, ref.repository)
        for _ in range(2):  # once anonymously or with a cached token, once more with a fresh token
            if key in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[key]}"
            response = self._request(url, headers)
            if response.status_code == 401 and "Authorization" not in headers:
                self._tokens[key] = self._token(ref, response, image)
                continue
            break
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code} from {url}")
        if response.status_code == 404:
            raise InputError(
                f"image {image}: {url.rsplit('/', 2)[-2]} {url.rsplit('/', 1)[-1]} "
                f"not found in {ref.registry}/{ref.repository}"
            )
        if response.status_code in (401, 403):
            raise EnvironmentProblem(
                f"image {image}: {ref.registry} refused an anonymous pull "
                f"(HTTP {response.status_code}); is the repository public?"
            )
        if response.status_code != 200:
            raise EnvironmentProblem(f"image {image}: HTTP {response.status_code} from {url}")
        return response

    def _request(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> requests.Response:
        try:
            return self.session.get(url, headers=headers, params=params, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"{type(exc).__name__}: {url}") from None

    def _token(self, ref: ImageRef, challenge: requests.Response, image: str) -> str:
        params = _bearer_challenge(challenge.headers.get("WWW-Authenticate", ""))
        if not params or "realm" not in params:
            raise EnvironmentProblem(
                f"image {image}: {ref.registry} asks for credentials this command does not have (no bearer challenge)"
            )
        query = {"scope": f"repository:{ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        response = self._request(params["realm"], {}, query)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code} from {params['realm']}")
        try:
            body = response.json() if response.status_code == 200 else {}
        except ValueError:
            body = {}
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise EnvironmentProblem(
                f"image {image}: {ref.registry} gave no pull token (HTTP {response.status_code} from {params['realm']})"
            )
        return token
