"""pytest plugin (entry point `harness`): the platform stack as session fixtures.

Options and fixtures carry a `harness` prefix, so they never collide with another plugin's:
Options: --harness-target emulator|local|aws (default $HARNESS_TARGET or emulator), --harness-keep-stack,
--harness-run-id ID, --harness-max-minutes N (the watchdog `harness e2e --max-minutes` has: past it the apply and
every wait stop, the remaining platform tests fail at once and the session's teardown runs).
Fixtures:
    harness_target            TargetCapabilities of the chosen target (what it cannot serve, and why)
    harness_watchdog          the session's watchdog, started with the platform
    harness_platform          session Stack: applied once, destroyed at the end (even on failure or Ctrl-C)
                              unless --harness-keep-stack; skips with the reason when Terraform or its provider
                              is missing
    harness_platform_outputs  the platform root's outputs (dict)
    harness_aws_target        AwsTarget bound to the platform's target (region, emulator endpoint)
    harness_aws_clients       service name -> boto3 client bound to that target
    harness_e2e               the e2e's stages (harness.e2e.orchestration.E2E) over the session's platform: the
                              same stages and judges `harness e2e` runs, so tests/e2e has no second copy
    harness_cluster           the Kubernetes client of the platform's cluster; skips (n/a, with the target's
                              reason) on a target without a Kubernetes API
    harness_addons            infra/addons applied once (the e2e's addons stage); fails with the stage's reason
    harness_synced            Argo CD has synced gitops/ (its own status: every Application Synced and Healthy)

pytest loads this module in every session of an environment where the harness is installed, so it imports
only what the core install has; the stack's libraries (boto3, the Terraform runner) load when a fixture runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError
from harness.project import KUBERNETES_CAPABILITY, TargetCapabilities, capabilities, repo_root, versions
from harness.signals import interrupt_on_stop_signals
from harness.targets import TARGETS, default_target

if TYPE_CHECKING:
    from harness.aws.clients import AwsTarget
    from harness.e2e.orchestration import E2E
    from harness.e2e.stages import StageOutcome, Watchdog
    from harness.kube.api import KubeClient
    from harness.targets.stack import Stack


# pytest-xdist's group (with --dist loadgroup) of every test that uses the session's platform.
PLATFORM_GROUP = "harness_platform"
WATCHDOG_KEY = pytest.StashKey["Watchdog"]()


def pytest_configure(config: pytest.Config) -> None:
    # A cancelled CI job sends SIGTERM: the session fixtures' teardown must run then as on Ctrl-C.
    interrupt_on_stop_signals()


def uses_platform(item: pytest.Item) -> bool:
    return "harness_platform" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under pytest-xdist a session fixture runs once per worker: every test that uses the platform goes to one
    # worker, so the platform is applied once and not once per worker.
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if uses_platform(item):
            item.add_marker(pytest.mark.xdist_group(PLATFORM_GROUP))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "EKS platform harness")
    group.addoption("--harness-target", choices=TARGETS, default=None, help="emulator (default, offline), local or aws")
    group.addoption("--harness-keep-stack", action="store_true", help="leave the platform up after the session")
    group.addoption("--harness-run-id", default=None, help="run id to use (default: a new one)")
    group.addoption(
        "--harness-max-minutes",
        type=float,
        default=None,
        help="watchdog: stop the platform's apply and waits after this long, then tear down (default 120)",
    )


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
    if capabilities(target).local_kubernetes:
        from harness.targets.local import unavailable

        if reason := unavailable():
            return reason
    return unavailable_reason(versions()["aws_provider"])


@pytest.fixture(scope="session")
def harness_target(request: pytest.FixtureRequest) -> TargetCapabilities:
    return capabilities(target_name(request.config))


@pytest.fixture(scope="session")
def harness_watchdog(request: pytest.FixtureRequest) -> Watchdog:
    from harness.e2e.stages import DEFAULT_MAX_MINUTES, Watchdog

    minutes = request.config.getoption("harness_max_minutes") or DEFAULT_MAX_MINUTES
    watchdog = Watchdog(minutes * 60, option="--harness-max-minutes")
    request.config.stash[WATCHDOG_KEY] = watchdog
    return watchdog


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Past the watchdog a platform test would only wait out its bound: it fails at once, with the reason.
    watchdog = item.config.stash.get(WATCHDOG_KEY, None)
    if watchdog is not None and uses_platform(item) and (reason := watchdog.reason()):
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def harness_platform(
    request: pytest.FixtureRequest, harness_target: TargetCapabilities, harness_watchdog: Watchdog
) -> Iterator[Stack]:
    if reason := stack_skip_reason(harness_target.name):
        pytest.skip(reason)
    from harness.e2e.stages import watched
    from harness.targets.stack import Stack

    stack = Stack.create(harness_target.name, request.config.getoption("harness_run_id"))
    try:
        with watched(stack, harness_watchdog):
            stack.up()  # tears down by itself when it fails or is interrupted
    except HarnessError as exc:
        pytest.fail(f"the platform did not come up (run {stack.run.id}): {exc}", pytrace=False)
    try:
        yield stack
    finally:
        if request.config.getoption("harness_keep_stack"):
            print(f"\nkept run {stack.run.id}: harness down --run-id {stack.run.id}")
        else:
            # The controller-aware teardown `harness down` does: what the controllers made goes first.
            from harness.targets.full_stack import FullStack, teardown_run
            from harness.targets.teardown import teardown_ok

            results = teardown_run(FullStack(stack, stack.console))
            if not teardown_ok(results):
                left = "; ".join(f"{r.name}: {r.why}" for r in results if not r.ok)
                pytest.fail(f"run {stack.run.id} was not torn down cleanly: {left}", pytrace=False)


@pytest.fixture(scope="session")
def harness_platform_outputs(harness_platform: Stack) -> dict[str, Any]:
    return harness_platform.outputs()


@pytest.fixture(scope="session")
def harness_aws_target(harness_platform: Stack) -> AwsTarget:
    return harness_platform.aws_target()


@pytest.fixture(scope="session")
def harness_aws_clients(harness_aws_target: AwsTarget) -> Callable[[str], Any]:
    return harness_aws_target.client


@pytest.fixture(scope="session")
def harness_e2e(harness_platform: Stack, harness_watchdog: Watchdog) -> E2E:
    from harness.e2e.gitops_source import gitops_source
    from harness.e2e.orchestration import E2E

    caps = harness_platform.capabilities
    # The local target serves this working tree itself; elsewhere Argo CD needs a Git URL it can clone.
    serves_itself = caps.local_kubernetes or not caps.supports(KUBERNETES_CAPABILITY)
    gitops = ("", "") if serves_itself else gitops_source(None, os.environ, repo_root())
    return E2E(harness_platform, harness_platform.console, gitops=gitops, watchdog=harness_watchdog)


@pytest.fixture(scope="session")
def harness_cluster(harness_e2e: E2E) -> KubeClient:
    if reason := harness_e2e.caps.reason(KUBERNETES_CAPABILITY):
        pytest.skip(f"not applicable on {harness_e2e.run.target}: {reason}")
    return harness_e2e.kube()


@pytest.fixture(scope="session")
def harness_addons(harness_e2e: E2E, harness_cluster: KubeClient) -> E2E:
    outcome = _stage(harness_e2e.addons, "addons")
    if not outcome.ok:
        pytest.fail(f"the addons stage failed: {outcome.why}", pytrace=False)
    return harness_e2e


@pytest.fixture(scope="session")
def harness_synced(harness_addons: E2E) -> E2E:
    synced = harness_addons.applications_synced()
    if not synced.ok:
        pytest.fail(f"Argo CD did not sync gitops/: {synced.why}", pytrace=False)
    return harness_addons


def _stage(action: Callable[[], StageOutcome], name: str) -> StageOutcome:
    try:
        return action()
    except HarnessError as exc:
        pytest.fail(f"the {name} stage failed: {exc}", pytrace=False)
