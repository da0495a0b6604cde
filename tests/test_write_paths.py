"""Every path that writes a session file leaves each table with columns of one length.

A file is written by the writer process during a run (a note during the run goes
through it), and changed after it by the one appender (rig/session/appender.py): a note
after the run, ``zaprig recover`` after a kill -9, and ``zaprig recover --salvage`` of a
truncated copy. Each resulting file is checked by the project's contract checker
(shared/tools/check_session.py: among its checks, every table's columns have one length),
and every group of columns in it is measured here with plain h5py as well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from gui._notes import AFTER_RUN, append_note
from rig.cli import main
from rig.core.events import Event
from rig.core.lock import live_owner
from rig.session.appender import SessionAppender

FS = 6000
Checker = Callable[..., subprocess.CompletedProcess[str]]


def _unequal_tables(path: Path) -> dict[str, dict[str, int]]:
    """Every group of 1-D datasets (a table) whose columns differ in length."""
    out: dict[str, dict[str, int]] = {}

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Group):
            return
        cols = {k: v.shape[0] for k, v in obj.items() if isinstance(v, h5py.Dataset)
                and len(v.shape) == 1 and v.maxshape == (None,)}  # fmt: skip
        if len(cols) > 1 and len(set(cols.values())) > 1:
            out[name] = cols

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _checked(path: Path, check_session: Checker) -> None:
    assert _unequal_tables(path) == {}
    r = check_session(path)
    assert r.returncode == 0, r.stdout


def _messages(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return [m.decode() for m in f["events/message"][...]]


@pytest.fixture(scope="module")
def noted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run (the writer process) with a note made while it ran."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    engine = Engine(
        load_config(), dataset_protocol().scaled(0.01), tmp_path_factory.mktemp("run"),
        clock="virtual", seed=11,
    )  # fmt: skip
    engine.add_note("a note during the run")  # logged by the writer at the next batch
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


def test_the_writer_and_a_note_during_the_run(noted_run: Path, check_session: Checker) -> None:
    assert "a note during the run" in _messages(noted_run)
    _checked(noted_run, check_session)


def test_a_note_after_the_run(noted_run: Path, tmp_path: Path, check_session: Checker) -> None:
    path = tmp_path / "after.h5"
    path.write_bytes(noted_run.read_bytes())
    append_note(path, "the fish moved at the end")
    assert _messages(path)[-1] == AFTER_RUN + "the fish moved at the end"
    _checked(path, check_session)


def test_salvage_of_a_truncated_copy(
    noted_run: Path, tmp_path: Path, check_session: Checker
) -> None:
    data = noted_run.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) * 3 // 5])
    out = tmp_path / "salvaged.h5"
    assert main(["recover", "--salvage", str(out), str(cut)]) == 0
    assert "salvaged from" in _messages(out)[-1]
    _checked(out, check_session)


def test_recover_after_kill_9(tmp_path: Path, check_session: Checker) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "run", "--time-scale", "0.05", "--out", str(tmp_path),
         "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            files = list(tmp_path.glob("*.h5"))
            if files and _rows(files[0]) >= 3 * FS:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the run wrote no 3 s of data in 120 s")
        os.killpg(proc.pid, signal.SIGKILL)  # engine and writer, mid-flight
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    path = files[0]
    deadline = time.monotonic() + 10
    while live_owner(path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # the killed writer's lock goes with its last open file
    assert main(["recover", str(path)]) == 0
    assert _messages(path)[-1].startswith("recovered after an interruption")
    _checked(path, check_session)
    # and a note after the recovered run
    append_note(path, "recovered, then noted")
    _checked(path, check_session)


def _rows(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int(f["stimuli_and_ephys"].shape[0])
    except OSError:
        return 0


def test_the_appender_refuses_rows_that_leave_a_column_out(noted_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.h5"
    path.write_bytes(noted_run.read_bytes())
    with SessionAppender.open(path) as a:
        n = a.file["events/sample"].shape[0]
        four = {"sample": np.array([1]), "wall_time": np.array([0.0]),
                "kind": np.array(["note"], object), "message": np.array(["x"], object)}  # fmt: skip
        with pytest.raises(ValueError, match="missing severity, source"):
            a.append("events", four)
        with pytest.raises(ValueError, match="not a table"):
            a.append("live/labels", four)
        assert a.append_events([Event(1, 0.0, "note", "whole", "user")]) == 1
    assert _unequal_tables(path) == {}
    with h5py.File(path, "r") as f:
        assert f["events/sample"].shape[0] == n + 1


def test_salvage_mends_a_file_left_by_the_old_notes_bug(
    noted_run: Path, tmp_path: Path, check_session: Checker
) -> None:
    """A note the old GUI appended wrote 4 of the 6 event columns: salvage gives the file
    back whole, the other events keeping their sources, the note's the engine's."""
    broken = tmp_path / "broken.h5"
    broken.write_bytes(noted_run.read_bytes())
    with h5py.File(broken, "a") as f:
        ev = f["events"]
        n = ev["sample"].shape[0]
        sources = [s.decode() for s in ev["source"][...]]
        for name, value in (("sample", 5), ("wall_time", 1.0), ("kind", "note"),
                            ("message", "the old bug's note")):  # fmt: skip
            ev[name].resize((n + 1,))
            ev[name][n] = value
    assert "events" in _unequal_tables(broken)
    out = tmp_path / "mended.h5"
    assert main(["recover", "--salvage", str(out), str(broken)]) == 0
    _checked(out, check_session)
    with h5py.File(out, "r") as f:
        got = [s.decode() for s in f["events/source"][...]]
        severity = [s.decode() for s in f["events/severity"][...]]
        messages = [m.decode() for m in f["events/message"][...]]
    assert got[:n] == sources
    assert messages[n] == "the old bug's note" and got[n] == "engine" and severity[n] == "info"
