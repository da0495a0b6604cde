"""kill -9 during a recording: the session file survives with everything up to the last flush."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py

from rig.cli import main
from rig.core.lock import live_owner
from rig.session import summarise

FS = 6000


def start_run(out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rig", "run", "--time-scale", "0.05", "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: engine + writer
    )


def rows_in(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int(f["stimuli_and_ephys"].shape[0])
    except OSError:
        return 0


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def record_then_kill(tmp_path: Path, whole_group: bool) -> tuple[Path, int, float]:
    proc = start_run(tmp_path)
    try:
        wait_for(lambda: list(tmp_path.glob("*.h5")), what="the session file")
        path = next(tmp_path.glob("*.h5"))
        wait_for(lambda: rows_in(path) >= 3 * FS, what="3 s of data on disk")
        rows0, t0 = rows_in(path), time.monotonic()
        time.sleep(2.5)  # let the recording run on: the kill lands mid-flight
        t_kill = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    expected_at_kill = rows0 + (t_kill - t0) * FS
    return path, rows0, expected_at_kill


def test_kill_9_of_every_process_leaves_a_recording_file_that_recovers(tmp_path: Path) -> None:
    path, _, expected = record_then_kill(tmp_path, whole_group=True)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        assert f.attrs["status"] == "recording"
        rows = int(f["stimuli_and_ephys"].shape[0])
        assert f["volumes/raw"].shape[0] >= 2
    assert rows >= expected - 2 * FS  # at most 2 s lost
    # killpg returns before the kernel has torn the writer down (the engine's wait does not
    # cover its child): its lock on the file goes with its last open file, a moment later
    wait_for(lambda: live_owner(path) is None, timeout=10, what="the killed writer to be gone")
    s = summarise(path)
    assert s.interrupted
    assert main(["recover", str(path)]) == 0
    with h5py.File(path, "r") as f:  # a plain open works again
        assert f.attrs["status"] == "failed"
        assert f["stimuli_and_ephys"].shape[0] == rows


def test_kill_9_of_the_engine_lets_the_writer_close_the_file(tmp_path: Path) -> None:
    path, _, expected = record_then_kill(tmp_path, whole_group=False)

    def closed() -> bool:
        try:
            with h5py.File(path, "r") as f:
                return f.attrs["status"] == "failed"
        except OSError:
            return False

    wait_for(closed, timeout=20, what="the writer to close the file")
    with h5py.File(path, "r") as f:
        assert f["stimuli_and_ephys"].shape[0] >= expected - 2 * FS
        messages = [m.decode() for m in f["events/message"][...]]
    assert any("engine process died" in m for m in messages)


def test_a_killed_session_leaves_no_writer_behind(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    wait_for(lambda: list(tmp_path.glob("*.h5")), what="the session file")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    # the writer notices its parent is gone and exits; nothing keeps running in the group
    def group_gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(group_gone, timeout=20, what="the writer to exit")
