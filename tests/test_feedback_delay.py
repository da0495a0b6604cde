"""A closed-loop stimulus's added feedback delay (Portugues & Engert 2011's experiment, issue 26):
validated, logged per frame, and seen by the photodiode as a later answer to each swim."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rig.cli import main
from rig.core.config import load_config
from rig.engine import Engine, RunState
from rig.session.light import light_timing
from stimuli.closed_loop import SwimDelay, SwimInput
from stimuli.library import Flow
from stimuli.protocol import Protocol, condition, step

DELAY_MS = 100.0


def _session(tmp_path: Path, delay_ms: float) -> Path:
    proto = Protocol(
        name=f"flow, {delay_ms:g} ms delay",
        conditions=[
            condition("gain", step(Flow(gain=4.0, feedback_delay_ms=delay_ms), 40.0), seconds=40.0),
        ],
    )
    engine = Engine(load_config(), proto, tmp_path / f"d{delay_ms:g}", clock="virtual", seed=7)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("delay")
    return _session(tmp, 0.0), _session(tmp, DELAY_MS)


def test_added_delay_moves_swim_onset_to_light_by_the_delay(sessions: tuple[Path, Path]) -> None:
    p50 = []
    for path in sessions:
        with h5py.File(path, "r") as f:
            t = light_timing(f)
            refresh = t.refresh_hz
        assert t.measured and t.onset_to_light_ms is not None
        assert len(t.onset_to_light_ms) >= 15
        p50.append(float(np.median(t.onset_to_light_ms)))
    frame_ms = 1e3 / refresh
    assert abs(p50[1] - p50[0] - DELAY_MS) <= frame_ms, p50


def test_the_delay_is_logged_with_every_frame(sessions: tuple[Path, Path]) -> None:
    for path, want in zip(sessions, (0.0, DELAY_MS), strict=True):
        with h5py.File(path, "r") as f:
            fr = f["stimulus/frames"]
            delay = fr["feedback_delay_ms"][...]
            cond = fr["condition"][...]
        assert (delay[cond == 0] == want).all()
        assert (delay[cond < 0] == 0).all()


def test_the_delay_line_answers_a_swim_exactly_the_delay_later() -> None:
    line, swim = SwimDelay(), SwimInput(True, 2.0, 2.0)
    got = [line(swim if s == 60 else SwimInput(False, 0, 0), s, 600) for s in range(60, 1300, 60)]
    assert [i for i, g in enumerate(got) if g.swimming] == [10]  # 600 samples = 10 chunks later
    line.reset()
    assert line(swim, 60, 0) is swim  # no delay, nothing queued: the swim itself


@pytest.mark.parametrize("value", ["-5", "5000"])
def test_a_delay_out_of_range_is_refused_naming_the_field(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "delay.toml"
    toml.write_text(
        'name = "d"\n[[conditions]]\nname = "gain"\nseconds = 10\n[[conditions.steps]]\n'
        f'duration_s = 10\nstimulus = {{ kind = "flow", feedback_delay_ms = {value} }}\n'
    )
    assert main(["plan", str(toml)]) == 2
    err = capsys.readouterr().err
    assert "feedback_delay_ms" in err and str(toml) in err
