"""pytest plugin (entry point `harness`): the platform stack as session fixtures.

Options and fixtures carry a `harness` prefix, so they never collide with another plugin's:
Options: --harness-target emulator|aws (default $HARNESS_TARGET or emulator), --harness-keep-stack,
--harness-run-id ID.
Fixtures:
    harness_target            TargetCapabilities of the chosen target (what it cannot serve, and why)
    harness_platform          session Stack: applied once, destroyed at the end (even on failure or Ctrl-C)
                              unless --harness-keep-stack; skips with the reason when Terraform or its provider
                              is missing
    harness_platform_outputs  the platform root's outputs (dict)
    harness_aws_target        AwsTarget bound to the platform's target (region, emulator endpoint)
    harness_aws_clients       service name -> boto3 client bound to that target

pytest loads this module in every session of an environment where the harness is installed, so it imports
only what the core install has; the stack's libraries (boto3, the Terraform runner) load when a fixture runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError
from harness.project import TargetCapabilities, capabilities, versions
from harness.targets import TARGETS, default_target

if TYPE_CHECKING:
    from harness.aws.clients import AwsTarget
    from harness.targets.stack import Stack


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "EKS platform harness")
    group.addoption("--harness-target", choices=TARGETS, default=None, help="emulator (default, offline) or aws")
    group.addoption("--harness-keep-stack", action="store_true", help="leave the platform up after the session")
    group.addoption("--harness-run-id", default=None, help="run id to use (default: a new one)")


def target_name(config: pytest.Config) -> str:
    return str(config.getoption("harness_target") or default_target())


def stack_skip_reason(target: str) -> str | None:
    """Why the platform cannot be stood up on this machine, or None when it can."""
    from harness.aws.clients import ACCOUNT_ENV
    from harness.terraform.providers import unavailable_reason
    from harness.terraform.runner import find_cli

    try:
        find_cli()
    except HarnessError as exc:
        return str(exc)
    if target == "aws" and not os.environ.get(ACCOUNT_ENV):
        return f"the aws target touches a real account: set {ACCOUNT_ENV} to opt in"
    return unavailable_reason(versions()["aws_provider"])


@pytest.fixture(scope="session")
def harness_target(request: pytest.FixtureRequest) -> TargetCapabilities:
    return capabilities(target_name(request.config))


@pytest.fixture(scope="session")
def harness_platform(request: pytest.FixtureRequest, harness_target: TargetCapabilities) -> Iterator[Stack]:
    if reason := stack_skip_reason(harness_target.name):
        pytest.skip(reason)
    from harness.targets.stack import Stack

    stack = Stack.create(harness_target.name, request.config.getoption("harness_run_id"))
    try:
        stack.up()  # tears down by itself when it fails or is interrupted
    except HarnessError as exc:
        pytest.fail(f"the platform did not come up (run {stack.run.id}): {exc}", pytrace=False)
    try:
        yield stack
    finally:
        if request.config.getoption("harness_keep_stack"):
            print(f"\nkept run {stack.run.id}: harness down --run-id {stack.run.id}")
        else:
            stack.down()


@pytest.fixture(scope="session")
def harness_platform_outputs(harness_platform: Stack) -> dict[str, Any]:
    return harness_platform.outputs()


@pytest.fixture(scope="session")
def harness_aws_target(harness_platform: Stack) -> AwsTarget:
    return harness_platform.aws_target()


@pytest.fixture(scope="session")
def harness_aws_clients(harness_aws_target: AwsTarget) -> Callable[[str], Any]:
    return harness_aws_target.client
