"""The virtual brain responds: flash-ON cells follow the light, OFF cells its absence, in the
exported traces, and the tuning travels with the session and its zapbench export."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import tensorstore as ts

from rig.core.config import load_config
from rig.engine import Engine, RunState
from rig.export import export_zapbench
from rig.session import read_table
from stimuli.library import Flash
from stimuli.protocol import Protocol, condition, step


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_flash_cells_follow_the_flash_in_exported_traces(tmp_path: Path) -> None:
    base = load_config()
    rig = base.with_simulation(fish=base.sim.fish.model_copy(update={"n_neurons": 600}))
    proto = Protocol(
        name="flashes",
        conditions=[condition("flash", step(Flash(period_s=10.0, on_s=5.0), 10.0), seconds=60.0)],
    )
    engine = Engine(rig, proto, tmp_path, clock="virtual", seed=5)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    with h5py.File(engine.path, "r") as f:
        tuning = f["ground_truth/tuning"][...]
        names = [str(x) for x in f["ground_truth/tuning"].attrs["names"]]
        starts = f["volumes/start_sample"][...]
        frames = read_table(f["stimulus/frames"])
    out = export_zapbench(engine.path, tmp_path / "export", progress=False).out
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(out / "ground_truth_traces")},
    }
    traces = np.asarray(ts.open(spec).result().read().result())
    listed = json.loads((out / "tuning.json").read_text())
    assert listed["tuning"] == [names[i] for i in tuning]
    # the light the fish saw at each volume (the newest frame flipped before its start)
    k = np.searchsorted(frames["flip_sample"], starts, side="right") - 1
    light = frames["luminance"][np.maximum(k, 0)]
    assert light.min() < 0.2 < 0.8 < light.max()  # the flash went on and off
    on = traces[:, tuning == names.index("light_on")].mean(axis=1)
    off = traces[:, tuning == names.index("light_off")].mean(axis=1)
    motor = traces[:, tuning == names.index("motor")].mean(axis=1)
    assert _corr(on, light) > 0.6
    assert _corr(off, light) < -0.6
    assert abs(_corr(motor, light)) < _corr(on, light)
