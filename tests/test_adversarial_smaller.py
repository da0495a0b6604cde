"""The smaller points of issue 24 (item 7), each with its reproducer.

Three runs with one --fish-id into one folder at once; ``from_condition`` naming its own
condition; a spurious ``steps`` line on every protocol error; Python protocol errors
without a line number; a protocol script that forks a daemon (reported as a timeout);
an all-zero label volume (no word) and label -1 (traced as a neuron); the exit code after
one or three Ctrl-C (1, or 130).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from rig.cli import main
from rig.readout import LabelIndex


def zaprig(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, timeout=timeout
    )


def test_three_runs_with_one_fish_id_into_one_folder_at_once_all_record(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rig",
                "run",
                "--clock",
                "virtual",
                "--time-scale",
                "0.003",
                "--quiet",
                "--fish-id",
                "same",
                "--out",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "pick another file name" not in err
    files = sorted(tmp_path.glob("*same*.h5"))
    assert len(files) == 3, files
    assert not list(tmp_path.glob("*.lock"))
    for f in files:
        with h5py.File(f, "r") as h:
            assert h.attrs["status"] == "complete"


def _plan(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    """``zaprig plan`` in-process (a Python protocol runs in a child of its own anyway)."""
    p = tmp_path / name
    p.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", str(p)])
    return subprocess.CompletedProcess(["plan"], code, out.getvalue(), err.getvalue())


STEP = "[[conditions]]\nname = '{n}'\nseconds = 2\n[[conditions.steps]]\nduration_s = 1\n"


def test_from_condition_naming_itself_is_not_suggested_as_the_fix(tmp_path: Path) -> None:
    r = _plan(tmp_path, "p.toml", "name = 'r'\n" + STEP.format(n="replay")
              + "stimulus = { kind = 'replay', from_condition = 'replay' }\n")  # fmt: skip
    assert r.returncode == 2 and "cannot replay itself" in r.stderr
    assert "did you mean 'replay'" not in r.stderr


def test_a_protocol_error_has_no_spurious_steps_line(tmp_path: Path) -> None:
    r = _plan(tmp_path, "p.toml", "name = 'r'\n" + STEP.format(n="a")
              + "stimulus = { kind = 'flow', gain = 'x' }\n")  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "gain" in lines[1], lines
    assert "should have at least 1 item" not in r.stderr


def test_python_protocol_errors_give_the_line(tmp_path: Path) -> None:
    r = _plan(tmp_path, "p.py", "from stimuli.protocol import *\n\nx = undefined_name\n")
    assert r.returncode == 2 and "line 3: the script failed: NameError" in r.stderr
    r = _plan(
        tmp_path,
        "q.py",
        "from stimuli.protocol import *\n\n\nPROTOCOL = Protocol(name='x', conditions=[])\n",
    )
    assert r.returncode == 2 and "line 4: conditions" in r.stderr
    r = _plan(tmp_path, "s.py", "x = (\n")
    assert r.returncode == 2 and "line 1: the script is not valid Python" in r.stderr


def test_a_protocol_that_forks_a_daemon_is_named_at_once_not_a_timeout(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = _plan(tmp_path, "fork.py", (
        "import os, time\nfrom stimuli.builtin import dataset_protocol\n"
        "if os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"
        "PROTOCOL = dataset_protocol()\n"
    ))  # fmt: skip
    assert time.monotonic() - t0 < 20
    assert r.returncode == 2 and "left a process running" in r.stderr, r.stderr
    assert "did not finish within" not in r.stderr


def test_an_all_zero_label_volume_warns_and_label_minus_1_is_background(tmp_path: Path) -> None:
    labels = np.zeros((8, 80, 128), np.int32)
    labels[:, :10, :10] = -1  # "unlabelled" in some segmentations
    labels[2, 40:44, 60:64] = 7
    index = LabelIndex.from_labels(labels)
    assert index.ids.tolist() == [7]
    np.save(tmp_path / "zero.npy", np.zeros((8, 80, 128), np.int32))
    r = zaprig("run", "--clock", "virtual", "--time-scale", "0.003", "--quiet", "--out",
               str(tmp_path / "s"), "--labels", str(tmp_path / "zero.npy"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    with h5py.File(next((tmp_path / "s").glob("*.h5")), "r") as f:
        messages = [m for m in f["events/message"].asstr()[:] if "holds no label above 0" in m]
    assert len(messages) == 1


def test_the_exit_code_after_ctrl_c_is_130_after_one_or_three(tmp_path: Path) -> None:
    proto = tmp_path / "p.toml"
    proto.write_text("name = 'r'\n" + STEP.format(n="a").replace("seconds = 2", "seconds = 30")
                     + "stimulus = { kind = 'flow', gain = 1.0 }\n")  # fmt: skip
    for presses in (1, 3):
        out = tmp_path / f"s{presses}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "rig", "run", str(proto), "--out", str(out), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            end = time.monotonic() + 60
            while time.monotonic() < end and not any(out.glob("*.h5")):
                time.sleep(0.05)
            time.sleep(1.0)
            for _ in range(presses):
                os.killpg(proc.pid, signal.SIGINT)
                time.sleep(0.05)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 130, (presses, err)
        assert "Traceback" not in err
