"""Stopping a run from outside (issue 13, findings 2 and 3): real processes, real signals.

Each case starts ``zaprig run`` in its own process group, as a terminal or a
service manager would, signals it at one of three moments, and checks that the
run ends ``aborted`` quickly, with consistent tables, the stop logged, the CLI
and the file agreeing, and no process of the run left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

PROTOCOL = """
name = "tiny"
[[conditions]]
name = "flow"
seconds = 40
[[conditions.steps]]
duration_s = 5
stimulus = { kind = "flow", gain = 1.0, drift_mm_s = 10 }
[[conditions]]
name = "flash"
seconds = 40
[[conditions.steps]]
duration_s = 4
stimulus = { kind = "flash", period_s = 4, on_s = 2 }
"""

KINDS = {
    "ctrl-c to the group": (signal.SIGINT, True),
    "SIGTERM to the group": (signal.SIGTERM, True),
    "SIGHUP to the process": (signal.SIGHUP, False),
}


def _rows(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int(f["stimuli_and_ephys"].shape[0])
    except (OSError, KeyError):
        return 0


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("moment", ["arming", "running", "twice"])
@pytest.mark.parametrize("clock", ["virtual", "realtime"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_signal_ends_the_run_aborted_and_consistent(
    tmp_path: Path, kind: str, clock: str, moment: str
) -> None:
    sig, group = KINDS[kind]
    proto = tmp_path / "tiny.toml"
    proto.write_text(PROTOCOL)
    out = tmp_path / "sessions"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "run", str(proto), "--clock", clock, "--out", str(out),
         "--quiet", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait(lambda: any(out.glob("*.h5")), 60), "no session file appeared"
        path = next(out.glob("*.h5"))
        if moment != "arming":
            assert _wait(lambda: _rows(path) >= 6000, 60), "no data reached the disk"
        send = (lambda: os.killpg(proc.pid, sig)) if group else (lambda: os.kill(proc.pid, sig))
        t0 = time.monotonic()
        send()
        if moment == "twice":
            time.sleep(0.05)
            send()
        stdout, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert took < 10, f"took {took:.1f} s to stop"
    assert _wait(lambda: _group_gone(proc.pid), 5), "a process of the run outlived it"
    assert "Traceback" not in stderr, stderr
    assert "session aborted" in stdout, (stdout, stderr)
    assert proc.returncode == 128 + sig  # as a shell reports a signal: 130 after Ctrl-C
    if moment == "twice":
        assert "again" in stderr and "aborted" in stderr, stderr
    with h5py.File(path, "r") as f:  # a plain open: the file was closed properly
        assert f.attrs["status"] == "aborted"
        for table in ("stimulus/frames", "protocol/conditions", "behavior/bouts", "events"):
            lengths = {f[table][c].shape[0] for c in f[table]}
            assert len(lengths) == 1, (table, lengths)
        if moment != "arming":  # data on disk: the first condition had started
            assert len(f["protocol/conditions/name"]) >= 1
        messages = list(f["events/message"].asstr()[:])
    assert any(m.startswith("run aborted: stopped by") for m in messages), messages
    assert not list(out.glob("*.lock"))
