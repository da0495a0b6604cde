"""Faults injected from the rig config: each is noticed within 1 s, logged, the laser goes off,
and the session file ends valid with a status that says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from rig.core.config import FaultConfig, load_config
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Flash, Flow
from stimuli.protocol import Protocol, condition, step

FAULT_AT_S = 3.0
PROTO = Protocol(
    name="fault drill",
    conditions=[
        condition("flow", step(Flow(gain=4.0), 10.0), seconds=10.0),
        condition("flash", step(Flash(period_s=2, on_s=1), 2.0), seconds=10.0),
    ],
)


def run_with(tmp_path: Path, clock: str = "virtual", **fault: float) -> tuple[Engine, RunState]:
    rig = load_config().with_simulation(faults=FaultConfig(**fault))
    proto = PROTO if clock == "virtual" else PROTO.scaled(0.4)
    engine = Engine(rig, proto, tmp_path, clock=clock, seed=2)
    return engine, engine.run()


def laser_emission_ends_off(engine: Engine) -> bool:
    device = engine.devices.laser.device
    changes = device.emission_changes()
    return bool(changes) and changes[0][0] is True and changes[-1][0] is False


@pytest.mark.parametrize(
    ("fault", "words", "clock", "source"),
    [
        ("camera_stops_at_s", "camera stopped delivering frames", "virtual", "camera"),
        ("daq_overflow_at_s", "overflow", "virtual", "daq"),
        ("renderer_dies_at_s", "renderer", "virtual", "renderer"),
        ("laser_disconnects_at_s", "laser not answering", "virtual", "laser"),
        # the writer's faults are timed against the wall clock: run those in real time
        ("disk_full_at_s", "disk full", "realtime", "writer"),
        ("writer_dies_at_s", "writer process died", "realtime", "writer"),
    ],
)
def test_fault_fails_the_session_cleanly(
    tmp_path: Path, fault: str, words: str, clock: str, source: str
) -> None:
    engine, final = run_with(tmp_path, clock, **{fault: FAULT_AT_S})
    assert final is RunState.FAILED
    if fault == "laser_disconnects_at_s":
        # a laser whose port vanished cannot be switched off from here: the file says so
        with h5py.File(engine.path, "r") as f:
            assert any("laser may still be on" in m for m in read_table(f["events"])["message"])
    else:
        assert laser_emission_ends_off(engine)
    fs = engine.rig.daq.sample_rate_hz
    with h5py.File(engine.path, "r") as f:  # a plain open: the file was closed properly
        assert f.attrs["status"] == "failed"
        ev = read_table(f["events"])
        hits = [
            int(s)
            for s, k, m in zip(ev["sample"], ev["kind"], ev["message"])
            if k == "fault" and words in m
        ]
        assert hits, list(ev["message"])
        # the device that failed is named by the event's source, and the final "session
        # failed" event keeps it (the app lights that lamp without reading the words)
        failed = [
            str(src)
            for k, m, src in zip(ev["kind"], ev["message"], ev["source"])
            if k == "fault" and str(m).startswith("session failed:")
        ]
        assert failed == [source], list(zip(ev["message"], ev["source"]))
        # detected within 1 s of the fault (sim time)
        assert hits[0] <= (FAULT_AT_S + 1.0) * fs
        # nothing recorded before the fault is lost (the writer flushes at least every 1 s)
        assert f["stimuli_and_ephys"].shape[0] >= (FAULT_AT_S - 2.0) * fs
        json.loads(f.attrs["hardware_config"])


def test_one_dropped_frame_is_logged_and_the_run_carries_on(tmp_path: Path, check_session) -> None:
    engine, final = run_with(tmp_path, camera_drops_frame_at_s=FAULT_AT_S)
    assert final is RunState.COMPLETE
    with h5py.File(engine.path, "r") as f:
        ev = read_table(f["events"])
        assert sum("missing frame: volume" in m for m in ev["message"]) == 1
        assert f.attrs["frames_missing"] == 1
    assert check_session(engine.path).returncode == 0


def test_stop_request_ends_aborted_with_laser_off(tmp_path: Path, check_session) -> None:
    engine = Engine(load_config(), PROTO, tmp_path, clock="virtual", seed=2)
    engine.subscribe(lambda live: live.s0 > 5 * 6000 and engine.request_stop("test stop"))
    assert engine.run() is RunState.ABORTED
    assert laser_emission_ends_off(engine)
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["status"] == "aborted"
        c = read_table(f["protocol/conditions"])
        assert list(c["name"]) == ["flow"]  # the second condition never started
    assert check_session(engine.path).returncode == 0


def test_an_existing_session_file_is_never_overwritten(tmp_path: Path) -> None:
    a = Engine(load_config(), PROTO.scaled(0.1), tmp_path, clock="virtual", session_name="same")
    a.run()
    before = a.path.read_bytes()
    b = Engine(load_config(), PROTO.scaled(0.1), tmp_path, clock="virtual", session_name="same")
    b.run()
    assert b.path != a.path and a.path.read_bytes() == before


def test_a_lost_laser_is_reported_unknown_never_off(tmp_path: Path) -> None:
    engine, final = run_with(tmp_path, laser_disconnects_at_s=FAULT_AT_S)
    assert final is RunState.FAILED
    assert engine.status().laser == "unknown"
    with h5py.File(engine.path, "r") as f:
        messages = list(read_table(f["events"])["message"])
    first = next(i for i, m in enumerate(messages) if "laser may still be on" in m)
    assert "laser off" not in messages[first:]


def test_a_clean_laser_off_is_confirmed(tmp_path: Path) -> None:
    engine, final = run_with(tmp_path)
    assert final is RunState.COMPLETE
    assert engine.status().laser == "off"


def test_a_missing_camera_plane_is_counted_in_the_status_and_the_file(tmp_path: Path) -> None:
    engine, final = run_with(tmp_path, camera_drops_frame_at_s=FAULT_AT_S)
    assert final is RunState.COMPLETE
    st = engine.status()
    assert (st.dropped_planes, st.dropped_volumes, st.faults) == (1, 0, 0)
    assert st.warnings >= 1  # the missing frame is a warning, not a fault
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["planes_dropped"] == f.attrs["frames_missing"] == 1
        assert f.attrs["volumes_dropped"] == 0


def test_a_clean_stop_is_recorded_as_stopped(tmp_path: Path) -> None:
    engine = Engine(load_config(), PROTO, tmp_path, clock="virtual", seed=2)
    engine.subscribe(lambda live: live.s0 > 5 * 6000 and engine.request_clean_stop("test stop"))
    assert engine.run() is RunState.STOPPED
    assert laser_emission_ends_off(engine)
    with h5py.File(engine.path, "r") as f:
        assert f.attrs["status"] == "stopped"
        assert "run stopped: test stop" in list(read_table(f["events"])["message"])
