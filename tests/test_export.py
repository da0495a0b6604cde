"""Exports of a short simulated session, read back the way their users read them.

The zapbench layout is read with tensorstore and the dataset's own 10chFlt
logic; the NWB file with pynwb's reader and validator. Ground truth is tested
on copies of the session file whose ``/ground_truth`` is replaced by neurons
placed by hand, so every label voxel is known.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.signal
import tensorstore as ts

from rig.cli import main
from rig.core.errors import SessionFileError
from rig.export import NwbExport, ZapbenchExport, export_nwb, export_zapbench
from rig.export._common import length_unit, session_info, time_unit
from rig.export._zapbench import STREAM_FILE, write_stream, write_volumes
from rig.session import SessionReader, read_table
from stimuli.builtin import CONDITION_NAMES
from tests._session_copies import stopped_at_once

FISH = {
    "fish_id": "zf-042",
    "age_dpf": 7,
    "genotype": "elavl3:H2B-GCaMP6s",
    "experimenter": "A. B.",
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in protocol at 0.3% length (24 volumes of 8 x 80 x 128), virtual time."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    out = tmp_path_factory.mktemp("export_sessions")
    engine = Engine(
        load_config(), dataset_protocol().scaled(0.003), out, clock="virtual", seed=1, fish=FISH
    )
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


@pytest.fixture(scope="module")
def zapbench(session: Path, tmp_path_factory: pytest.TempPathFactory) -> ZapbenchExport:
    return export_zapbench(session, tmp_path_factory.mktemp("zb") / "export", progress=False)


def _open(path: Path) -> ts.TensorStore:
    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}).result()


def _read_10chflt(path: Path) -> np.ndarray:
    """The dataset's reader: a size not divisible by 10 is an error."""
    data = np.fromfile(path, np.float32)
    assert data.size % 10 == 0
    return data.reshape(-1, 10).T


# -- zapbench layout ------------------------------------------------------------------------


def test_stream_is_the_session_stream_byte_for_byte(session: Path, zapbench: ZapbenchExport):
    path = zapbench.out / STREAM_FILE
    with h5py.File(session, "r") as f:
        full = f["stimuli_and_ephys"][...]
        markers = f["volumes/marker_sample"][...]
        planes = f["volumes/plane_sample"][...]
    # the session's stream up to the marker that closes the last volume (left out)
    in_file = scipy.signal.find_peaks(full[:, 2], distance=500, height=3.55)[0]
    assert len(in_file) == len(markers) + 1
    stream = full[: zapbench.samples]
    assert in_file[-1] - 50 < zapbench.samples <= in_file[-1]
    assert zapbench.samples > planes[-1, -1]
    assert path.read_bytes() == stream.tobytes()
    rows = _read_10chflt(path)
    assert rows.shape == (10, len(stream))
    np.testing.assert_array_equal(rows, stream.T)
    # the dataset's alignment code finds our volumes in the exported trigger row: one
    # marker per volume, and every plane of the last one
    peaks = scipy.signal.find_peaks(rows[2], distance=500, height=3.55)[0]
    np.testing.assert_array_equal(peaks, markers)
    low = scipy.signal.find_peaks(rows[2], distance=50, height=1)[0]
    assert len(low) - len(peaks) == planes.size


def test_stream_blocks_join_without_gaps(session: Path, tmp_path: Path):
    out = tmp_path / "s.10chFlt"
    with h5py.File(session, "r") as f:
        n = write_stream(f, out, block_rows=9_999)  # many blocks, the last a short one
        assert f["stimuli_and_ephys"].shape[0] > n > 3 * 9_999
        assert out.read_bytes() == f["stimuli_and_ephys"][:n].tobytes()


@pytest.mark.parametrize(
    ("um", "unit"),
    [(0.406, "406 nm"), (4.0, "4000 nm"), (6.496, "6496 nm"), (0.1234567, "123.4567 nm")],
)
def test_voxel_sizes_are_written_as_the_dataset_writes_them(um: float, unit: str):
    assert length_unit(um) == unit


def test_volume_period_is_written_as_the_dataset_writes_it():
    assert time_unit(0.9141) == "0.9141 s"
    assert time_unit(2.0) == "2 s"


def test_raw_volumes_have_the_dataset_axes_units_and_chunks(
    session: Path, zapbench: ZapbenchExport
):
    arr = _open(zapbench.out / "raw")
    with h5py.File(session, "r") as f:
        raw = f["volumes/raw"][...]
    t, z, y, x = raw.shape
    assert arr.domain.labels == ("x", "y", "z", "t")
    assert arr.domain.shape == (x, y, z, t) == zapbench.shape_xyzt
    assert arr.dtype == ts.uint16
    # voxel size (4.0, 6.496, 6.496) um (z, y, x) and the dataset's volume period
    assert [str(u) for u in arr.dimension_units] == [
        str(ts.Unit(6496, "nm")),
        str(ts.Unit(6496, "nm")),
        str(ts.Unit(4000, "nm")),
        str(ts.Unit(0.9141, "s")),
    ]
    meta = json.loads((zapbench.out / "raw" / "zarr.json").read_text())
    assert meta["attributes"]["dimension_units"] == ["6496 nm", "6496 nm", "4000 nm", "0.9141 s"]
    assert meta["dimension_names"] == ["x", "y", "z", "t"]
    # the dataset's 512 x 512 x 1 x 1 chunks, clipped to 128 x 80
    assert arr.chunk_layout.read_chunk.shape == (128, 80, 1, 1)
    np.testing.assert_array_equal(arr.read().result(), raw.transpose(3, 2, 1, 0))
    assert raw.any()  # a real brain was imaged, not a zero volume compared with zeros


def test_unsharded_raw_is_one_file_per_chunk_like_the_dataset(session: Path, tmp_path: Path):
    with SessionReader(session) as r:
        f = r.file
        info = session_info(r)
        write_volumes(f, info, tmp_path / "raw", progress=False, shard_volumes=False)
        raw = f["volumes/raw"][...]
    meta = json.loads((tmp_path / "raw" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [128, 80, 1, 1]
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "blosc"]
    chunks = [p for p in (tmp_path / "raw" / "c").rglob("*") if p.is_file()]
    assert len(chunks) == raw.shape[0] * raw.shape[1]
    np.testing.assert_array_equal(_open(tmp_path / "raw").read().result(), raw.T)


@pytest.mark.parametrize("shard", [True, False])
def test_volumes_wider_than_a_chunk_split_into_512_chunks(
    session: Path, tmp_path: Path, shard: bool
):
    """The dataset's 1328-row planes are not a multiple of 512: edge chunks are partial."""
    copy = tmp_path / "wide.h5"
    shutil.copy(session, copy)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4000, size=(2, 3, 600, 1100), dtype=np.uint16)  # t, z, y, x
    with h5py.File(copy, "r+") as f:
        attrs = dict(f["volumes/raw"].attrs)
        del f["volumes/raw"]
        f.create_dataset("volumes/raw", data=raw, chunks=(1, 1, 600, 1100))
        f["volumes/raw"].attrs.update(attrs)
    with SessionReader(copy) as r:
        info = session_info(r)
        write_volumes(r.file, info, tmp_path / "raw", progress=False, shard_volumes=shard)
    arr = _open(tmp_path / "raw")
    assert arr.chunk_layout.read_chunk.shape == (512, 512, 1, 1)
    np.testing.assert_array_equal(arr.read().result(), raw.transpose(3, 2, 1, 0))


def test_volume_export_memory_stays_near_one_volume(session: Path, tmp_path: Path):
    with SessionReader(session) as r:
        f = r.file
        info = session_info(r)
        t, z, y, x = info.shape_tzyx
        tracemalloc.start()
        try:
            write_volumes(f, info, tmp_path / "raw", progress=False, shard_volumes=True)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    one_volume = z * y * x * 2
    assert t >= 20
    assert peak < 8 * one_volume, f"peak {peak} B for {t} volumes of {one_volume} B"


def test_conditions_json_matches_the_protocol_table(session: Path, zapbench: ZapbenchExport):
    c = json.loads((zapbench.out / "conditions.json").read_text())
    with h5py.File(session, "r") as f:
        table = read_table(f["protocol/conditions"])
        n_volumes = f["volumes/raw"].shape[0]
    assert c["names"] == list(CONDITION_NAMES)
    assert c["offsets"][:-1] == table["start_volume"].tolist()
    assert c["offsets"][-1] == table["stop_volume"][-1] == n_volumes
    assert c["start_samples"] == table["start_sample"].tolist()
    assert c["offsets"] == sorted(c["offsets"]) and c["offsets"][0] == 0


def test_metadata_says_where_the_export_came_from(session: Path, zapbench: ZapbenchExport):
    meta = json.loads((zapbench.out / "metadata.json").read_text())
    assert meta["source_session"] == session.name
    assert meta["fish"] == FISH
    assert meta["sample_rate_hz"] == 6000.0
    assert meta["voxel_size_um_xyz"] == [6.496, 6.496, 4.0]
    assert meta["layout"]["segmentation"] == "segmentation"
    assert meta["notes"] == []


def test_simulated_session_ground_truth_is_exported(session: Path, zapbench: ZapbenchExport):
    with h5py.File(session, "r") as f:
        pos = f["ground_truth/positions_zyx"][...]
        traces = f["ground_truth/traces"][...]
    seg = _open(zapbench.out / "segmentation")
    tr = _open(zapbench.out / "ground_truth_traces")
    assert seg.domain.labels == ("x", "y", "z") and seg.dtype == ts.int32
    assert tr.domain.labels == ("t", "f") and tr.dtype == ts.float32
    np.testing.assert_array_equal(tr.read().result(), traces)
    labels = seg.read().result()
    assert zapbench.neurons == len(pos) == traces.shape[1]
    # nearly every neuron owns the voxel at its centre (a few share a centre voxel)
    iz, iy, ix = np.rint(pos).astype(int).T
    own = labels[ix, iy, iz] == np.arange(1, len(pos) + 1)
    assert own.mean() > 0.9
    assert set(np.unique(labels)) <= set(range(len(pos) + 1))


@pytest.fixture
def hand_placed(session: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A copy of the session with four neurons placed by hand and known traces."""
    copy = tmp_path / "gt.h5"
    shutil.copy(session, copy)
    pos = np.array([[2.0, 10.2, 20.4], [2.0, 10.0, 23.0], [5.0, 40.0, 60.0], [7.4, 79.0, 127.0]])
    with h5py.File(copy, "r+") as f:
        t = f["volumes/raw"].shape[0]
        del f["ground_truth"]
        traces = np.arange(t * 4, dtype=np.float32).reshape(t, 4)
        f["ground_truth/positions_zyx"] = pos
        f["ground_truth/traces"] = traces
    return copy, traces


def test_segmentation_disks_go_to_the_nearest_neuron(hand_placed, tmp_path: Path):
    copy, traces = hand_placed
    r = export_zapbench(copy, tmp_path / "out", progress=False, label_radius_px=2.0)
    labels = _open(r.out / "segmentation").read().result()  # (x, y, z)
    assert labels.shape == (128, 80, 8)
    assert labels[20, 10, 2] == 1 and labels[23, 10, 2] == 2
    assert labels[21, 10, 2] == 1  # 0.63 px from neuron 1, 2 px from neuron 2
    assert labels[22, 10, 2] == 2  # 1.61 px from neuron 1, 1 px from neuron 2
    assert np.count_nonzero(labels == 3) == 13  # a full disk of radius 2
    assert labels[60, 40, 5] == 3 and labels[62, 40, 5] == 3 and labels[63, 40, 5] == 0
    assert np.count_nonzero(labels == 4) == 6  # a quarter disk in the far corner of plane 7
    assert np.count_nonzero(labels[:, :, [0, 1, 3, 4, 6]]) == 0
    np.testing.assert_array_equal(_open(r.out / "ground_truth_traces").read().result(), traces)
    assert [str(u) for u in _open(r.out / "segmentation").dimension_units] == [
        str(ts.Unit(6496, "nm")),
        str(ts.Unit(6496, "nm")),
        str(ts.Unit(4000, "nm")),
    ]


def test_session_without_ground_truth_exports_no_segmentation(session: Path, tmp_path: Path):
    copy = tmp_path / "real.h5"
    shutil.copy(session, copy)
    with h5py.File(copy, "r+") as f:
        del f["ground_truth"]
    r = export_zapbench(copy, tmp_path / "out", progress=False)
    assert r.neurons == 0
    assert not (r.out / "segmentation").exists()
    assert not (r.out / "ground_truth_traces").exists()
    assert (r.out / "raw" / "zarr.json").exists() and (r.out / STREAM_FILE).exists()
    assert json.loads((r.out / "metadata.json").read_text())["layout"]["segmentation"] is None


def test_session_stopped_before_it_started_still_exports(session: Path, tmp_path: Path):
    from pynwb import NWBHDF5IO, validate

    copy = stopped_at_once(session, tmp_path / "aborted.h5")
    z = export_zapbench(copy, tmp_path / "zb", progress=False)
    assert (z.samples, z.volumes, z.conditions) == (0, 0, 0)
    assert (z.out / STREAM_FILE).stat().st_size == 0
    assert _open(z.out / "raw").domain.shape == (128, 80, 8, 0)
    assert json.loads((z.out / "conditions.json").read_text())["offsets"] == []
    assert any("aborted" in n for n in z.notes)
    n = export_nwb(copy, tmp_path / "aborted.nwb", progress=False)
    assert validate(path=str(n.path)) == []
    with NWBHDF5IO(n.path, "r") as io:
        nwb = io.read()
        assert nwb.epochs is None and "volumes" not in nwb.acquisition
        assert len(nwb.intervals["swim_bouts"]) == 0


def test_export_refuses_to_overwrite_and_bad_sessions(session: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("an earlier export")
    with pytest.raises(SessionFileError, match="already exists"):
        export_zapbench(session, out, progress=False)
    assert (out / "old.txt").read_text() == "an earlier export"
    with pytest.raises(SessionFileError, match="no such session file"):
        export_zapbench(tmp_path / "missing.h5", tmp_path / "x", progress=False)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(SessionFileError, match="not a zaprig session file"):
        export_nwb(other, tmp_path / "x.nwb", progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.nwb").exists()


def test_failed_export_leaves_no_half_folder(session: Path, tmp_path: Path):
    copy = tmp_path / "broken.h5"
    shutil.copy(session, copy)
    with h5py.File(copy, "r+") as f:
        # ground truth that does not fit together: found after stream and volumes are written
        del f["ground_truth/positions_zyx"]
        f["ground_truth/positions_zyx"] = np.zeros((4, 2))
    with pytest.raises(SessionFileError, match="positions_zyx"):
        export_zapbench(copy, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_export_zapbench(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["export", str(session), "--format", "zapbench", str(tmp_path / "zb")]) == 0
    out = capsys.readouterr().out
    assert "x,y,z,t = 128 x 80 x 8 x 24" in out
    assert (tmp_path / "zb" / STREAM_FILE).exists()
    assert main(["export", str(session), "--format", "zapbench", str(tmp_path / "zb")]) == 2
    assert "already exists" in capsys.readouterr().err


# -- NWB ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nwb_copy(session: Path, tmp_path_factory: pytest.TempPathFactory) -> NwbExport:
    return export_nwb(session, tmp_path_factory.mktemp("nwb") / "s.nwb", progress=False)


def test_nwb_passes_the_validator(nwb_copy: NwbExport):
    from pynwb import validate

    assert nwb_copy.volumes_copied
    assert validate(path=str(nwb_copy.path)) == []


def test_nwb_subject_and_session_metadata(session: Path, nwb_copy: NwbExport):
    from pynwb import NWBHDF5IO

    with h5py.File(session, "r") as f:
        started = str(f.attrs["started_at"])
    with NWBHDF5IO(nwb_copy.path, "r") as io:
        nwb = io.read()
        s = nwb.subject
        assert (s.subject_id, s.age, s.genotype, s.species) == (
            "zf-042",
            "P7D",
            "elavl3:H2B-GCaMP6s",
            "Danio rerio",
        )
        assert nwb.session_start_time == datetime.fromisoformat(started)
        assert list(nwb.experimenter) == ["A. B."]
        assert json.loads(nwb.stimulus_notes)["name"].startswith("zapbench")


def test_nwb_daq_rows_are_the_session_rows(session: Path, nwb_copy: NwbExport):
    from pynwb import NWBHDF5IO

    with h5py.File(session, "r") as f:
        stream = f["stimuli_and_ephys"][...]
        fs = float(f["stimuli_and_ephys"].attrs["sample_rate_hz"])
    with NWBHDF5IO(nwb_copy.path, "r") as io:
        nwb = io.read()
        tail = nwb.acquisition["tail_electrodes"]
        assert (tail.rate, tail.starting_time, tail.unit) == (fs, 0.0, "V")
        np.testing.assert_array_equal(tail.data[:], stream[:, :2])
        np.testing.assert_array_equal(nwb.acquisition["camera_trigger"].data[:], stream[:, 2])
        for name, row in (("velocity", 8), ("gain", 9), ("condition", 4), ("stim_id", 7)):
            ts_ = nwb.stimulus[name]
            assert ts_.rate == fs and ts_.starting_time == 0.0
            np.testing.assert_array_equal(ts_.data[:], stream[:, row])
        assert nwb.stimulus["velocity"].unit == "mm/s"


def test_nwb_volumes_are_the_session_volumes(session: Path, nwb_copy: NwbExport):
    from pynwb import NWBHDF5IO

    with h5py.File(session, "r") as f:
        raw = f["volumes/raw"][...]
        start = f["volumes/start_sample"][...]
        planes = f["volumes/plane_sample"][...]
    with NWBHDF5IO(nwb_copy.path, "r") as io:
        nwb = io.read()
        v = nwb.acquisition["volumes"]
        assert type(v).__name__ == "OnePhotonSeries"
        np.testing.assert_array_equal(v.data[:], raw.transpose(0, 3, 2, 1))  # (t, x, y, z)
        np.testing.assert_allclose(v.timestamps[:], start / 6000.0)
        np.testing.assert_allclose(v.imaging_plane.grid_spacing[:], [6.496e-6, 6.496e-6, 4e-6])
        timing = nwb.processing["ophys"]["volume_timing"]
        np.testing.assert_allclose(timing["plane_times"].data[:], planes / 6000.0)


def test_nwb_conditions_bouts_frames_and_events(session: Path, nwb_copy: NwbExport):
    from pynwb import NWBHDF5IO

    with h5py.File(session, "r") as f:
        c = read_table(f["protocol/conditions"])
        b = read_table(f["behavior/bouts"])
        fr = read_table(f["stimulus/frames"])
        ev = read_table(f["events"])
    with NWBHDF5IO(nwb_copy.path, "r") as io:
        nwb = io.read()
        ep = nwb.epochs.to_dataframe()
        assert list(ep["condition"]) == list(CONDITION_NAMES)
        assert [t[0] for t in ep["tags"]] == list(CONDITION_NAMES)
        np.testing.assert_allclose(ep["start_time"], c["start_sample"] / 6000.0)
        np.testing.assert_array_equal(ep["start_volume"], c["start_volume"])
        bouts = nwb.intervals["swim_bouts"].to_dataframe()
        assert len(bouts) == len(b["start_sample"]) == nwb_copy.bouts
        np.testing.assert_array_equal(bouts["power_left"], b["power_left"])
        np.testing.assert_array_equal(bouts["power_right"], b["power_right"])
        np.testing.assert_allclose(bouts["start_time"], b["start_sample"] / 6000.0)
        frames = nwb.intervals["stimulus_frames"]
        assert len(frames) == len(fr["frame"]) == nwb_copy.frames
        np.testing.assert_array_equal(frames["velocity"].data[:], fr["velocity"])
        np.testing.assert_allclose(frames["stop_time"].data[:-1], fr["flip_sample"][1:] / 6000.0)
        log = nwb.processing["session_log"]["events"].to_dataframe()
        assert list(log["message"]) == [str(m) for m in ev["message"]]


def test_large_nwb_links_volumes_to_the_session_file(session: Path, tmp_path: Path):
    from pynwb import NWBHDF5IO, validate

    (tmp_path / "nwb").mkdir()
    out = tmp_path / "nwb" / "linked.nwb"
    r = export_nwb(session, out, copy_volumes_max_bytes=0, progress=False)
    assert not r.volumes_copied and any("linked" in n for n in r.notes)
    assert validate(path=str(out)) == []
    with NWBHDF5IO(out, "r") as io:
        v = io.read().acquisition["volumes"]
        assert v.format == "external"
        (rel,) = v.external_file[:]
        assert (out.parent / rel).resolve() == session.resolve()
        assert list(v.dimension[:]) == [128, 80, 8]
        assert len(v.timestamps) == 24


def test_cli_export_nwb(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "cli.nwb"
    assert main(["export", str(session), "--format", "nwb", str(out)]) == 0
    assert "copied into the file" in capsys.readouterr().out
    assert out.stat().st_size > 0
    assert main(["export", str(session), "--format", "nwb", str(tmp_path / "no" / "x.nwb")]) == 2
    assert "does not exist" in capsys.readouterr().err
