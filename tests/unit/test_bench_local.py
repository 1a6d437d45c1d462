"""`harness bench local`'s pure parts: the memory of a run's process groups, and the first-sync judgement."""

from __future__ import annotations

import subprocess
import sys
import time

from harness.bench.local import PeakMemory, group_rss_kib, synced
from harness.results import Status

HOLD_64_MIB = "import time; block = bytearray(64 * 1024 * 1024); time.sleep(60)"


def test_the_memory_of_a_process_group_counts_its_members_and_nothing_else() -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_64_MIB], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while group_rss_kib([holder.pid]) < 64 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_rss_kib([holder.pid]) >= 64 * 1024
        with PeakMemory(lambda: [holder.pid]) as peak:
            time.sleep(1.2)
        assert peak.peak_kib >= 64 * 1024
    finally:
        holder.kill()
        holder.wait()
    assert group_rss_kib([holder.pid]) == 0  # gone: nothing of it is counted


def test_first_sync_waits_for_every_expected_application() -> None:
    def app(name: str, sync: str) -> dict[str, object]:
        return {"metadata": {"name": name}, "status": {"sync": {"status": sync}}}

    expected = ("bootstrap", "game-2048-in-cluster")
    assert synced([app("bootstrap", "Synced"), app("game-2048-in-cluster", "Synced")], expected).status is Status.PASS
    waiting = synced([app("bootstrap", "Synced"), app("game-2048-in-cluster", "OutOfSync")], expected)
    assert waiting.status is Status.PENDING and "game-2048-in-cluster" in waiting.why
    assert synced([app("bootstrap", "Synced")], expected).status is Status.PENDING
