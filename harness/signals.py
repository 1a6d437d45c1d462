"""Signals a harness process turns into Ctrl-C, so that every way of stopping it runs the same clean-up."""

from __future__ import annotations

import signal


def interrupt_on_stop_signals() -> None:
    """Treat SIGTERM like Ctrl-C: a CI runner cancelling a job, or `kill`, gets the same clean-up (every process
    of the run stopped, nothing left) instead of an exit that skips it. Only where nobody else handles it.

    And take SIGINT back where it was inherited ignored: a background job of a non-interactive shell (`make test &`
    in a script, a runner without job control) starts with SIGINT ignored, and so would Terraform and every process
    started from here, so Ctrl-C or `kill -INT` would leave the run applying and running."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # exec'd children then start with the default
