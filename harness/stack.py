"""Placeholder: the harness-core engineer replaces this module (demo, up, verify, down)."""

from typing import Any


def register(subparsers: Any) -> None:
    """No subcommands yet."""
