"""ΔF/F that means ΔF/F: the readout against the simulated brain's true ΔF/F (issue 26).

One virtual-time session through the engine, the writer and the readout process:
20 s dark, then the light on for 130 volumes (a held response of the light-on
cells), then 20 s dark. The live rows, the offline readout (``python -m rig
readout``) and the zapbench export are read back from the files they wrote.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.signal

from acquisition.fish import TUNINGS
from rig.core.config import RigConfig, load_config
from rig.engine import Engine, RunState
from rig.readout.offline import (
    assemble,
    build_readout,
    read_offline,
    readout_volumes,
    sidecar_path,
)
from stimuli.library import Dark, Flash
from stimuli.protocol import Protocol, condition, step

PERIOD_S = 0.9141
REST_S = 20.0
HELD_VOLUMES = 130
ROOT = Path(__file__).resolve().parents[1]


def _rig() -> RigConfig:
    data = load_config().model_dump()
    data["readout"] = {"enabled": True, "reference_volumes": 2}
    data["simulation"]["sim_microscope"] = {}
    return RigConfig.model_validate(data)


def _held_protocol() -> Protocol:
    held_s = HELD_VOLUMES * PERIOD_S
    light = Flash(period_s=2 * held_s, on_s=2 * held_s)  # on for the whole step
    total = 2 * REST_S + held_s
    return Protocol(
        name="held",
        conditions=[
            condition(
                "held",
                step(Dark(), REST_S),
                step(light, held_s),
                step(Dark(), REST_S),
                seconds=total,
            )
        ],
    )


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    out = tmp_path_factory.mktemp("dff")
    engine = Engine(_rig(), _held_protocol(), out, clock="virtual", seed=7)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine, engine.path


def _live(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        v = f["live/volume"][:]
        ids = f["live/labels/id"][:]
        return {
            "volume": v,
            "dff": f["live/traces_dff"][:],
            "brightness": f["live/brightness"][:],
            "true": f["ground_truth/dff"][:][v][:, ids - 1],
            "tuning": f["ground_truth/tuning"][:][ids - 1],
            "luminance": f["stimulus/frames/luminance"][:],
            "flips": f["stimulus/frames/flip_sample"][:],
            "starts": f["volumes/start_sample"][:],
        }


def _slopes(measured: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per neuron that varies, the least-squares slope of measured on true ΔF/F."""
    out = []
    for k in range(true.shape[1]):
        x = true[:, k]
        if x.std() >= 0.05:
            out.append(np.polyfit(x, measured[:, k], 1)[0])
    return np.asarray(out)


def test_the_simulator_writes_its_true_dff(held: tuple[Engine, Path]) -> None:
    _, path = held
    with h5py.File(path, "r") as f:
        dff = f["ground_truth/dff"][:]
        traces = f["ground_truth/traces"][:]
        tuning = f["ground_truth/tuning"][:]
        t_n = f["volumes/raw"].shape[0]
    assert dff.shape == traces.shape and dff.shape[0] == t_n
    on = tuning == TUNINGS.index("light_on")
    rest = round(REST_S / PERIOD_S)
    # in the dark a light-on cell is near its resting fluorescence (its own spontaneous
    # events, assemblies and the global state move it a little: acquisition/fish/_dynamics.py);
    # held in the light it is well above it
    dark = dff[2 : rest - 1, on]
    assert np.median(dark) < 0.05 and dark.min() > -0.01
    held = dff[rest + HELD_VOLUMES - 3 : rest + HELD_VOLUMES, on].mean()
    assert held > 1.0 and held > 10 * dark.mean()


def test_live_dff_follows_the_true_dff_with_slope_one(held: tuple[Engine, Path]) -> None:
    _, path = held
    d = _live(path)
    s = _slopes(d["dff"], d["true"])
    assert len(s) > 30
    print(f"live vs true dF/F slope: median {np.median(s):.3f}, "
          f"IQR {np.percentile(s, 25):.3f}-{np.percentile(s, 75):.3f}, n {len(s)}")  # fmt: skip
    assert 0.9 <= np.median(s) <= 1.1


def test_a_response_held_for_130_volumes_keeps_its_dff(held: tuple[Engine, Path]) -> None:
    _, path = held
    d = _live(path)
    # the volumes the light was on: the newest frame flipped before each volume's start
    k = np.searchsorted(d["flips"], d["starts"], side="right") - 1
    lit = np.flatnonzero(d["luminance"][np.maximum(k, 0)] > 0.5)
    assert len(lit) >= HELD_VOLUMES - 1
    end = lit[-3:]  # the held response's last volumes
    rows = np.searchsorted(d["volume"], end)
    on = d["tuning"] == TUNINGS.index("light_on")
    assert on.sum() >= 5
    true_end = d["true"][rows][:, on].mean(axis=0)
    live_end = d["dff"][rows][:, on].mean(axis=0)
    assert true_end.min() > 1.0  # a real response, held
    ratio = float(np.median(live_end / true_end))
    print(f"held response: live/true dF/F at its end {ratio:.3f} (median of {on.sum()} cells)")
    assert ratio >= 0.8


def test_plane_brightness_is_in_range_and_empty_planes_say_so(
    held: tuple[Engine, Path],
) -> None:
    engine, path = held
    d = _live(path)
    b = d["brightness"]
    empty = np.isnan(b).all(axis=0)
    assert not np.isnan(b[:, ~empty]).any()
    print(f"brightness {np.nanmin(b):.3f}..{np.nanmax(b):.3f}, empty planes "
          f"{np.flatnonzero(empty).tolist()}")  # fmt: skip
    assert np.nanmin(b) >= 0.0 and np.nanmax(b) <= 2.0
    # the simulated brain's end planes hold no tissue: said, not divided by about zero
    assert empty[0] and empty[-1] and not empty[b.shape[1] // 2]
    with h5py.File(path, "r") as f:
        messages = [str(m) for m in f["events/message"][:].astype(str)]
    assert any("show no tissue" in m and "brightness is NaN" in m for m in messages)
    del engine


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], cwd=ROOT, env=env, text=True, capture_output=True
    )


def test_offline_readout_covers_every_volume_with_the_live_code(
    held: tuple[Engine, Path], tmp_path: Path
) -> None:
    _, path = held
    out = tmp_path / "offline.h5"
    r = _cli("readout", str(path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    off = read_offline(out)
    with h5py.File(path, "r") as f:
        t_n = f["volumes/raw"].shape[0]
        v = f["live/volume"][:]
        live = {k: f[f"live/{k}"][:] for k in ("drift_um", "brightness", "traces_raw")}
        ids = f["live/labels/id"][:]
    assert off.traces_dff.shape[0] == t_n and np.isfinite(off.traces_dff).all()
    assert off.ids.tolist() == ids.tolist()
    # the same functions on the same volumes: the same numbers where the live lane has rows
    np.testing.assert_allclose(off.traces_raw[v], live["traces_raw"], rtol=1e-6)
    np.testing.assert_allclose(off.brightness[v], live["brightness"], rtol=1e-5)
    np.testing.assert_allclose(off.drift_um[v], live["drift_um"], atol=1e-9)
    # in pieces, as a cluster runs it (the built readout pickled to each task): the same
    readout = build_readout(path)
    first = readout_volumes(path, 0, 50, pickle.loads(pickle.dumps(readout)))
    rest = readout_volumes(path, 50, t_n, readout)
    joined = assemble(readout, [rest, first])
    np.testing.assert_array_equal(joined.traces_dff, off.traces_dff)
    np.testing.assert_array_equal(joined.brightness, off.brightness)
    # never overwritten: a second run is refused with a one-line error, exit 2
    again = _cli("readout", str(path), "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_zapbench_traces_are_finite_dff_and_the_stream_has_one_marker_per_volume(
    held: tuple[Engine, Path], tmp_path: Path
) -> None:
    import tensorstore as ts

    from rig.export import export_zapbench
    from rig.export._zapbench import STREAM_FILE

    _, path = held
    assert not sidecar_path(path).exists()  # the export computes the offline readout itself
    z = export_zapbench(path, tmp_path / "zb", progress=False)

    def arr(name: str) -> np.ndarray:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(z.out / name)}}
        return np.asarray(ts.open(spec).result().read().result())

    traces, raw = arr("traces"), arr("traces_raw")
    with h5py.File(path, "r") as f:
        t_n = f["volumes/raw"].shape[0]
        v = f["live/volume"][:]
        live_raw = f["live/traces_raw"][:]
    assert traces.shape == raw.shape == (t_n, z.traces) and z.traces > 30
    assert np.isfinite(traces).all()
    np.testing.assert_allclose(raw[v], live_raw, rtol=1e-6)  # counts, not dF/F
    meta = json.loads((z.out / "metadata.json").read_text())
    assert meta["layout"]["traces"] == "traces" and meta["layout"]["traces_raw"] == "traces_raw"
    assert arr("ground_truth_dff").shape[0] == t_n
    rows = np.fromfile(z.out / STREAM_FILE, np.float32).reshape(-1, 10).T
    markers = scipy.signal.find_peaks(rows[2], distance=500, height=3.55)[0]
    planes = scipy.signal.find_peaks(rows[2], distance=50, height=1)[0]
    assert len(markers) == t_n
    # and the last volume keeps every plane pulse after its marker
    assert len(planes) - len(markers) == t_n * z.shape_xyzt[2]


def test_background_rings_stay_clear_of_every_label() -> None:
    from rig.readout import disk_index
    from rig.readout._background import ring_index

    shape = (2, 40, 60)
    pos = np.array([[0.0, 20.0, 20.0], [0.0, 20.0, 27.0], [1.0, 1.0, 1.0]])  # a close pair
    labels = disk_index(pos, shape, 2.0, 64)
    ring = ring_index(labels, shape, gap_px=2.0, width_px=4.0, max_voxels=1000)
    assert ring.n == labels.n == 3 and (ring.counts >= 4).all()
    z, y, x = np.unravel_index(ring.flat, shape)
    lz, ly, lx = np.unravel_index(labels.flat, shape)
    for k in range(ring.n):
        mine = ring.owner == k
        assert (z[mine] == round(pos[k, 0])).all()  # in the label's own plane
        cy, cx = labels.positions_zyx[k, 1:]
        own = slice(labels.starts[k], labels.starts[k] + labels.counts[k])
        radius = np.hypot(ly[own] - cy, lx[own] - cx).max()  # its farthest voxel
        d = np.hypot(y[mine] - cy, x[mine] - cx)
        assert d.min() >= radius + 2.0 - 1e-9 and d.max() < radius + 6.0
    # no ring voxel within the gap of any label's voxel in its plane
    for zz, yy, xx in zip(z, y, x, strict=True):
        near = (lz == zz) & (np.hypot(ly - yy, lx - xx) <= 2.0)
        assert not near.any()
    # a volume lit only around a label: its background is that ring, the others' dark
    vol = np.full(shape, 100, np.uint16)
    vol[0, 10:31, 8:19] = 140  # left of neuron 0: part of its ring, none of the others'
    means = ring.means(vol)
    assert means[1] == means[2] == 100.0 and 100.0 < means[0] < 140.0


def test_the_baseline_keeps_a_held_response_and_follows_bleaching() -> None:
    from rig.readout import Baseline

    rng = np.random.default_rng(0)
    t = np.arange(400)
    rest = 50.0 * 0.9998**t  # bleaching, 0.02 % per volume (1.3 % per minute)
    held = (t >= 100) & (t < 230)  # 130 volumes at ΔF/F 2
    f = rest * (1.0 + 2.0 * held) + rng.normal(0.0, 1.0, len(t))
    dff = Baseline.series(f[:, None], window=600, percentile=10.0, block=3)[:, 0]
    assert np.isfinite(dff).all()
    assert dff[225:230].mean() > 0.9 * 2.0  # the end of the held response
    assert abs(dff[350:].mean()) < 0.02  # back at rest, bleached 7 %: F0 followed it
    # the live lane's volume-by-volume update gives the same numbers
    b = Baseline(1, 600, 10.0, 3)
    live = np.array([b.update(np.array([v]))[0] for v in f])
    np.testing.assert_array_equal(live, dff)


def test_dropped_volumes_are_filled_not_nan(held: tuple[Engine, Path], tmp_path: Path) -> None:
    import shutil

    from rig.core.layout import append_columns
    from rig.readout.offline import readout_session

    _, path = held
    copy = tmp_path / "dropped.h5"
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        f["volumes/raw"][40] = 0  # what the writer leaves for a dropped volume
        append_columns(
            f["volumes/dropped"],
            {"volume": np.array([40]), "reason": np.array(["ring full"], dtype=object)},
        )
    _, r = readout_session(copy, write=False)
    assert r.filled.tolist() == [t == 40 for t in range(len(r.filled))]
    assert np.isfinite(r.traces_dff).all()
    np.testing.assert_array_equal(r.traces_raw[40], r.traces_raw[39])
    assert np.isnan(r.drift_um[40]).all() and np.isfinite(r.drift_um[41]).all()
