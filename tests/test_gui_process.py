"""The engine runs in its own process when started from the app: the app's death (SIGKILL,
mid-session) does not stop the recording badly. The session ends ``stopped`` (or
``complete``), never ``failed``, and the file passes the session contract's check. While
it runs, the window's thread stays off the CPU the engine's real-time lanes hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import psutil
import pytest

from gui._engine_child import PARENT_GONE
from rig.core.lock import lock_path
from rig.lanes import cpu_split
from rig.session import read_table

ROOT = Path(__file__).resolve().parents[1]
CHECK = Path("/work/shared/tools/check_session.py")

pytest.importorskip("PyQt6")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_killing_the_app_mid_session_ends_the_recording_stopped_and_whole(tmp_path: Path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_gui_kill_app.py"), str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine_pid = -1
    try:
        assert app.stdout is not None
        line = app.stdout.readline()  # blocks until the session runs (or the app exits)
        assert line.startswith("RUNNING "), f"the app did not start a session: {line!r}"
        _, path_text, pid_text, cpus_text = line.split()
        path, engine_pid = Path(path_text), int(pid_text)
        assert engine_pid != app.pid and psutil.pid_exists(engine_pid)
        # a real-time session: the window's thread stays off the engine's real-time CPU
        split = cpu_split(os.sched_getaffinity(0))
        window_cpus = {int(c) for c in cpus_text.split(",")}
        assert window_cpus == (split[1] if split else os.sched_getaffinity(0))
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        # the engine notices within 0.5 s, stops at the next chunk and closes the file
        deadline = time.monotonic() + 60
        while not (_gone(engine_pid) and not lock_path(path).exists()):
            assert time.monotonic() < deadline, "the engine process did not end after the app"
            time.sleep(0.1)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
        if engine_pid > 0 and not _gone(engine_pid):
            os.kill(engine_pid, signal.SIGKILL)  # only if the assertions above already failed

    with h5py.File(path, "r") as f:
        status = str(f.attrs["status"])
        ev = read_table(f["events"])
        n_rows = f["stimuli_and_ephys"].shape[0]
        n_volumes = f["volumes/raw"].shape[0]
    assert status in ("stopped", "complete"), status
    assert n_rows > 0 and n_volumes >= 1
    messages = [str(m) for m in ev["message"]]
    if status == "stopped":
        assert any(PARENT_GONE in m for m in messages), messages[-5:]
    assert "fault" not in {str(k) for k in ev["kind"]}
    if CHECK.exists():
        out = subprocess.run(
            [sys.executable, str(CHECK), str(path)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stdout[-2000:]
