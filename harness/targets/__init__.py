"""Standing a target up and tearing it down: the platform root on the emulator or a real account
(`harness up|verify|down|demo`), and the controller-aware teardown of a whole run."""

from __future__ import annotations

import os

from harness.project import TARGETS

__all__ = ["TARGETS", "TARGET_ENV", "default_target"]
TARGET_ENV = "HARNESS_TARGET"


def default_target() -> str:
    return os.environ.get(TARGET_ENV) or "emulator"
