"""Placeholder: the gate engineer replaces this module (check)."""

from typing import Any


def register(subparsers: Any) -> None:
    """No subcommands yet."""
