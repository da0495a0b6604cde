"""The virtual fish swims more under forward flow than in the dark, and the file says so."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from rig.core.config import load_config
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Dark, Flow
from stimuli.protocol import Protocol, condition, step


def test_bouts_more_often_under_forward_flow_than_in_the_dark(tmp_path: Path) -> None:
    proto = Protocol(
        name="flow vs dark",
        conditions=[
            condition("flow", step(Flow(gain=2.0, closed_loop=False), 40.0), seconds=40.0),
            condition("dark", step(Dark(), 40.0), seconds=40.0),
        ],
    )
    engine = Engine(load_config(), proto, tmp_path, clock="virtual", seed=11)
    assert engine.run() is RunState.COMPLETE
    with h5py.File(engine.path, "r") as f:
        bouts = read_table(f["behavior/bouts"])
        c = read_table(f["protocol/conditions"])
        tail = f["stimuli_and_ephys"][:, :2]
    starts = bouts["start_sample"]
    in_flow = np.count_nonzero((starts >= c["start_sample"][0]) & (starts < c["stop_sample"][0]))
    in_dark = np.count_nonzero((starts >= c["start_sample"][1]) & (starts < c["stop_sample"][1]))
    assert in_flow >= 10
    assert in_flow > 3 * in_dark
    # the tail channels themselves carry the bouts: swim bursts are far above electrode noise
    quiet = tail[c["start_sample"][1] : c["stop_sample"][1]].std()
    loud = np.abs(tail[c["start_sample"][0] : c["stop_sample"][0]]).max()
    assert loud > 10 * quiet
