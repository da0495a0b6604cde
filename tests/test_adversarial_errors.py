"""No traceback reaches a user (issue 24, item 6): signals, unwritable paths, hostile inputs.

Reproducers: SIGHUP to a run's process group killed multiprocessing's resource tracker,
and its successor printed a ``KeyError: '/mp-...'`` traceback per shared name (and the
dead one's semaphores stayed in /dev/shm); ``export ... /proc/x.nwb``, ``recover --salvage
/proc/x.h5``, ``check --out /proc/x`` and a 260-character ``--fish-id`` gave tracebacks;
a replay ``trace_file = "/dev/zero"`` made ``plan`` read forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from rig.cli import main

PROTOCOL = """
name = "hup"
[[conditions]]
name = "flow"
seconds = 20
[[conditions.steps]]
duration_s = 5
stimulus = { kind = "flow", gain = 1.0, drift_mm_s = 10 }
"""


def zaprig(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, timeout=timeout
    )


def _rows(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int(f["stimuli_and_ephys"].shape[0])
    except (OSError, KeyError):
        return 0


def test_sighup_to_the_group_stops_like_sigterm_with_no_tracker_traceback(tmp_path: Path) -> None:
    proto = tmp_path / "hup.toml"
    proto.write_text(PROTOCOL)
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "run", str(proto), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not (
            any(out.glob("*.h5")) and _rows(next(out.glob("*.h5"))) >= 6000
        ):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGHUP)  # the terminal went away: the whole group gets it
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGHUP, stderr
    assert "Traceback" not in stderr and "KeyError" not in stderr, stderr
    # the tracker lived through it: it was never relaunched, so no name could leak
    assert "resource_tracker" not in stderr, stderr
    with h5py.File(next(out.glob("*.h5")), "r") as f:
        assert f.attrs["status"] == "aborted"
    assert "session aborted" in stdout


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s")
    r = zaprig("run", "--clock", "virtual", "--time-scale", "0.005", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return next(out.glob("*.h5"))


@pytest.mark.parametrize(
    "args",
    [
        ("export", "{s}", "--format", "nwb", "/proc/x.nwb"),
        ("export", "{s}", "--format", "zapbench", "/proc/x"),
        ("recover", "--salvage", "/proc/x.h5", "{s}"),
        ("check", "--out", "/proc/x"),
        ("report", "{s}", "--out", "/proc/x"),
        ("run", "--out", "/proc/x", "--quiet"),
    ],
)
def test_an_unwritable_output_path_is_refused_in_one_line(
    session: Path, capsys: pytest.CaptureFixture[str], args: tuple[str]
) -> None:
    assert main([a.format(s=session) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zaprig: error:") and err.count("\n") == 1, err
    assert "/proc" in err and "give a path in a folder you can write" in err


def test_a_260_character_fish_id_and_a_negative_age_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--fish-id", "f" * 260, "--out", str(tmp_path), "--quiet"]) == 2
    assert "--fish-id: 260 characters; at most 100" in capsys.readouterr().err
    assert main(["run", "--age-dpf", "-5", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--age-dpf -5" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.h5"))


def _replay(tmp_path: Path, trace: str) -> subprocess.CompletedProcess[str]:
    """``zaprig plan`` in a process of its own: before, /dev/zero made it read forever."""
    proto = tmp_path / "replay.toml"
    proto.write_text(
        'name = "r"\n[[conditions]]\nname = "o"\nseconds = 2\n[[conditions.steps]]\n'
        f"duration_s = 1\nstimulus = {{ kind = 'replay', trace_file = '{trace}' }}\n"
    )
    return zaprig("plan", str(proto), timeout=20)


def test_a_device_file_as_a_trace_is_refused_by_type_before_it_is_read(tmp_path: Path) -> None:
    r = _replay(tmp_path, "/dev/zero")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "/dev/zero: is not a regular file" in r.stderr


def test_trace_files_of_one_value_and_of_complex_numbers(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("2.5\n")
    r = _replay(tmp_path, str(tmp_path / "one.txt"))
    assert r.returncode == 0, r.stderr  # one value: a trace of one sample, not shape ()
    np.save(tmp_path / "c.npy", np.array([1 + 2j, 3.0]))
    r = _replay(tmp_path, str(tmp_path / "c.npy"))
    assert r.returncode == 2 and "holds complex numbers" in r.stderr
    assert "ComplexWarning" not in r.stderr
