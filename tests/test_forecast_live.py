"""The live forecaster in the readout lane, and a step that waits on the brain's surprise.

Virtual-time sessions through the engine, the readout process and the writer; the file
reopened with h5py. The brain's change is injected with ``[faults] brain_change_at_s``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from rig.core.config import RigConfig, load_config
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Flash, Shadow
from stimuli.protocol import Protocol, WaitFor, condition, step

PERIOD_S = 0.9141
CHANGE_AT_S = 50.0


def _rig(change_at_s: float | None) -> RigConfig:
    data = load_config().model_dump()
    data["readout"] = {"enabled": True, "reference_volumes": 2}
    data["simulation"]["faults"] = {"brain_change_at_s": change_at_s}
    return RigConfig.model_validate(data)


def _surprise_session(out: Path) -> Path:
    """40 s of steady light, then a loom step (on the same light background) waiting for
    surprise above 3; the brain changes course 10 s into the wait."""
    light = Flash(period_s=100.0, on_s=100.0)  # steady light: what the loom waits on
    loom = Shadow(mode="loom", period_s=60.0, loom_s=2.0, start_mm=(0.0, 0.0))
    wait = WaitFor(signal="surprise", above=3.0, timeout_s=25.0)
    proto = Protocol(
        name="surprise-triggered loom",
        conditions=[
            condition("surprise", step(light, 40.0), step(loom, 30.0, wait_for=wait), seconds=70)
        ],
    )
    engine = Engine(_rig(CHANGE_AT_S), proto, out, clock="virtual", seed=2)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


def test_a_surprise_triggered_step_starts_within_two_volumes_of_a_change(tmp_path: Path) -> None:
    path = _surprise_session(tmp_path)
    with h5py.File(path, "r") as f:
        trig = read_table(f["live/triggers"])
        gt = f["ground_truth/traces"][:]
        plane = f["volumes/plane_sample"][:]
        volumes = f["live/volume"][:]
        surprise = f["live/forecast/surprise"][:]
        mae = f["live/forecast/mae"][:]
        base = f["live/forecast/baseline_mae"][:]
    # the change, from the ground truth: the first volume the driven half jumps
    jump = np.diff(gt[:, ::2].mean(axis=1))
    changed = int(np.argmax(jump > 10 * np.median(np.abs(jump)))) + 1
    assert abs(changed * PERIOD_S - CHANGE_AT_S) < 2 * PERIOD_S
    assert len(trig["volume"]) == 1 and trig["timed_out"][0] == 0
    shown = int(trig["shown_sample"][0])
    period = PERIOD_S * 6000.0
    # not before the change (no false alarm while waiting), and within two volumes of it
    assert plane[changed, -1] < shown <= plane[changed, -1] + 2 * period
    assert trig["value"][0] > 3.0
    # surprise is about 1 while the brain is steady, and jumps at the change
    before = surprise[(volumes > 20) & (volumes < changed)]
    assert np.nanmedian(before) < 1.5 and np.nanmax(before) < 3.0
    assert surprise[volumes == changed][0] > 3.0
    # per lead, the forecaster matches or beats the mean baseline over the steady part
    steady = (volumes > 20) & (volumes < changed)
    assert np.nanmean(mae[steady]) <= 1.02 * np.nanmean(base[steady])
