"""Sessions read like the dataset: its own notebook's decoding gives our volumes and conditions.

``rig.session.dataset_decode`` follows the published notebook (processing/stimuli.ipynb)
step by step; these tests run it on session files, on their zapbench exports and at
the dataset's 72 planes, and check the stimulus rows and the closed-loop state at every
condition boundary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from acquisition.swims import OnlineSwimDetector
from rig.core.config import RigConfig, load_config
from rig.core.layout import ROW, read_table
from rig.engine import Engine, RunState
from rig.export import export_zapbench
from rig.session.dataset_decode import decode_rows, load_10chflt
from stimuli.builtin import dataset_protocol
from stimuli.closed_loop import LoopState
from stimuli.library import Dark, Dots, Flash, Flow, Position, Rotation, Taxis, Turning
from stimuli.protocol import Protocol, condition, step
from stimuli.render.frames import FrameMaker
from stimuli.schedule import Schedule

FORMAT1 = Path(__file__).parent / "data" / "session-format1.h5"
STIM_ROWS = ("param3", "param4", "param5", "stim_id", "velocity", "gain")


def _decode_file(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    with h5py.File(path, "r") as f:
        s = f["stimuli_and_ephys"]
        rows = np.stack([s[:, ROW["trigger"]], s[:, ROW["condition"]]])
        conds = read_table(f["protocol/conditions"])
        z = f["volumes/raw"].shape[1]
    return rows, conds, z


def _assert_notebook_agrees(ttl: np.ndarray, row4: np.ndarray, start_volumes, z: int) -> None:
    dec = decode_rows(ttl, row4)
    assert dec.ratio == pytest.approx(z, abs=z / (len(dec.volume_peaks) or 1) + 1e-9)
    assert set(dec.planes_per_timestep.tolist()) == {z}
    # every condition onset (row 4 stepping to c + 1) maps to the condition's start volume
    got = {int(v) - 1: t for v, t in zip(dec.onset_values, dec.condition_onsets_imaging())}
    want = dict(enumerate(int(v) for v in start_volumes))
    assert {c: got[c] for c in want} == want


def test_the_notebook_decodes_a_session_exactly(short_session: Path) -> None:
    rows, conds, z = _decode_file(short_session)
    assert z == 8
    dec = decode_rows(rows[0], rows[1])
    # the notebook's "expecting ratio of ~72": z plane peaks per volume-start peak
    assert len(dec.plane_peaks) == z * (len(dec.volume_peaks) - 1)
    _assert_notebook_agrees(rows[0], rows[1], conds["start_volume"], z)


def test_the_notebook_decodes_the_zapbench_export_exactly(
    short_session: Path, tmp_path: Path
) -> None:
    out = export_zapbench(short_session, tmp_path / "zb", progress=False)
    rows = load_10chflt(out.out / "stimuli_raw" / "stimuli_and_ephys.10chFlt")
    offsets = json.loads((out.out / "conditions.json").read_text())["offsets"]
    _assert_notebook_agrees(rows[2], rows[4], offsets[:-1], 8)


def _tiny_72_plane_rig() -> RigConfig:
    base = load_config()
    return base.model_copy(
        update={
            "microscope": base.microscope.model_copy(
                update={"planes_per_volume": 72, "width": 8, "height": 8, "volume_period_s": 0.9141}
            )
        }
    )


def test_72_planes_at_the_dataset_period_decode_exactly(tmp_path: Path, check_session) -> None:
    rig = RigConfig.model_validate(_tiny_72_plane_rig().model_dump())  # validated as loaded
    proto = Protocol(
        name="72 planes",
        conditions=(
            condition("flash", step(Flash(period_s=2.0, on_s=1.0), 2.0), volumes=3),
            condition("gain", step(Flow(gain=4.0), 2.0), volumes=3),
            condition("dark", step(Dark(), 2.0), volumes=3),
        ),
    )
    engine = Engine(rig, proto, tmp_path, clock="virtual", seed=2)
    assert engine.run() is RunState.COMPLETE
    r = check_session(engine.path)
    assert r.returncode == 0, r.stdout
    rows, conds, z = _decode_file(engine.path)
    assert z == 72
    np.testing.assert_array_equal(conds["start_volume"], [0, 3, 6])
    _assert_notebook_agrees(rows[0], rows[1], conds["start_volume"], 72)


def test_stimulus_rows_never_disagree_with_row_4(short_session: Path) -> None:
    """At every sample, rows 3 and 5-9 are the state of a frame of row 4's condition."""
    with h5py.File(short_session, "r") as f:
        s = f["stimuli_and_ephys"][...]
        fr = read_table(f["stimulus/frames"])
        conds = read_table(f["protocol/conditions"])
    cond = s[:, ROW["condition"]].astype(int) - 1
    state = np.stack([s[:, ROW[k]] for k in STIM_ROWS], axis=1)
    frame_state = np.stack([fr[k].astype(np.float32) for k in STIM_ROWS], axis=1)
    for c in range(len(conds["name"])):
        allowed = {tuple(x) for x in frame_state[fr["condition"] == c]}
        seen = {tuple(x) for x in np.unique(state[cond == c], axis=0)}
        assert seen <= allowed, (conds["name"][c], sorted(seen - allowed)[:3])
    # and at the boundaries themselves: the gain block's gain never reaches into the dots
    dots = conds["start_sample"][1]
    assert np.all(s[dots : dots + 200, ROW["gain"]] == 0.0)
    assert np.all(s[dots - 50 : dots, ROW["gain"]] > 0.0)


def test_row_7_tells_the_sub_stimuli_apart(tmp_path: Path) -> None:
    proto = Protocol(
        name="sub-stimuli",
        conditions=(
            condition(
                "gain",
                step(Flow(gain=2.0), 0.5),
                step(Flow(gain=8.0, stim_id=1), 0.5),
                seconds=2.0,
            ),
            condition("dots", step(Dots(segment_s=0.25), 2.0), seconds=2.0),
            condition("flash", step(Flash(period_s=1.0, on_s=0.5), 1.0), seconds=2.0),
            condition("taxis", step(Taxis(period_s=1.0), 1.0), seconds=2.0),
            condition("turning", step(Turning(moving_s=0.25, still_s=0.25), 2.0), seconds=2.0),
            condition("position", step(Position(period_s=1.0), 1.0), seconds=2.0),
            condition("rotation", step(Rotation(period_s=1.0), 1.0), seconds=2.0),
        ),
    )
    engine = Engine(load_config(), proto, tmp_path, clock="virtual", seed=1)
    assert engine.run() is RunState.COMPLETE
    with h5py.File(engine.path, "r") as f:
        s = f["stimuli_and_ephys"][...]
        names = list(read_table(f["protocol/conditions"])["name"])
    cond = s[:, ROW["condition"]].astype(int) - 1
    ids = {n: set(np.unique(s[cond == i, ROW["stim_id"]]).astype(int)) for i, n in enumerate(names)}
    assert ids["gain"] == {0, 1}  # low, high gain (the steps' own stim_id)
    assert ids["dots"] == set(range(8))  # 4 coherences x 2 directions
    assert ids["flash"] == {0, 1}  # off, on
    assert ids["taxis"] == {0, 1}  # left, right bright
    assert ids["turning"] == set(range(8))  # 4 directions x moving/still
    assert ids["position"] == {0, 1}  # drifting, drift off
    assert ids["rotation"] == {0, 1}  # out, back


def test_the_closed_loop_starts_each_condition_at_rest(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        fr = read_table(f["stimulus/frames"])
        conds = read_table(f["protocol/conditions"])
    names = list(conds["name"])
    for c, start in enumerate(conds["start_sample"]):
        first = np.flatnonzero(fr["condition"] == c)[0]
        dt = (fr["flip_sample"][first] - start) / 6000.0
        assert 0 <= dt <= 1 / 60 + 1e-9
        # at most one frame of the new condition's own loop: no carried heading or position
        assert abs(fr["heading_deg"][first]) < 2.0, names[c]
        assert abs(fr["position_mm"][first]) < 60.0 * dt + 1e-6, names[c]
    # the taxis block leaves the fish turned; position holding still starts facing ahead
    taxis_last = np.flatnonzero(fr["condition"] == names.index("taxis"))[-1]
    first = np.flatnonzero(fr["condition"] == names.index("position"))[0]
    assert abs(fr["heading_deg"][taxis_last]) > 2.0
    assert fr["angle_deg"][first] == pytest.approx(270.0 - fr["heading_deg"][first], abs=1e-4)


def test_a_frame_of_a_new_condition_never_draws_the_last_ones_state() -> None:
    """FrameMaker: a flip just after a condition starts uses that condition's start state."""
    proto = Protocol(
        name="t",
        conditions=(
            condition("taxis", step(Taxis(), 2.0), seconds=2.0),
            condition("position", step(Position(drift_mm_s=5.0), 2.0), seconds=2.0),
        ),
    )
    tl = Schedule.build(proto, load_config())
    maker = FrameMaker(tl)
    start = int(tl.condition_start_samples[1])
    stale = LoopState(velocity=3.0, position_mm=12.0, heading_deg=36.0, condition=0)
    rec = maker.make(0, start + 1, stale)
    assert rec["condition"] == 1
    assert rec["heading_deg"] == 0.0 and rec["position_mm"] == 0.0
    assert rec["velocity"] == -5.0  # position holding starts drifting at rest
    assert rec["angle_deg"] == 270.0
    fresh = LoopState(velocity=-4.0, position_mm=-0.1, heading_deg=1.0, condition=1)
    assert maker.make(1, start + 2, fresh)["heading_deg"] == 1.0  # its own state is drawn


def test_lab_swim_power_is_the_root_of_summed_supra_threshold_power() -> None:
    """Lab units: sqrt(sum over a 50-sample lab loop of max(var - thr, 0)), in volts."""
    fs, rng = 6000.0, np.random.default_rng(4)
    n = 12 * 6000
    x = rng.normal(0.0, 0.01, (n, 2))
    burst = slice(11 * 6000, 11 * 6000 + 1200)
    x[burst, 0] += 0.2 * np.sign(np.sin(2 * np.pi * 30 * np.arange(1200) / fs))
    lab = OnlineSwimDetector(fs, power_units="lab")
    thr_units = OnlineSwimDetector(fs)
    for s0 in range(0, n, 60):
        swim_lab, _ = lab.process(x[s0 : s0 + 60], s0)
        swim_thr, _ = thr_units.process(x[s0 : s0 + 60], s0)
        if s0 == 11 * 6000 + 600:
            break
    assert swim_lab.swimming and swim_thr.swimming
    # the same chunk's evaluations, computed here from the raw samples
    ends = lab.last_eval_samples
    var = np.array([x[e - 60 : e].var(axis=0) for e in ends])
    supra = np.maximum(var - lab.threshold, 0.0)
    want = np.sqrt(supra.sum(axis=0) * (50 / 10) / len(ends))
    assert swim_lab.power_left == pytest.approx(want[0], rel=1e-9)
    assert swim_lab.power_right == pytest.approx(want[1], rel=1e-9, abs=1e-12)
    # the documented conversion: lab = sqrt(5 thr) x threshold units (per evaluation)
    per_eval_thr = np.sqrt(supra / lab.threshold)
    np.testing.assert_allclose(
        np.sqrt(5 * supra[:, 0]), np.sqrt(5 * lab.threshold[0]) * per_eval_thr[:, 0]
    )
    assert swim_thr.power_left == pytest.approx(per_eval_thr[:, 0].mean(), rel=1e-9)


def test_a_protocol_in_lab_units_records_them(tmp_path: Path) -> None:
    proto = Protocol(
        name="lab gains",
        swim_power="lab",
        conditions=(condition("gain", step(Flow(gain=70.0), 2.0), seconds=4.0),),
    )
    engine = Engine(load_config(), proto, tmp_path, clock="virtual", seed=1)
    assert engine.detector.power_units == "lab"
    assert engine.run() is RunState.COMPLETE
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["swim_power_units"] == "lab"
        assert json.loads(f.attrs["protocol"])["swim_power"] == "lab"


def test_a_format_1_session_is_still_read(tmp_path: Path) -> None:
    """A file recorded by zaprig 0.1 (TTL layout 1): inspect names its layout, export works."""
    out = subprocess.run(
        [sys.executable, "-m", "rig", "inspect", str(FORMAT1)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "layout 1" in out.stdout and "format_version 1" in out.stdout
    exp = export_zapbench(FORMAT1, tmp_path / "zb", progress=False)
    rows = load_10chflt(exp.out / "stimuli_raw" / "stimuli_and_ephys.10chFlt")
    with h5py.File(FORMAT1, "r") as f:
        np.testing.assert_array_equal(rows.T, f["stimuli_and_ephys"][...])
        z = f["volumes/raw"].shape[1]
    # what the notebook makes of the old layout: the start pulse stood in for plane 0
    dec = decode_rows(rows[2], rows[4])
    assert set(dec.planes_per_timestep.tolist()) == {z - 1}


def test_the_built_in_protocol_plans_at_the_dataset_offsets() -> None:
    tl = Schedule.build(dataset_protocol(), load_config())
    assert tl.condition_bounds == (0, 649, 2422, 3078, 3735, 5047, 5638, 6623, 7279, 7879)
    assert np.all(tl.marker_samples[:-1] < tl.volume_starts)
    assert np.all(tl.volume_starts - tl.marker_samples[:-1] > 50)
