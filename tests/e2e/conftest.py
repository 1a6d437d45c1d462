"""tests/e2e: the platform end to end on the plugin's fixtures (harness.plugin), on any target.

`pytest tests/e2e` runs on `local` when the toolchain is built (`make toolchain`), else on the emulator, where
what needs a Kubernetes API skips as not applicable with infra/targets.yaml's reason; `--harness-target aws`
(with E2E_AWS_ACCOUNT_ID) runs the same tests against a real account. The platform is one per session, so the
default changes only when this folder is all the session runs (`make test` runs it as a session of its own).
The stages and judges are the ones `harness e2e` runs (the plugin's `harness_e2e` fixture): one implementation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.targets import TARGET_ENV

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    chosen = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    only_here = all(path == HERE or HERE in path.parents for path in chosen)
    if only_here and config.getoption("harness_target") is None and not os.environ.get(TARGET_ENV):
        from harness.targets.local import unavailable

        config.option.harness_target = "local" if unavailable() is None else "emulator"
