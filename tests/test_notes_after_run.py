"""A note added to a closed session keeps every /events column the same length.

Before, the note wrote 4 of the table's 6 columns: after one note `zaprig inspect`
ended in a ValueError and the contract checker refused the file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from gui._notes import append_note
from rig.core.layout import append_columns


def test_a_note_after_the_run_keeps_the_events_table_whole(
    short_session: Path,
    tmp_path: Path,
    check_session: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    path = tmp_path / "noted.h5"
    shutil.copy(short_session, path)
    append_note(path, "the fish moved at the end")
    with h5py.File(path, "r") as f:
        lengths = {name: f["events"][name].shape[0] for name in f["events"]}
        assert len(set(lengths.values())) == 1, lengths
        assert f["events/source"][-1].decode() == "user"
        assert f["events/severity"][-1].decode() == "info"
    r = subprocess.run(
        [sys.executable, "-m", "rig", "inspect", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert check_session(path).returncode == 0


def test_the_appender_refuses_rows_that_leave_a_column_out(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "t.h5", "w") as f:
        g = f.create_group("events")
        for name in ("sample", "kind"):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8")
        with pytest.raises(ValueError, match="kind"):
            append_columns(g, {"sample": __import__("numpy").array([1])})
        assert g["sample"].shape == (0,)
