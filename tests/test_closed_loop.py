"""The closed loop in a simulated session: swims move the visual world, open loop does not;
high gain shortens bouts (the virtual fish's motor adaptation)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rig.core.config import load_config
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Flow
from stimuli.protocol import Protocol, condition, step


@pytest.fixture(scope="module")
def loop_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proto = Protocol(
        name="closed vs open",
        conditions=[
            condition("low gain", step(Flow(gain=2.0), 60.0), seconds=60.0),
            condition("high gain", step(Flow(gain=8.0, stim_id=1), 60.0), seconds=60.0),
            condition("open loop", step(Flow(closed_loop=False), 40.0), seconds=40.0),
        ],
    )
    engine = Engine(load_config(), proto, tmp_path_factory.mktemp("loop"), clock="virtual", seed=5)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


def _load(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return (
            f["stimuli_and_ephys"][:, 8],
            read_table(f["behavior/bouts"]),
            read_table(f["protocol/conditions"]),
        )


def test_each_closed_loop_bout_pushes_the_velocity_row_the_right_way(loop_session: Path) -> None:
    v, bouts, c = _load(loop_session)
    chunk, frame = 60, 100  # samples: one DAQ chunk, one display frame
    closed = (bouts["start_sample"] >= c["start_sample"][0]) & (
        bouts["start_sample"] < c["stop_sample"][1]
    )
    starts = bouts["start_sample"][closed]
    assert len(starts) >= 20
    # detection needs the onset's chunk plus the power window; the change must show one frame later
    after = v[starts + 2 * chunk + frame]
    before = v[starts]
    assert np.mean(after > before) >= 0.95


def test_open_loop_velocity_ignores_swims(loop_session: Path) -> None:
    v, bouts, c = _load(loop_session)
    a, b = c["start_sample"][2], c["stop_sample"][2]
    n_bouts = np.count_nonzero((bouts["start_sample"] >= a) & (bouts["start_sample"] < b))
    assert n_bouts >= 5
    assert np.all(v[a + 100 : b] == v[a + 100])


def test_bouts_are_shorter_under_high_gain(loop_session: Path) -> None:
    _, bouts, c = _load(loop_session)
    dur = (bouts["stop_sample"] - bouts["start_sample"]) / 6000.0

    def mean_in(k: int) -> float:
        sel = (bouts["start_sample"] >= c["start_sample"][k]) & (
            bouts["start_sample"] < c["stop_sample"][k]
        )
        return float(dur[sel].mean())

    assert mean_in(1) < 0.9 * mean_in(0)
