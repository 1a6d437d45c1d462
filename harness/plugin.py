"""pytest plugin (entry point `harness`): the platform stack as session fixtures.

Options: --target emulator|aws (default $HARNESS_TARGET or emulator), --keep-stack, --run-id ID.
Fixtures:
    target            TargetCapabilities of the chosen target (what it cannot serve, and why)
    platform          session Stack: applied once, destroyed at the end (even on failure or Ctrl-C)
                      unless --keep-stack; skips with the reason when Terraform or its provider is missing
    platform_outputs  the platform root's outputs (dict)
    aws_target        AwsTarget bound to the platform's target (region, emulator endpoint)
    aws_clients       service name -> boto3 client bound to that target
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.aws import ACCOUNT_ENV, AwsTarget
from harness.errors import HarnessError
from harness.project import TargetCapabilities, capabilities, versions
from harness.providers import unavailable_reason
from harness.stack import TARGETS, Stack, default_target
from harness.terraform import find_cli


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "EKS platform harness")
    group.addoption("--target", choices=TARGETS, default=None, help="emulator (default, offline) or aws")
    group.addoption("--keep-stack", action="store_true", help="leave the platform up after the session")
    group.addoption("--run-id", default=None, help="run id to use (default: a new one)")


def target_name(config: pytest.Config) -> str:
    return str(config.getoption("target") or default_target())


def stack_skip_reason(target: str) -> str | None:
    """Why the platform cannot be stood up on this machine, or None when it can."""
    try:
        find_cli()
    except HarnessError as exc:
        return str(exc)
    if target == "aws" and not os.environ.get(ACCOUNT_ENV):
        return f"the aws target touches a real account: set {ACCOUNT_ENV} to opt in"
    return unavailable_reason(versions()["aws_provider"])


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> TargetCapabilities:
    return capabilities(target_name(request.config))


@pytest.fixture(scope="session")
def platform(request: pytest.FixtureRequest, target: TargetCapabilities) -> Iterator[Stack]:
    if reason := stack_skip_reason(target.name):
        pytest.skip(reason)
    stack = Stack.create(target.name, request.config.getoption("run_id"))
    try:
        stack.up()  # tears down by itself when it fails or is interrupted
    except HarnessError as exc:
        pytest.fail(f"the platform did not come up (run {stack.run.id}): {exc}", pytrace=False)
    try:
        yield stack
    finally:
        if request.config.getoption("keep_stack"):
            print(f"\nkept run {stack.run.id}: harness down --run-id {stack.run.id}")
        else:
            stack.down()


@pytest.fixture(scope="session")
def platform_outputs(platform: Stack) -> dict[str, Any]:
    return platform.outputs()


@pytest.fixture(scope="session")
def aws_target(platform: Stack) -> AwsTarget:
    return platform.aws_target()


@pytest.fixture(scope="session")
def aws_clients(aws_target: AwsTarget) -> Callable[[str], Any]:
    return aws_target.client
