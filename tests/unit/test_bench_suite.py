"""`harness bench suite`'s pure part: each pytest session's summary line, and whether a run counts."""

from __future__ import annotations

from harness.bench.suite import Timed, summaries

TWO_SESSIONS = """\
........................................................................ [ 99%]
=========================== short test summary info ============================
SKIPPED [1] tests/integration/test_local_nodes.py:1: kwok not built
================= 1181 passed, 12 skipped in 948.12s (0:15:48) =================
.venv/bin/python -m pytest tests/e2e
14 passed in 210.40s (0:03:30)
"""


def test_every_sessions_summary_line_is_read_in_order() -> None:
    assert summaries(TWO_SESSIONS) == (
        "1181 passed, 12 skipped in 948.12s (0:15:48)",
        "14 passed in 210.40s (0:03:30)",
    )
    assert summaries("make: *** [Makefile:24: test] Error 4\n") == ()


def test_a_run_counts_only_when_every_session_ran_without_failures() -> None:
    assert Timed("after", 500.0, summaries(TWO_SESSIONS)).ok
    failed = TWO_SESSIONS.replace("14 passed in", "1 failed, 13 passed in")
    assert not Timed("after", 500.0, summaries(failed)).ok
    errors = TWO_SESSIONS.replace("1181 passed,", "1180 passed, 1 error,")
    assert not Timed("after", 500.0, summaries(errors)).ok
    assert not Timed("after", 500.0, ()).ok  # pytest never got to its summary
