"""After a crash the file tells the truth (issue 24, item 3).

Reproducer: ``kill -9`` a run's whole process group during its second condition, then
``zaprig recover``. Before, the condition that was running had no row in
``/protocol/conditions`` (the engine writes a row when a condition ends), although row 4
of the stream says when it started, and ``ended_at`` was the time ``recover`` ran.
Now its row is rebuilt from row 4, ``ended_at`` is when the last sample on disk was
acquired and ``recovered_at`` says when ``recover`` ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np

from rig.cli import main
from rig.core.lock import live_owner

PROTOCOL = """
name = "two"
[[conditions]]
name = "first"
seconds = 2
[[conditions.steps]]
duration_s = 2
stimulus = { kind = "flow", gain = 1.0, drift_mm_s = 10 }
[[conditions]]
name = "second"
seconds = 30
[[conditions.steps]]
duration_s = 4
stimulus = { kind = "flash", period_s = 4, on_s = 2 }
"""


def _row4_max(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            s = f["stimuli_and_ephys"]
            return int(s[max(0, s.shape[0] - 600) :, 4].max()) if s.shape[0] else 0
    except (OSError, KeyError, ValueError):
        return 0


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _when(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_kill_9_in_the_second_condition_then_recover_gives_it_its_row(tmp_path: Path) -> None:
    proto = tmp_path / "two.toml"
    proto.write_text(PROTOCOL)
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "run", str(proto), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait(lambda: any(out.glob("*.h5")), 30)
        path = next(out.glob("*.h5"))
        # the second condition on disk (row 4 = 2), and a second more of it
        assert _wait(lambda: _row4_max(path) == 2, 40), "the second condition never started"
        time.sleep(1.0)
        killed_at = time.time()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _wait(lambda: live_owner(path) is None, 10)
    time.sleep(1.0)  # recover runs a moment later: ended_at must not be its time
    assert main(["recover", str(path)]) == 0
    with h5py.File(path, "r") as f:
        c = f["protocol/conditions"]
        index = c["index"][...].tolist()
        assert index == [0, 1], index
        assert c["name"][1].decode() == "second"
        row4 = f["stimuli_and_ephys"][:, 4]
        n = len(row4)
        first = int(np.flatnonzero(row4 == 2)[0])
        assert int(c["start_sample"][1]) == first == int(c["stop_sample"][0])
        assert int(c["stop_sample"][1]) == n
        starts = f["volumes/start_sample"][...]
        v = int(c["start_volume"][1])
        assert starts[v] <= first < (starts[v + 1] if v + 1 < len(starts) else n)
        assert 0 < int(c["stop_volume"][1]) - int(c["start_volume"][1]) <= len(starts)
        ended, recovered = _when(str(f.attrs["ended_at"])), _when(str(f.attrs["recovered_at"]))
        assert ended <= killed_at + 0.5  # the last sample on disk, not the recovery
        assert killed_at - ended < 3.0  # at most a flush interval or two lost
        assert recovered - ended >= 1.0
    assert main(["inspect", str(path)]) == 0
