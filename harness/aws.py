"""boto3 sessions and clients bound to a target: the emulator's endpoint with dummy keys, or a real account."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from harness.emulator import DUMMY_CREDENTIALS
from harness.errors import EnvironmentProblem
from harness.project import TargetCapabilities

EMULATOR_REGION = "us-east-1"
ACCOUNT_ENV = "E2E_AWS_ACCOUNT_ID"
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


def region_for(target: str, env: Mapping[str, str] | None = None) -> str:
    """The emulator's fixed region; on aws, AWS_REGION / AWS_DEFAULT_REGION (required)."""
    env = os.environ if env is None else env
    if target == "emulator":
        return env.get("AWS_REGION") or EMULATOR_REGION
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise EnvironmentProblem("no AWS region: set AWS_REGION (e.g. export AWS_REGION=eu-west-1)")
    return region


@dataclass
class AwsTarget:
    """Where AWS calls go. `endpoint_url` is set for the emulator and None for a real account."""

    capabilities: TargetCapabilities
    region: str
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.capabilities.name

    @cached_property
    def session(self) -> boto3.Session:
        if self.endpoint_url:
            return boto3.Session(
                aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=self.region,
            )
        return boto3.Session(region_name=self.region)

    def client(self, service: str) -> Any:
        """One cached client per service, bound to this target's region and endpoint."""
        if service not in self._clients:
            make_client: Any = self.session.client  # the stubs only type literal service names
            self._clients[service] = make_client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG
            )
        return self._clients[service]


def require_account_opt_in(target: AwsTarget, env: Mapping[str, str] | None = None) -> str:
    """Explicit opt-in before anything touches a real account: E2E_AWS_ACCOUNT_ID must name the account
    the credentials belong to. Returns the account id; never called for the emulator."""
    env = os.environ if env is None else env
    expected = env.get(ACCOUNT_ENV, "").strip()
    if not expected:
        raise EnvironmentProblem(
            f"the aws target changes a real account: set {ACCOUNT_ENV}=<12-digit account id> to opt in"
        )
    try:
        actual = str(target.client("sts").get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        raise EnvironmentProblem(f"cannot confirm the AWS account (sts:GetCallerIdentity): {exc}") from None
    if actual != expected:
        raise EnvironmentProblem(f"credentials are for account {actual}, but {ACCOUNT_ENV}={expected}: refusing")
    return actual
