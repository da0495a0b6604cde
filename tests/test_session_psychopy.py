"""A real-time simulated session with the PsychoPy renderer on a (virtual) projector screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from rig.core.config import DisplayConfig, load_config
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Flash, Flow
from stimuli.protocol import Protocol, condition, step

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")


def test_psychopy_session_logs_real_flips_at_60_hz(tmp_path: Path, check_session) -> None:
    from stimuli.render._psychopy import xvfb_display

    rig = load_config()
    rig = rig.model_copy(
        update={"display": DisplayConfig(backend="psychopy", size_px=(400, 300), refresh_hz=60)}
    )
    proto = Protocol(
        name="projector",
        conditions=[
            condition("flow", step(Flow(gain=4.0), 3.0), seconds=3.0),
            condition("flash", step(Flash(period_s=1.0, on_s=0.5), 1.0), seconds=3.0),
        ],
    )
    with xvfb_display("1024x768x24"):
        engine = Engine(rig, proto, tmp_path, clock="realtime", seed=4)
        assert engine.run() is RunState.COMPLETE
    with h5py.File(engine.path, "r") as f:
        fr = read_table(f["stimulus/frames"])
        rows = f["stimuli_and_ephys"][...]
        dropped = int(f.attrs["frames_dropped"])
    flips = fr["flip_sample"]
    seconds = rows.shape[0] / 6000
    # frames were really flipped, at about 60 Hz over the whole run
    assert len(flips) >= 0.9 * 60 * (seconds - 1.0)
    assert abs(np.median(np.diff(flips)) - 100) <= 5
    assert dropped <= 0.05 * len(flips)
    # the flash condition shows light and dark frames, and row 6 carries their luminance
    flash = fr["condition"] == 1
    assert set(np.round(fr["luminance"][flash], 2)) == {0.0, 1.0}
    assert check_session(engine.path).returncode == 0
