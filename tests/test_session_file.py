"""A short simulated session of the built-in protocol, checked the way the dataset is read."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import scipy.signal

from rig.core.config import load_config
from rig.session import CHANNEL_NAMES, read_table
from stimuli.builtin import CONDITION_NAMES, dataset_protocol
from stimuli.schedule import Schedule


def test_contract_checker_passes(short_session: Path, check_session) -> None:
    r = check_session(short_session)
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout.splitlines()[-2])
    assert info["status"] == "complete"
    assert info["conditions"] == list(CONDITION_NAMES)


def test_ttl_decodes_to_volumes_and_planes(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        ttl = f["stimuli_and_ephys"][:, 2].astype(np.float64)
        markers = f["volumes/marker_sample"][...]
        planes = f["volumes/plane_sample"][...]
        t, z = f["volumes/raw"].shape[:2]
    high = scipy.signal.find_peaks(ttl, distance=500, height=3.55)[0]
    low = np.setdiff1d(scipy.signal.find_peaks(ttl, distance=50, height=1)[0], high)
    # one marker per volume at marker_sample, and one closing the last volume
    assert len(high) == t + 1
    np.testing.assert_array_equal(high[:t], markers)
    assert np.all(planes[:, 0] - markers > 50)  # find_peaks(distance=50) keeps both pulses
    per_volume = [np.count_nonzero((low > a) & (low < b)) for a, b in itertools.pairwise(high)]
    assert set(per_volume) == {z}  # the marker is extra: z plane pulses per volume
    np.testing.assert_array_equal(low, planes.ravel())


def test_condition_row_changes_exactly_at_condition_starts(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        row4 = f["stimuli_and_ephys"][:, 4]
        c = read_table(f["protocol/conditions"])
    onsets = np.flatnonzero(np.diff(row4) != 0) + 1
    np.testing.assert_array_equal(onsets, c["start_sample"])  # 0 -> 1 at the first, then +1
    for idx, a, b in zip(c["index"], c["start_sample"], c["stop_sample"]):
        assert np.all(row4[a:b] == idx + 1)
    assert row4[0] == 0  # before the first volume: no condition


def test_conditions_start_where_the_timeline_says(short_session: Path) -> None:
    tl = Schedule.build(dataset_protocol().scaled(0.01), load_config())
    with h5py.File(short_session, "r") as f:
        c = read_table(f["protocol/conditions"])
        starts = f["volumes/start_sample"][...]
        assert f["volumes/raw"].shape[0] == tl.n_volumes
        assert f["stimuli_and_ephys"].shape[0] == tl.end_sample
    np.testing.assert_array_equal(c["start_volume"], tl.condition_bounds[:-1])
    assert c["stop_volume"][-1] == tl.n_volumes
    # each condition starts inside its first volume's first plane, after plane 0's pulse
    np.testing.assert_array_equal(
        c["start_sample"], starts[c["start_volume"]] + tl.onset_delay_samples
    )
    assert tl.onset_delay_samples == round(1e-3 * 6000)  # the 1 ms trigger pulse


def test_file_metadata_and_tables(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        a = f.attrs
        assert a["format"] == "zaprig.session" and a["status"] == "complete"
        assert a["simulated"]
        assert json.loads(a["fish"]) == {"fish_id": "f1", "age_dpf": 6}
        assert json.loads(a["protocol"])["name"].startswith("zapbench")
        assert len(a["protocol_sha256"]) == 64
        s = f["stimuli_and_ephys"]
        assert s.dtype == np.float32 and s.attrs["sample_rate_hz"] == 6000
        assert tuple(s.attrs["channel_names"]) == CHANNEL_NAMES
        raw = f["volumes/raw"]
        assert raw.dtype == np.uint16 and raw.shape[1:] == (8, 80, 128)
        assert list(raw.attrs["axes"]) == ["t", "z", "y", "x"]
        # the brain is imaged: neurons stand out of the background
        vol = raw[len(raw) // 2]
        assert vol.max() > np.median(vol) + 50
        frames = read_table(f["stimulus/frames"])
        flips = frames["flip_sample"]
        assert np.all(np.diff(flips) > 0)
        # 60 Hz on the DAQ clock
        assert abs(np.median(np.diff(flips)) - 100) <= 1
        ev = read_table(f["events"])
        assert "run complete" in list(ev["message"])
        assert f["ground_truth/traces"].shape == (raw.shape[0], 300)


def test_velocity_and_gain_rows_follow_the_frames(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        s = f["stimuli_and_ephys"]
        fr = read_table(f["stimulus/frames"])
        rows = s[...]
    k = len(fr["flip_sample"]) // 2
    a, b = fr["flip_sample"][k], fr["flip_sample"][k + 1]
    assert np.all(rows[a:b, 8] == np.float32(fr["velocity"][k]))
    assert np.all(rows[a:b, 9] == np.float32(fr["gain"][k]))
    assert np.all(rows[a:b, 7] == fr["stim_id"][k])
