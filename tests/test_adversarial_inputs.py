"""Hostile and careless inputs (issue 13, findings 5, 6, 7 and 8): each gets a message, never a
traceback, a hang or a file left behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rig.engine
from rig.core.config import load_config
from rig.core.errors import ConfigError, ProtocolError
from stimuli.protocol import load_protocol


def zaprig(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def rig_with(tmp_path: Path, section: str, line: str) -> Path:
    """The simulated rig (every field at its default) with one bad line."""
    p = tmp_path / "rig.toml"
    p.write_text(f"[{section}]\n{line}\n")
    return p


@pytest.mark.parametrize(
    ("section", "line", "field"),
    [
        ("microscope", "voxel_size_um = [nan, -6.5, 0]", "microscope.voxel_size_um"),
        ("display", "size_px = [0, -5]", "display.size_px"),
        ("display", "px_per_mm = inf", "display.px_per_mm"),
        ("display", "fish_position_px = [nan, inf]", "display.fish_position_px"),
        ("laser", "power_mw = nan", "laser.power_mw"),
    ],
)
def test_non_finite_or_unphysical_config_values_are_refused(
    tmp_path: Path, section: str, line: str, field: str
) -> None:
    p = rig_with(tmp_path, section, line)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and field in str(e.value)


def flow_protocol(tmp_path: Path, replay: str, first: str = "gain") -> Path:
    p = tmp_path / "p.toml"
    p.write_text(
        f'name = "r"\n[[conditions]]\nname = "{first}"\nseconds = 2\n[[conditions.steps]]\n'
        'duration_s = 1\nstimulus = { kind = "flow", gain = 1.0 }\n'
        '[[conditions]]\nname = "replay"\nseconds = 2\n[[conditions.steps]]\n'
        f'duration_s = 1\nstimulus = {{ kind = "replay", {replay} }}\n'
    )
    return p


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e300"])
def test_replay_traces_must_be_finite_and_within_the_speed_limit(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ProtocolError, match="velocities_mm_s"):
        load_protocol(flow_protocol(tmp_path, f"velocities_mm_s = [1.0, {bad}]"))
    np.save(tmp_path / "t.npy", np.array([1.0, float(bad)]))
    with pytest.raises(ProtocolError, match=r"t\.npy"):
        load_protocol(flow_protocol(tmp_path, 'trace_file = "t.npy"'))


def test_a_2d_replay_trace_is_refused_not_flattened(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.ones((3, 4)))
    with pytest.raises(ProtocolError, match=r"shape \(3, 4\).*1-D"):
        load_protocol(flow_protocol(tmp_path, 'trace_file = "t.npy"'))


def test_from_condition_must_name_an_earlier_condition_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(
        ProtocolError, match=r"'gian' is not an earlier condition.*did you mean 'gain'"
    ):
        load_protocol(flow_protocol(tmp_path, 'from_condition = "gian"'))


@pytest.mark.parametrize("seed", ["-1", "18446744073709551616"])
def test_out_of_range_seeds_are_refused_and_leave_no_file(tmp_path: Path, seed: str) -> None:
    r = zaprig("run", "--seed", seed, "--clock", "virtual", "--out", str(tmp_path), "--quiet")
    assert r.returncode == 2 and "between 0 and 4294967295" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_fish_id_with_a_slash_is_sanitised_into_the_file_name(tmp_path: Path) -> None:
    from rig.engine import Engine

    e = Engine(
        load_config(), load_protocol(None), tmp_path, clock="virtual", fish={"fish_id": "a/../b c"}
    )
    name = e.setup.session_path().name
    assert "/" not in name and name.endswith("_a_.._b_c.h5"), name


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["plan", "--config", "{tmp}"], "is a folder"),
        (["plan", "{tmp}/d.toml"], "is a folder"),
        (["plan", "--png", "/proc/x.png"], "cannot save the timeline"),
        (["plan", "--png", "{tmp}"], "is a folder"),
        (["run", "--out", "/proc/self", "--clock", "virtual", "--quiet"], "cannot write"),
    ],
)
def test_cli_mistakes_get_messages_not_tracebacks(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "d.toml").mkdir()
    r = zaprig(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr, r.stderr


SCRIPTS = {
    "exit": ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    "raise": ("def build():\n    raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "hang": ("while True:\n    pass\n", "did not finish within"),
    "crash": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "crashed (SIGSEGV)"),
    "patch": ("import rig.engine\nrig.engine.Engine.run = None\n", "define PROTOCOL"),
}


@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_protocol_code_that_exits_raises_hangs_or_crashes_is_a_protocol_error(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, says = SCRIPTS[kind]
    p = tmp_path / f"{kind}.py"
    p.write_text(code)
    monkeypatch.setattr("stimuli._script.SCRIPT_TIMEOUT_S", 3.0)
    from stimuli import _script

    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as e:
        load_protocol(p) if kind != "hang" else _script.run_protocol_script(p, timeout_s=3.0)
    assert time.monotonic() - t0 < 10
    assert str(p) in str(e.value) and says in str(e.value), str(e.value)
    assert callable(rig.engine.Engine.run)  # the script could not reach into this process


def test_sys_exit_in_a_protocol_makes_run_fail_with_a_message(tmp_path: Path) -> None:
    p = tmp_path / "exit.py"
    p.write_text("import sys\nsys.exit(0)\n")
    r = zaprig("run", str(p), "--out", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 2 and "sys.exit(0)" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").iterdir())
