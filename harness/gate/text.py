"""Reading input files: UTF-8 text, or one InputError line naming the file and line."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputError


def read_text(path: Path) -> str:
    """UTF-8 text of a file; anything else is one InputError line naming the file and the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
