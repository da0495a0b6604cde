"""The live readout: drift, brightness and traces, checked against the simulated rig's truth.

Real parts throughout: virtual-time sessions through the engine, the writer and
the readout process, and the session file reopened with h5py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from acquisition.fish import TUNINGS
from acquisition.fish._brain import Brain
from acquisition.writer._ring import VolumeRing
from rig.core.config import ReadoutConfig, RigConfig, load_config
from rig.core.errors import ConfigError
from rig.core.worker import Ready, Stop, WorkerContext
from rig.engine import Engine, RunState
from rig.readout import (
    LabelIndex,
    Readout,
    ReadoutSettings,
    detect_cells,
    disk_index,
    load_label_file,
    trace_means,
)
from rig.readout._messages import Read, Row, Skipped
from rig.readout._process import readout_main
from rig.session import read_table
from stimuli.library import Dark, Flash
from stimuli.protocol import Protocol, condition, step

PERIOD_S = 0.9141


def _rig(readout: dict[str, Any], sim_microscope: dict[str, Any] | None = None) -> RigConfig:
    data = load_config().model_dump()
    data["readout"] = {"enabled": True, "reference_volumes": 2, **readout}
    data["simulation"]["sim_microscope"] = sim_microscope or {}
    return RigConfig.model_validate(data)


def _flash_protocol(seconds: float = 40.0) -> Protocol:
    flash = Flash(period_s=10.0, on_s=5.0)
    return Protocol(
        name="flashes", conditions=[condition("flash", step(flash, seconds), seconds=seconds)]
    )


@pytest.fixture(scope="module")
def flash_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    """A still fish under flashes, bleaching 10 % per minute, traced from the ground truth."""
    out = tmp_path_factory.mktemp("readout")
    rig = _rig({}, {"bleaching_per_min": 0.1})
    engine = Engine(rig, _flash_protocol(), out, clock="virtual", seed=5)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine, engine.path


def test_still_fish_reads_no_drift_and_every_volume(
    flash_session: tuple[Engine, Path], check_session: Callable[..., Any]
) -> None:
    engine, path = flash_session
    with h5py.File(path, "r") as f:
        volumes = f["live/volume"][:]
        drift = f["live/drift_um"][:]
        n_raw = f["volumes/raw"].shape[0]
        assert f.attrs["volumes_dropped"] == 0
        assert len(read_table(f["volumes/dropped"])["volume"]) == 0
        assert f["live/labels"].attrs["source"] == "ground_truth"
        assert f["live/traces_raw"].shape == (
            len(volumes),
            f["ground_truth/positions_zyx"].shape[0],
        )
    # virtual time: every volume from the last reference volume on has its row
    assert volumes.tolist() == list(range(1, n_raw))
    assert engine.readout is not None and engine.readout.skipped == 0
    # µm; the voxels are 4 x 6.5 x 6.5 µm. Activity alone moves the registration's peak a
    # little: flash-driven populations reach a ΔF/F of ~2 (1.07 µm measured, seed 5)
    assert np.abs(drift).max() < 1.5
    result = check_session(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_live_traces_follow_the_ground_truth(flash_session: tuple[Engine, Path]) -> None:
    _, path = flash_session
    with h5py.File(path, "r") as f:
        volumes = f["live/volume"][:]
        raw = f["live/traces_raw"][:]
        dff = f["live/traces_dff"][:]
        ids = f["live/labels/id"][:]
        truth = f["ground_truth/traces"][:][volumes][:, ids - 1]
        tuning = f["ground_truth/tuning"][:][ids - 1]
        flash_row = f["stimuli_and_ephys"][:, 3]
        starts = f["volumes/start_sample"][:][volumes]
    # cells whose true trace varies by more than the shot noise of a voxel (~10 counts): the
    # simulated brain's spontaneous cells have sparse, small events of their own
    varying = truth.std(axis=0) > 10.0
    r = [np.corrcoef(raw[:, k], truth[:, k])[0, 1] for k in np.flatnonzero(varying)]
    assert len(r) > 20
    assert np.median(r) >= 0.9
    # flash-ON cells follow the flash better than the rest (ΔF/F against the light row)
    light = flash_row[starts + 100]
    corr = np.array([np.corrcoef(dff[:, k], light)[0, 1] if dff[:, k].std() > 0 else 0.0
                     for k in range(dff.shape[1])])  # fmt: skip
    on = tuning == TUNINGS.index("light_on")
    assert on.sum() >= 5
    assert np.median(corr[on]) > 0.5
    assert np.median(corr[on]) > np.median(corr[~on]) + 0.4


def test_bleaching_is_tracked_within_two_percent(flash_session: tuple[Engine, Path]) -> None:
    _, path = flash_session
    with h5py.File(path, "r") as f:
        volumes = f["live/volume"][:]
        brightness = f["live/brightness"][:]
    z = brightness.shape[1]
    inner = brightness[:, 1 : z - 1]  # the end planes hold little besides noise
    measured = np.median(inner, axis=1)
    # the reference is the mean of volumes 0 and 1
    injected = 0.9 ** (volumes * PERIOD_S / 60.0) / np.mean(0.9 ** (np.arange(2) * PERIOD_S / 60))
    assert np.abs(measured[-10:].mean() - injected[-10:].mean()) < 0.02
    assert measured[-10:].mean() < 0.97  # it did fall


def test_injected_drift_is_recovered_and_warned(tmp_path: Path) -> None:
    step_at_s = 15.0
    rig = _rig(
        {"drift_warn_um": 5.0},
        {
            "drift_um_per_min": (0.0, 8.0, -4.0),
            "drift_step_um": (4.0, 0.0, 13.0),
            "drift_step_at_s": step_at_s,
        },
    )
    proto = Protocol(name="dark", conditions=[condition("dark", step(Dark(), 30.0), seconds=30.0)])
    engine = Engine(rig, proto, tmp_path, clock="virtual", seed=2)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    micro = engine.devices.microscope if engine.devices else None
    assert micro is not None
    with h5py.File(engine.path, "r") as f:
        volumes = f["live/volume"][:]
        drift = f["live/drift_um"][:]
        events = read_table(f["events"])
    vz, vy, vx = rig.microscope.voxel_size_um
    applied = np.array([micro.drift_voxels(int(t)) for t in range(volumes.max() + 1)], float)  # type: ignore[attr-defined]
    expected = (applied - applied[:2].mean(axis=0))[volumes] * np.array([vz, vy, vx])
    err_vox = np.abs(drift - expected) / np.array([vz, vy, vx])
    assert err_vox[:, 0].max() <= 1.0  # planes
    assert err_vox[:, 1:].max() <= 0.5  # voxels in y and x
    warned = [
        (s, m) for s, m, src, sev in zip(
            events["sample"], events["message"], events["source"], events["kind"], strict=True
        ) if src == "readout" and sev == "warning"
    ]  # fmt: skip
    assert len(warned) == 1, warned  # once per excursion
    step_volume = int(np.ceil(step_at_s / PERIOD_S))
    warned_volume = int(np.searchsorted(engine.timeline.volume_starts, warned[0][0], "right")) - 1
    assert step_volume <= warned_volume <= step_volume + 2
    assert "readout.drift_warn_um" in warned[0][1]


def test_a_misshapen_label_file_fails_before_the_session_starts(tmp_path: Path) -> None:
    labels = tmp_path / "atlas.npy"
    np.save(labels, np.zeros((3, 10, 10), dtype=np.int32))
    rig = _rig({"labels": "file", "label_file": str(labels)})
    out = tmp_path / "sessions"
    engine = Engine(rig, _flash_protocol(5.0), out, clock="virtual")
    with pytest.raises(ConfigError) as e:
        engine.arm()
    msg = str(e.value)
    assert str(labels) in msg and "readout.label_file" in msg and "(8, 80, 128)" in msg
    assert "register" in msg  # says what to do
    assert not list(out.glob("*.h5"))  # nothing was created


def test_label_source_settings_are_checked() -> None:
    data = load_config().model_dump()
    data["readout"] = {"enabled": True, "labels": "file"}
    with pytest.raises(ValueError, match="label_file"):
        RigConfig.model_validate(data)
    data["readout"] = {"enabled": True, "labels": "detect", "label_file": "x.npy"}
    with pytest.raises(ValueError, match="labels = 'file'"):
        RigConfig.model_validate(data)


def test_label_files_h5_and_the_datasets_xyz_layout(tmp_path: Path) -> None:
    shape = (4, 20, 30)
    lab = np.zeros(shape, np.int32)
    lab[1, 5:8, 10:14] = 7
    lab[3, 0:2, 0:2] = 2
    h5 = tmp_path / "labels.h5"
    with h5py.File(h5, "w") as f:
        f["seg"] = lab.transpose(2, 1, 0)  # stored as the dataset's (x, y, z)
        f["other"] = np.zeros(5)
    got = load_label_file(f"{h5}:/seg", shape)
    assert np.array_equal(got, lab)
    index = LabelIndex.from_labels(got, max_voxels=5)
    assert index.ids.tolist() == [2, 7]
    assert index.counts.tolist() == [4, 5]  # label 7 has 12 voxels: 5 sampled
    vol = np.zeros(shape, np.uint16)
    vol[lab == 7] = 300
    vol[lab == 2] = 10
    assert trace_means(vol, index).tolist() == [10.0, 300.0]
    np.save(tmp_path / "f.npy", np.zeros(shape, np.float32))
    with pytest.raises(ConfigError, match="labels must be integers"):
        load_label_file(str(tmp_path / "f.npy"), shape)


def _brain_volume(brain: Brain, f: np.ndarray) -> np.ndarray:
    vol = np.empty(brain.shape, np.uint16)
    for p in range(brain.shape[0]):
        brain.render_plane(f, p, vol[p])
    return vol


def test_the_cell_detector_finds_the_simulated_cells() -> None:
    shape = (4, 160, 256)
    brain = Brain(shape, 200, np.random.default_rng(3), (4.0, 0.8, 0.8))
    ref = _brain_volume(brain, brain.baseline * 2.0).astype(np.float32)
    found = detect_cells(ref, radius_px=brain.sigma_px * 1.5)
    truth = brain.positions
    same_plane = np.rint(truth[:, 0])[:, None] == found[None, :, 0]
    dist = np.hypot(truth[:, 1, None] - found[None, :, 1], truth[:, 2, None] - found[None, :, 2])
    dist[~same_plane] = np.inf
    recall = np.mean(dist.min(axis=1) <= 2.0)
    precision = np.mean(dist.min(axis=0) <= 2.0)
    assert recall >= 0.8 and precision >= 0.8, (recall, precision)


def test_a_reused_slot_is_skipped_not_read() -> None:
    """The readout never holds a slot: a slot refilled before it got there is skipped."""
    shape = (2, 16, 16)
    ring = VolumeRing(shape, 2)
    try:
        index = disk_index(np.array([[0.0, 8.0, 8.0]]), shape, 2.0, 64)
        settings = ReadoutSettings(
            shape, (4.0, 1.0, 1.0), ReadoutConfig(downsample=2, reference_volumes=1)
        )
        inbox: queue.Queue[Any] = queue.Queue()
        outbox: queue.Queue[Any] = queue.Queue()
        done = mp.get_context("spawn").RawValue("q", -1)
        slot = ring.take_free()
        assert slot is not None
        ring.slot(slot)[...] = 120
        gen = int(ring.generations[slot])
        inbox.put(Read(0, slot, 0, gen))  # read: the reference
        inbox.put(Read(1, slot, 1, gen - 1))  # the slot holds a newer volume than this says
        inbox.put(Stop())
        ctx = WorkerContext("readout", inbox, outbox, threading.Event(), os.getppid())
        args = (ring.spec(), ring.states, ring.generations, settings, index, done)
        th = threading.Thread(target=readout_main, args=(ctx, *args))
        th.start()
        th.join(30)
        msgs = []
        while not outbox.empty():
            msgs.append(outbox.get_nowait())
        kinds = [type(m) for m in msgs]
        assert kinds == [Ready, Row, Skipped], msgs
        assert msgs[2].t == 1
        assert done.value == 1
    finally:
        ring.close()


def test_a_known_shift_is_measured_in_voxels() -> None:
    """The readout on its own (no process): a volume moved by whole voxels reads as that shift."""
    shape = (8, 80, 128)
    brain = Brain(shape, 300, np.random.default_rng(1), (4.0, 6.496, 6.496))
    f = brain.baseline * 1.0
    settings = ReadoutSettings(shape, (4.0, 6.496, 6.496), ReadoutConfig(reference_volumes=2))
    readout = Readout(settings, disk_index(brain.positions, shape, 2.0, 64))
    v0 = _brain_volume(brain, f)
    assert readout.process(0, v0) is None
    row = readout.process(1, _brain_volume(brain, f))
    assert row is not None
    moved = np.full_like(v0, 100)
    moved[:, 3:, :-5] = v0[:, :-3, 5:]  # 3 voxels down in y, 5 left in x
    row = readout.process(2, moved)
    assert row is not None
    assert np.allclose(row.drift_um / np.array([4.0, 6.496, 6.496]), [0, 3, -5], atol=0.3)


def test_zapbench_export_writes_the_live_traces_in_the_traces_layout(
    flash_session: tuple[Engine, Path], tmp_path: Path
) -> None:
    import json

    import tensorstore as ts

    from rig.export import export_zapbench

    _, path = flash_session
    result = export_zapbench(path, tmp_path / "zb", progress=False)
    with h5py.File(path, "r") as f:
        volumes = f["live/volume"][:]
        raw = f["live/traces_raw"][:]
        ids = f["live/labels/id"][:]
        t_n = f["volumes/raw"].shape[0]
    assert result.live_traces == raw.shape[1]
    live = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "zb" / "live_traces")}}).result()  # fmt: skip
    gt = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "zb" / "traces")}}).result()  # fmt: skip
    # the same layout as the ground truth's traces: (t, f), same axes, one row per timestep
    assert live.domain.labels == gt.domain.labels == ("t", "f")
    assert live.shape == (t_n, raw.shape[1]) and gt.shape[0] == t_n
    arr = live.read().result()
    assert np.all(np.isnan(arr[0]))  # the first reference volume has no live row
    assert np.array_equal(arr[volumes], raw)
    labels = json.loads((tmp_path / "zb" / "live_labels.json").read_text())
    assert labels["source"] == "ground_truth" and labels["ids"] == ids.tolist()
    meta = json.loads((tmp_path / "zb" / "metadata.json").read_text())
    assert meta["layout"]["live_traces"] == "live_traces"


def _brain_triggered_session(out: Path, seed: int) -> Path:
    """10 s dark, then a loom step waiting for the light-ON cells: its bright background
    while waiting wakes them, and the loom starts when their mean ΔF/F passes 0.5."""
    from stimuli.library import Shadow
    from stimuli.protocol import WaitFor

    wait = WaitFor(region="tuning:light_on", above=0.5, timeout_s=12.0)
    loom = Shadow(mode="loom", period_s=60.0, loom_s=2.0, start_mm=(0.0, 0.0))
    proto = Protocol(
        name="brain-triggered loom",
        conditions=[
            condition("trigger", step(Dark(), 10.0), step(loom, 15.0, wait_for=wait), seconds=25.0)
        ],
    )
    engine = Engine(_rig({}), proto, out, clock="virtual", seed=seed)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


def test_a_brain_triggered_loom_starts_within_two_volumes_of_the_crossing(tmp_path: Path) -> None:
    path = _brain_triggered_session(tmp_path / "a", seed=4)
    with h5py.File(path, "r") as f:
        trig = read_table(f["live/triggers"])
        volumes = f["live/volume"][:]
        dff = f["live/traces_dff"][:]
        ids = f["live/labels/id"][:]
        tuning = f["ground_truth/tuning"][:][ids - 1]
        plane = f["volumes/plane_sample"][:]
        frames = read_table(f["stimulus/frames"])
        events = read_table(f["events"])
    assert len(trig["volume"]) == 1 and trig["timed_out"][0] == 0
    start = int(trig["step_start_sample"][0])
    # the first volume of the step whose live mean ΔF/F of the light-ON cells passed 0.5
    signal = dff[:, tuning == TUNINGS.index("light_on")].mean(axis=1)
    during = plane[volumes, -1] >= start
    crossing = int(volumes[np.flatnonzero(during & (signal > 0.5))[0]])
    assert trig["volume"][0] == crossing
    assert trig["value"][0] > 0.5
    shown = int(trig["shown_sample"][0])
    period = PERIOD_S * 6000.0
    assert plane[crossing, -1] < shown <= plane[crossing, -1] + 2 * period
    assert trig["committed_sample"][0] <= trig["decision_sample"][0] <= shown
    assert 0 <= trig["latency_s"][0] <= 2 * PERIOD_S
    # frames: the background while waiting, the loom's disk from the shown frame on
    step_frames = (frames["flip_sample"] >= start) & (frames["flip_sample"] < start + 15 * 6000)
    waiting = step_frames & (frames["flip_sample"] < shown)
    looming = step_frames & (frames["flip_sample"] >= shown)
    assert waiting.any() and np.all(frames["stim_id"][waiting] == 0)
    assert frames["stim_id"][looming][0] == 1 and frames["param3"][looming][0] > 0
    assert any("brain trigger" in m for m in events["message"])
    from rig.session import format_summary, summarise

    text = format_summary(summarise(path))  # zaprig inspect
    assert "brain-triggered steps: 1 (0 timed out)" in text and "neurons traced" in text
    # virtual time: the same decision, to the sample, in another run
    again = _brain_triggered_session(tmp_path / "b", seed=4)
    with h5py.File(again, "r") as f:
        trig2 = read_table(f["live/triggers"])
    assert {k: v.tolist() for k, v in trig.items()} == {k: v.tolist() for k, v in trig2.items()}


def test_a_brain_triggered_step_needs_the_readout(tmp_path: Path) -> None:
    from stimuli.library import Shadow
    from stimuli.protocol import WaitFor

    wait = WaitFor(region="all", above=0.5, timeout_s=5.0)
    proto = Protocol(
        name="p",
        conditions=[condition("c", step(Shadow(mode="loom"), 10.0, wait_for=wait), seconds=10)],
    )
    engine = Engine(load_config(), proto, tmp_path, clock="virtual")
    with pytest.raises(ConfigError, match=r"\[readout\] enabled = true"):
        engine.arm()
    with pytest.raises(ValueError, match="shorter than the step"):
        step(Shadow(mode="loom"), 4.0, wait_for=wait)
    with pytest.raises(ValueError, match=r"wait_for\.region"):
        WaitFor(region="tectum", above=1.0, timeout_s=1.0)


def test_the_trigger_sample_reaches_the_renderer_process_state() -> None:
    """PsychoPy draws in its own process: the decision crosses in the shared loop state."""
    from stimuli.closed_loop import LoopState
    from stimuli.render._psychopy import LoopStateBlock

    block = LoopStateBlock(mp.get_context("spawn"))
    block.write(LoopState(velocity=1.0, condition=2, trigger_sample=123_456), 130_000, 1.0)
    got = block.read()
    assert got is not None and got[1].trigger_sample == 123_456 and got[1].condition == 2


def test_in_real_time_the_readout_adds_no_dropped_volumes(tmp_path: Path) -> None:
    """A real-time session with the readout on: every volume is written, none dropped, and the
    readout keeps up (a few rows may be skipped on a loaded machine, never a volume)."""
    engine = Engine(_rig({}), _flash_protocol(8.0), tmp_path, clock="realtime", seed=1)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None and engine.readout is not None
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["volumes_dropped"] == 0
        n = f["volumes/raw"].shape[0]
        rows = f["live/volume"].shape[0]
    assert n == engine.timeline.n_volumes
    assert rows + engine.readout.skipped == n - 1  # every volume after the first: a row or a skip
    assert rows >= (n - 1) // 2


def test_a_stop_mid_run_ends_the_readout_and_closes_the_file(tmp_path: Path) -> None:
    """Abort while the readout runs: the file closes 'aborted' with the rows read so far, and
    the readout process is gone (it ignores Ctrl-C; the engine ends it)."""
    engine = Engine(_rig({}), _flash_protocol(30.0), tmp_path, clock="realtime", seed=1)
    engine.subscribe_readout(
        lambda row: engine.request_stop("test stop") if row.volume >= 3 else None
    )
    assert engine.run() is RunState.ABORTED
    assert engine.readout is not None and not engine.readout.alive()
    assert engine.path is not None
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["status"] == "aborted"
        rows = f["live/volume"].shape[0]
        assert 3 <= rows <= f["volumes/raw"].shape[0]
