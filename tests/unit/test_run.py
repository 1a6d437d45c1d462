"""Runs: ids, directories, tags and metadata that another shell can load."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.run import EXPIRES_TAG, RUN_ID_TAG, create_run, load_run, new_run_id, validate_run_id


def test_new_run_ids_are_valid_and_dated() -> None:
    run_id = new_run_id(datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc))
    assert run_id.startswith("r20260102-0304-") and validate_run_id(run_id) == run_id


@pytest.mark.parametrize("bad", ["", "ab", "UPPER", "has space", "x" * 40, "-leading"])
def test_bad_run_ids_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="lowercase letters, digits and hyphens"):
        validate_run_id(bad)


def test_a_run_round_trips_with_its_settings(tmp_path: Path) -> None:
    run = create_run("emulator", "r-round", base=tmp_path, max_hours=1)
    run.settings["emulator"] = {"pid": 1}
    run.save()
    again = load_run("r-round", tmp_path)
    assert again.settings == {"emulator": {"pid": 1}} and again.dir == tmp_path / "r-round"
    assert again.tags[RUN_ID_TAG] == "r-round" and again.tags[EXPIRES_TAG] == run.expires_at
    assert create_run("emulator", "r-round", base=tmp_path).created_at == run.created_at


def test_a_save_replaces_run_json_whole_so_a_reader_never_sees_it_half_written(tmp_path: Path) -> None:
    """`harness down` from another shell (or a test) may read run.json while the run saves it: the new file is
    written apart and renamed over the old, so an open reader keeps the whole old one (a write in place would
    truncate it under the reader: the make-test race that read '')."""
    run = create_run("local", "r-atomic", base=tmp_path)
    path = run.path("run.json")
    with path.open(encoding="utf-8") as reader:
        run.settings["processes"] = [{"name": "etcd"}]
        run.save()
        assert '"processes"' not in reader.read()  # the whole old file, untouched
    assert load_run("r-atomic", tmp_path).settings["processes"] == [{"name": "etcd"}]
    assert sorted(p.name for p in run.dir.iterdir()) == ["run.json"]


def test_missing_and_corrupt_runs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run 'r-gone'"):
        load_run("r-gone", tmp_path)
    (tmp_path / "r-bad").mkdir()
    (tmp_path / "r-bad" / "run.json").write_text("{nope")
    with pytest.raises(InputError, match="unreadable run metadata"):
        load_run("r-bad", tmp_path)
