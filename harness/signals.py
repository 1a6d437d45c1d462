"""Signals a harness process turns into Ctrl-C, so that every way of stopping it runs the same clean-up."""

from __future__ import annotations

import signal


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C: a CI runner cancelling a job, or `kill`, gets the same clean-up (every process
    of the run stopped, nothing left) instead of an exit that skips it. Only where nobody else handles it."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)
