"""Targets for boto3, and the opt-in that guards a real account (judged against moto in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from harness.aws.clients import ACCOUNT_ENV, EMULATOR_REGION, AwsTarget, region_for, require_account_opt_in
from harness.errors import EnvironmentProblem
from harness.project import capabilities

MOTO_ACCOUNT = "123456789012"


def test_region_for_the_emulator_defaults_and_aws_requires_one() -> None:
    assert region_for("emulator", {}) == EMULATOR_REGION
    assert region_for("aws", {"AWS_DEFAULT_REGION": "eu-west-1"}) == "eu-west-1"
    with pytest.raises(EnvironmentProblem, match="set AWS_REGION"):
        region_for("aws", {})


def test_clients_are_bound_to_the_endpoint_and_cached() -> None:
    target = AwsTarget(capabilities("emulator"), "us-east-1", "http://127.0.0.1:4999")
    sqs = target.client("sqs")
    assert sqs.meta.endpoint_url == "http://127.0.0.1:4999"
    assert sqs.meta.region_name == "us-east-1"
    assert target.client("sqs") is sqs
    assert target.name == "emulator"


class NoCalls(AwsTarget):
    def client(self, service: str) -> Any:
        raise AssertionError("the opt-in must refuse before any AWS call")


def test_no_opt_in_refuses_before_any_call() -> None:
    with pytest.raises(EnvironmentProblem, match=f"set {ACCOUNT_ENV}"):
        require_account_opt_in(NoCalls(capabilities("aws"), "eu-west-1"), env={})


@pytest.mark.usefixtures("no_real_aws")
def test_the_opt_in_must_name_the_credentials_account() -> None:
    with mock_aws():
        target = AwsTarget(capabilities("aws"), "us-east-1")
        assert require_account_opt_in(target, env={ACCOUNT_ENV: MOTO_ACCOUNT}) == MOTO_ACCOUNT
        with pytest.raises(EnvironmentProblem, match=f"account {MOTO_ACCOUNT}, but {ACCOUNT_ENV}=999999999999"):
            require_account_opt_in(target, env={ACCOUNT_ENV: "999999999999"})
