"""Placeholder: the e2e engineer replaces this module (e2e, sweep)."""

from typing import Any


def register(subparsers: Any) -> None:
    """No subcommands yet."""
