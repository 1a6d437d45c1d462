"""boto3 sessions and clients bound to a target (the emulator's endpoint with dummy keys, or a real account), and
the checks that a command touches only the account and region the user named."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from harness.aws.emulator import DUMMY_CREDENTIALS
from harness.errors import EnvironmentProblem, InputError
from harness.project import TargetCapabilities, emulated

EMULATOR_REGION = "us-east-1"
ACCOUNT_ENV = "E2E_AWS_ACCOUNT_ID"
EMULATOR_ACCOUNT = "123456789012"  # moto's fixed account id
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


def region_for(target: str, env: Mapping[str, str] | None = None) -> str:
    """The emulator's fixed region; on aws, AWS_REGION / AWS_DEFAULT_REGION (required)."""
    env = os.environ if env is None else env
    if emulated(target):
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


def expected_account(target: str, env: Mapping[str, str]) -> str:
    """The account the caller named. On the emulator moto's fixed id unless named; on aws it must be named."""
    named = env.get(ACCOUNT_ENV, "").strip()
    if named:
        if not (named.isdigit() and len(named) == 12):
            raise InputError(f"{ACCOUNT_ENV}={named!r}: an AWS account id is 12 digits")
        return named
    if emulated(target):
        return EMULATOR_ACCOUNT
    raise EnvironmentProblem(
        f"the aws target creates billable resources: set {ACCOUNT_ENV}=<12-digit account id> to name the account"
    )


def check_account(expected: str, actual: str, target: str) -> None:
    if actual != expected:
        raise EnvironmentProblem(
            f"the credentials are for account {actual}, but {ACCOUNT_ENV} names {expected}: refusing to touch {target}"
        )


def caller_account(sts: Any, target: str) -> str:
    try:
        return str(sts.get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        first = str(exc).splitlines()[0]
        raise EnvironmentProblem(f"cannot confirm the {target} account with sts:GetCallerIdentity: {first}") from None


def resolve_region(target: str, explicit: str | None, env: Mapping[str, str], emulator_region: str) -> str:
    """--region, else AWS_REGION; never a silent default on aws (the emulator's region is its own)."""
    region = explicit or env.get("AWS_REGION", "").strip()
    if region:
        return region
    if emulated(target):
        return emulator_region
    raise EnvironmentProblem("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1); there is no default")
