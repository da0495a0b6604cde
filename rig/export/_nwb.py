"""Export a session as one NWB file (pynwb), readable by any NWB tool.

Where each part of the session goes:

=============================  ================================================================
session file                   NWB
=============================  ================================================================
root attrs, fish JSON          NWBFile (start time, description, experimenter), Subject
tail rows 0-1, trigger row 2   acquisition: TimeSeries ``tail_electrodes`` (n, 2), ``camera_trigger``
stimulus rows 3-9              stimulus: one TimeSeries per row (``velocity``, ``gain``, ...)
/volumes/raw                   acquisition: OnePhotonSeries ``volumes`` (t, x, y, z) + ImagingPlane
/volumes/*_sample, dropped     processing/ophys: DynamicTable ``volume_timing``
/protocol/conditions           epochs (tags = condition name) with index and volume columns
/behavior/bouts                intervals: TimeIntervals ``swim_bouts`` with the power columns
/stimulus/frames               intervals: TimeIntervals ``stimulus_frames``, one row per frame
/events                        processing/session_log: DynamicTable ``events``
=============================  ================================================================

All times are seconds on the DAQ clock (sample / sample_rate_hz, sample 0 at
``session_start_time``); the 6 kHz rows are regular series (``rate``,
``starting_time`` 0), volumes carry their measured start times.

Volumes up to ``copy_volumes_max_bytes`` (1 GB) are copied, transposed to NWB's
(t, x, y, z), streamed volume by volume. Larger ones stay in the session file
and the series points at it with ``external_file`` (format "external"): this is
the mechanism the NWB schema has for image data kept outside the file and it
passes the validator, unlike an HDF5 external link, which would expose the
session's (t, z, y, x) array under a name that promises (t, x, y, z).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hdmf.backends.hdf5 import H5DataIO
from hdmf.common import DynamicTable, ElementIdentifiers, VectorData
from hdmf.data_utils import GenericDataChunkIterator
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject
from pynwb.ophys import ImagingPlane, OnePhotonSeries, OpticalChannel
from tqdm import tqdm

from rig.core.errors import SessionFileError
from rig.export._common import SessionInfo, refuse_existing, session_info
from rig.session import ROW, SessionReader, read_table

__all__ = ["NwbExport", "export_nwb"]

COPY_VOLUMES_MAX_BYTES = 1 << 30
_STREAM_CHUNK = 1 << 16  # rows per HDF5 chunk of a 6 kHz series (~11 s)
_STREAM_BUFFER = 1 << 20  # rows per read from the session file

#: stimulus rows: NWB name -> (unit, what it is); the dataset's channel name is added
_STIMULUS_ROWS: dict[str, tuple[str, str]] = {
    "velocity": ("mm/s", "visual velocity; closed loop: the grating velocity"),
    "gain": ("n.a.", "closed-loop gain"),
    "condition": ("n.a.", "condition index, 1-based (condition c -> c + 1)"),
    "stim_id": ("n.a.", "stimulus id within the condition"),
    "param3": ("n.a.", "condition-specific stimulus parameter"),
    "param4": ("n.a.", "condition-specific stimulus parameter"),
    "param5": ("n.a.", "stimulus parameter"),
}


@dataclass
class NwbExport:
    """What was written, for the CLI's summary and for tests."""

    path: Path
    volumes: int
    volumes_copied: bool
    bouts: int
    conditions: int
    frames: int
    notes: list[str] = field(default_factory=list)


class _Rows(GenericDataChunkIterator):  # type: ignore[misc]
    """Columns of the (n, 10) stream, read block by block from the session file."""

    def __init__(self, ds: h5py.Dataset, cols: list[int], bar: tqdm) -> None:
        self._ds, self._cols, self._bar = ds, cols, bar
        n = int(ds.shape[0])
        chunk = min(n, _STREAM_CHUNK)
        buffer = min(n, _STREAM_BUFFER)
        one = len(cols) == 1
        super().__init__(
            chunk_shape=(chunk,) if one else (chunk, len(cols)),
            buffer_shape=(buffer,) if one else (buffer, len(cols)),
        )
        bar.total += n * len(cols) * 4

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        block = self._ds[selection[0]]
        out = block[:, self._cols[0]] if len(self._cols) == 1 else block[:, self._cols]
        self._bar.update(out.nbytes)
        return out

    def _get_maxshape(self) -> tuple[int, ...]:
        n = int(self._ds.shape[0])
        return (n,) if len(self._cols) == 1 else (n, len(self._cols))

    def _get_dtype(self) -> np.dtype:
        return np.dtype(np.float32)


class _Volumes(GenericDataChunkIterator):  # type: ignore[misc]
    """/volumes/raw (t, z, y, x) as (t, x, y, z), one volume per buffer.

    Chunks are 256 x 256 x all planes: in NWB's order z is the fastest axis, so
    a one-plane chunk would make HDF5 gather every z-th value (3-4x slower).
    """

    def __init__(self, ds: h5py.Dataset, bar: tqdm) -> None:
        self._ds, self._bar = ds, bar
        t, z, y, x = (int(v) for v in ds.shape)
        super().__init__(chunk_shape=(1, min(x, 256), min(y, 256), z), buffer_shape=(1, x, y, z))
        bar.total += t * z * y * x * 2

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        st, sx, sy, sz = selection
        out = np.ascontiguousarray(self._ds[st, sz, sy, sx].transpose(0, 3, 2, 1))
        self._bar.update(out.nbytes)
        return out

    def _get_maxshape(self) -> tuple[int, ...]:
        t, z, y, x = (int(v) for v in self._ds.shape)
        return (t, x, y, z)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(np.uint16)


def _start_time(info: SessionInfo) -> datetime:
    try:
        return datetime.fromisoformat(info.started_at)
    except ValueError:
        raise SessionFileError(
            f"{info.path}: root attribute started_at = {info.started_at!r} is not an ISO 8601 "
            "time; NWB needs the session start time"
        ) from None


def _subject(fish: dict[str, Any]) -> Subject:
    age = fish.get("age_dpf")
    return Subject(
        subject_id=str(fish.get("fish_id") or "unknown"),
        species="Danio rerio",
        age=f"P{int(age)}D" if age not in (None, "") else None,
        genotype=str(fish["genotype"]) if fish.get("genotype") else None,
        description="larval zebrafish, paralysed and embedded in agarose (fictive swimming)",
        sex="U",
    )


def _table(
    cls: type[DynamicTable],
    name: str,
    description: str,
    columns: dict[str, tuple[np.ndarray, str]],
) -> DynamicTable:
    """A whole table from columns at once: add_row for 400,000 frames would take minutes."""
    n = len(next(iter(columns.values()))[0])
    return cls(
        name=name,
        description=description,
        id=ElementIdentifiers(name="id", data=np.arange(n, dtype=np.int64)),
        columns=[
            VectorData(name=k, description=d, data=np.asarray(v)) for k, (v, d) in columns.items()
        ],
    )


def _stream_series(nwb: NWBFile, f: h5py.File, info: SessionInfo, bar: tqdm) -> None:
    ds = f["stimuli_and_ephys"]
    fs = info.sample_rate_hz
    names = info.channel_names

    def gz(cols: list[int]) -> H5DataIO:
        # the stimulus and trigger rows are piecewise constant: gzip shrinks them ~100x
        return H5DataIO(_Rows(ds, cols, bar), compression="gzip", compression_opts=4)

    nwb.add_acquisition(
        TimeSeries(
            name="tail_electrodes",
            data=_Rows(ds, [ROW["tail_left"], ROW["tail_right"]], bar),
            unit="V",
            rate=fs,
            starting_time=0.0,
            description=f"tail electrode signals (fictive swimming): columns left "
            f"({names[ROW['tail_left']]}), right ({names[ROW['tail_right']]}), "
            "differential, on the DAQ clock",
        )
    )
    nwb.add_acquisition(
        TimeSeries(
            name="camera_trigger",
            data=gz([ROW["trigger"]]),
            unit="V",
            rate=fs,
            starting_time=0.0,
            description=f"camera trigger read back ({names[ROW['trigger']]}): a pulse per plane, "
            "peaks above 3.55 V mark volume starts, 1-3.55 V the other planes",
        )
    )
    for key, (unit, what) in _STIMULUS_ROWS.items():
        row = ROW[key]
        nwb.add_stimulus(
            TimeSeries(
                name=key,
                data=gz([row]),
                unit=unit,
                rate=fs,
                starting_time=0.0,
                description=f"{what} (row {row}, '{names[row]}' in the dataset's stream)",
            )
        )


def _volumes(
    nwb: NWBFile,
    f: h5py.File,
    info: SessionInfo,
    out: Path,
    copy: bool,
    bar: tqdm,
) -> None:
    t, z, y, x = info.shape_tzyx
    vz, vy, vx = info.voxel_size_um_zyx
    fs = info.sample_rate_hz
    microscope = nwb.create_device(
        name="light_sheet_microscope",
        description="light-sheet microscope; camera triggered per plane by the DAQ",
    )
    plane = nwb.create_imaging_plane(
        name="whole_brain",
        optical_channel=OpticalChannel(
            name="gcamp", description="GCaMP fluorescence", emission_lambda=520.0
        ),
        description=f"whole brain as a stack of {z} light-sheet planes per volume "
        "(excitation and emission wavelengths are nominal for GCaMP)",
        device=microscope,
        excitation_lambda=488.0,
        indicator=str(info.fish.get("indicator") or "GCaMP"),
        location="whole brain",
        imaging_rate=1.0 / info.volume_period_s,
        grid_spacing=[vx * 1e-6, vy * 1e-6, vz * 1e-6],
        grid_spacing_unit="meters",
    )
    assert isinstance(plane, ImagingPlane)
    start = f["volumes/start_sample"][...]
    times = start.astype(np.float64) / fs
    common: dict[str, Any] = {
        "name": "volumes",
        "imaging_plane": plane,
        "unit": "n.a.",
        "dimension": [x, y, z],
        "timestamps": times,
    }
    if copy:
        series = OnePhotonSeries(
            data=H5DataIO(_Volumes(f["volumes/raw"], bar), compression="gzip", compression_opts=1),
            description="raw volumes (t, x, y, z), uint16 camera counts; timestamps are the "
            "measured first-plane triggers on the DAQ clock",
            **common,
        )
    else:
        rel = os.path.relpath(info.path, out.parent)
        series = OnePhotonSeries(
            external_file=[rel],
            format="external",
            starting_frame=[0],
            description=f"raw volumes not copied ({t * z * y * x * 2 / 1e9:.2f} GB): they are in "
            f"the zaprig session file {rel} at HDF5 path /volumes/raw, uint16 in (t, z, y, x) "
            "order; timestamps are the measured first-plane triggers on the DAQ clock",
            **common,
        )
    nwb.add_acquisition(series)
    dropped = np.zeros(t, dtype=bool)
    dropped[[v for v in info.dropped_volumes if 0 <= v < t]] = True
    timing = _table(
        DynamicTable,
        "volume_timing",
        "per volume: the DAQ time of its first plane trigger and of every plane trigger",
        {
            "start_time": (times, "first plane trigger (s, DAQ clock)"),
            "plane_times": (
                f["volumes/plane_sample"][...].astype(np.float64) / fs,
                "every plane trigger, (volume, plane) (s, DAQ clock)",
            ),
            "dropped": (dropped, "the volume was dropped (its data reads as zeros)"),
        },
    )
    nwb.create_processing_module("ophys", "imaging timing").add(timing)


def _conditions(nwb: NWBFile, f: h5py.File, fs: float) -> int:
    c = read_table(f["protocol/conditions"])
    if len(c["index"]) == 0:  # stopped before the first condition: no epochs table at all
        return 0
    nwb.add_epoch_column("condition", "condition name")
    nwb.add_epoch_column("index", "condition index (0-based)")
    nwb.add_epoch_column("start_volume", "first volume of the condition")
    nwb.add_epoch_column("stop_volume", "volume after the condition's last (exclusive)")
    for i in np.argsort(c["index"], kind="stable"):
        name = str(c["name"][i])
        nwb.add_epoch(
            start_time=float(c["start_sample"][i]) / fs,
            stop_time=float(c["stop_sample"][i]) / fs,
            tags=[name],
            condition=name,
            index=int(c["index"][i]),
            start_volume=int(c["start_volume"][i]),
            stop_volume=int(c["stop_volume"][i]),
        )
    return len(c["index"])


def _bouts(nwb: NWBFile, f: h5py.File, fs: float) -> int:
    b = read_table(f["behavior/bouts"])
    start, stop = b["start_sample"], b["stop_sample"]
    cols: dict[str, tuple[np.ndarray, str]] = {
        "start_time": (start / fs, "bout start (s, DAQ clock)"),
        "stop_time": (stop / fs, "bout end (s, DAQ clock)"),
        "start_sample": (start, "bout start (DAQ sample)"),
        "stop_sample": (stop, "bout end (DAQ sample)"),
    }
    for k in sorted(set(b) - {"start_sample", "stop_sample"}):
        cols[k] = (b[k], f"{k.replace('_', ' ')} of the bout (online swim power units)")
    nwb.add_time_intervals(
        _table(TimeIntervals, "swim_bouts", "fictive swim bouts detected online", cols)
    )
    return len(start)


def _frames(nwb: NWBFile, f: h5py.File, info: SessionInfo) -> int:
    fr = read_table(f["stimulus/frames"])
    fs = info.sample_rate_hz
    flip = fr["flip_sample"]
    n = len(flip)
    if n == 0:
        return 0
    # a frame is on screen from its flip to the next one; the last until the stream ends
    end = np.append(flip[1:], max(int(flip[-1]) + 1, info.n_samples))
    looks = [str(v) for v in f["stimulus/frames"].attrs.get("look_names", ())]
    cols: dict[str, tuple[np.ndarray, str]] = {
        "start_time": (flip / fs, "flip time (s, DAQ clock)"),
        "stop_time": (end / fs, "next flip (s, DAQ clock)"),
    }
    for k, v in fr.items():
        what = "stimulus frame field (docs/session-format.md)"
        if k == "look":
            what = f"drawing primitive: {', '.join(f'{i}={s}' for i, s in enumerate(looks))}"
        cols[k] = (v, what)
    nwb.add_time_intervals(
        _table(
            TimeIntervals,
            "stimulus_frames",
            "every displayed stimulus frame with the state it showed",
            cols,
        )
    )
    return n


def _events(nwb: NWBFile, f: h5py.File, fs: float) -> None:
    e = read_table(f["events"])
    table = _table(
        DynamicTable,
        "events",
        "the session's event log: protocol steps, notes, warnings, faults",
        {
            "time": (e["sample"] / fs, "when (s, DAQ clock)"),
            "sample": (e["sample"], "when (DAQ sample)"),
            "wall_time": (e["wall_time"], "wall-clock time (Unix seconds), for humans"),
            "kind": (e["kind"].astype(str), "info, protocol, note, warning or fault"),
            "message": (e["message"].astype(str), "what happened"),
        },
    )
    nwb.create_processing_module("session_log", "zaprig's event log").add(table)


def export_nwb(
    session: str | Path,
    out: str | Path,
    *,
    copy_volumes_max_bytes: int = COPY_VOLUMES_MAX_BYTES,
    progress: bool = True,
) -> NwbExport:
    """Write the session at ``session`` to the NWB file ``out``."""
    out = Path(out)
    with SessionReader(session) as reader:
        f = reader.file
        info = session_info(reader)
        refuse_existing(out, "NWB", folder=False)
        notes: list[str] = []
        if info.status != "complete":
            notes.append(f"the session's status is '{info.status}': exported what the file holds")
        t, z, y, x = info.shape_tzyx
        copy = t * z * y * x * 2 <= copy_volumes_max_bytes
        if not copy:
            notes.append(f"volumes linked, not copied: keep {info.path.name} next to {out.name}")
        fish = info.fish
        nwb = NWBFile(
            session_description=f"{info.protocol.get('name', 'protocol')} on a "
            f"{'simulated' if info.simulated else 'real'} closed-loop VR light-sheet rig",
            identifier=str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"zaprig:{info.started_at}:{info.path.name}")
            ),
            session_start_time=_start_time(info),
            session_id=info.path.stem,
            experimenter=[str(fish["experimenter"])] if fish.get("experimenter") else None,
            notes=str(fish.get("notes") or "") or None,
            data_collection=f"zaprig {info.software_version}; rig config: "
            f"{f.attrs.get('hardware_config', '')}",
            stimulus_notes=json.dumps(info.protocol),
            source_script="zaprig export --format nwb",
            source_script_file_name=info.path.name,
        )
        nwb.subject = _subject(fish)
        nwb.create_device(
            name="daq", description=f"DAQ sampling every row at {info.sample_rate_hz:g} Hz"
        )
        # one bar over every byte streamed from the session file (6 kHz rows and volumes)
        bar = tqdm(
            total=0,
            unit="B",
            unit_scale=True,
            desc="NWB",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        with bar:
            if info.n_samples:
                _stream_series(nwb, f, info, bar)
            if t:
                _volumes(nwb, f, info, out, copy, bar)
            n_cond = _conditions(nwb, f, info.sample_rate_hz)
            n_bouts = _bouts(nwb, f, info.sample_rate_hz)
            n_frames = _frames(nwb, f, info)
            _events(nwb, f, info.sample_rate_hz)
            try:
                with NWBHDF5IO(out, "w") as io:
                    io.write(nwb)
            except BaseException:
                out.unlink(missing_ok=True)  # half an NWB file is worse than none
                raise
    return NwbExport(
        path=out,
        volumes=t,
        volumes_copied=copy and t > 0,
        bouts=n_bouts,
        conditions=n_cond,
        frames=n_frames,
        notes=notes,
    )
