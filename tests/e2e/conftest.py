"""tests/e2e: the platform end to end on the plugin's fixtures (harness.plugin), on any target.

`pytest tests/e2e` runs on `local` when the toolchain is built (`make toolchain`), else on the emulator, where
what needs a Kubernetes API skips as not applicable with infra/targets.yaml's reason; `--harness-target aws`
(with E2E_AWS_ACCOUNT_ID) runs the same tests against a real account. The stages and judges are the ones
`harness e2e` runs (the plugin's `harness_e2e` fixture), so there is one implementation.
"""

from __future__ import annotations

import os

import pytest

from harness.targets import TARGET_ENV


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("harness_target") is None and not os.environ.get(TARGET_ENV):
        from harness.targets.local import unavailable

        config.option.harness_target = "local" if unavailable() is None else "emulator"
