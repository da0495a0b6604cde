"""Export a session in the ZAPBench dataset's released layout.

    OUT/
      stimuli_raw/stimuli_and_ephys.10chFlt   raw little-endian float32, 10 rows interleaved
      raw/                                    zarr3 uint16 (x, y, z, t), units from the session
      conditions.json                         names + offsets (start volumes + final stop)
      traces/, traces_raw/                    zarr3 float32 (t, f)    offline readout: ΔF/F, counts
      traces_labels.json                      label id + position of each traces column
      segmentation/                           zarr3 int32 (x, y, z)   } simulated sessions
      ground_truth_traces/, ground_truth_dff/ zarr3 float32 (t, f)    } with ground truth
      live_traces/, live_traces_dff/          zarr3 float32 (t, f)    } sessions with /live
      live_labels.json                        label id + position of each live trace column
      metadata.json                           where it came from: fish, rig numbers, drops

Everything streams: the 10-row stream goes out in blocks, the volumes one at
a time (transposed t,z,y,x -> x,y,z,t) with at most a few writes in flight, and
the label volume plane by plane, so memory stays bounded for a two-hour
session (~3 TB of raw volumes at the dataset's size).

The raw array's read chunks are the dataset's 512 x 512 x 1 x 1 (clipped to
the volume). By default they are stored inside one zarr3 shard per volume
(``sharding_indexed``): a reader sees the same chunks, but a two-hour session
is ~7,900 files instead of ~6.8 million. ``shard_volumes=False`` writes one
file per chunk, exactly like the released dataset.

The arrays themselves (codecs, specs, the raw volume array and its volume-range writer that
``zaprig batch`` shares) are in :mod:`rig.export._zarr`; this module writes the rest of the
layout (the stream, conditions, trace and label tables, metadata) and runs the export.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from acquisition.fish import label_plane
from rig.core.errors import SessionFileError
from rig.export._common import (
    SessionInfo,
    length_unit,
    refuse_existing,
    session_info,
    time_unit,
)
from rig.export._forecasting import write_forecasting_files
from rig.export._zarr import DATASET_CHUNK_XY, progress_bar, write_volumes, zarr3
from rig.session import SessionReader

__all__ = [
    "STREAM_FILE",
    "ZapbenchExport",
    "export_zapbench",
    "write_rest",
    "write_stream",
    "write_volumes",
]

STREAM_FILE = "stimuli_raw/stimuli_and_ephys.10chFlt"
#: rows of the 10-row stream per block: 40 MB of float32
_BLOCK_ROWS = 1 << 20


@dataclass
class ZapbenchExport:
    """What was written, for the CLI's summary and for tests."""

    out: Path
    samples: int
    volumes: int
    shape_xyzt: tuple[int, int, int, int]
    conditions: int
    neurons: int = 0
    notes: list[str] = field(default_factory=list)
    #: Columns of ``live_traces`` (0: the session has no live readout).
    live_traces: int = 0
    #: The forecasting files (covariates, specs, ...) were written (rig/export/_forecasting.py).
    forecasting: bool = False
    #: Columns of ``traces`` (the offline readout's ΔF/F; 0: none could be made).
    traces: int = 0

    @property
    def stream_path(self) -> Path:
        return self.out / STREAM_FILE


#: Anything above this on the trigger row is a pulse (plane pulses peak at 1-3.55 V).
_PULSE_V = 0.5


def stream_end(f: h5py.File) -> int:
    """Rows of ``/stimuli_and_ephys`` up to the end of the last volume's planes.

    The session's stream holds what the DAQ recorded, and the timeline closes the last
    volume with one more volume-start marker (rig/core/timeline.py ``marker_samples``: it
    tells the salvage and the dataset's decoder that the volume is whole). An export is
    the dataset's layout, in which the volume markers are the volumes: the stream ends
    where that closing marker's pulse rises (after the last plane's pulse has ended).
    A stream with no pulse after the last plane (a run cut short) is kept whole.
    """
    ds = f["stimuli_and_ephys"]
    n = int(ds.shape[0])
    planes = f.get("volumes/plane_sample")
    if planes is None or planes.shape[0] == 0 or planes.shape[1] == 0:
        return n
    last = int(planes[-1, -1])
    if not 0 <= last < n:
        return n
    high = np.asarray(ds[last:, 2]) > _PULSE_V
    rise = np.flatnonzero(high)  # the last plane's pulse (the read-back may lag its sample)
    if not len(rise):
        return n
    fall = np.flatnonzero(~high[rise[0] :])
    if not len(fall):
        return n
    after = int(rise[0] + fall[0])
    nxt = np.flatnonzero(high[after:])
    return last + after + int(nxt[0]) if len(nxt) else n


def write_stream(
    f: h5py.File, out: Path, progress: bool = False, block_rows: int = _BLOCK_ROWS
) -> int:
    """The stream as raw '<f4': byte for byte the first :func:`stream_end` rows of
    /stimuli_and_ephys (the closing volume marker left out)."""
    ds = f["stimuli_and_ephys"]
    n = stream_end(f)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh, progress_bar(n, "sample", "stream", progress) as bar:
        for a in range(0, n, block_rows):
            block = ds[a : min(n, a + block_rows)]
            fh.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            bar.update(len(block))
    return n


def conditions_json(info: SessionInfo) -> dict[str, Any]:
    """Like the dataset's CONDITION_NAMES / CONDITION_OFFSETS, for this session."""
    return {
        "names": list(info.condition_names),
        "offsets": list(info.condition_offsets),
        "start_samples": list(info.condition_start_samples),
        "volume_period_s": info.volume_period_s,
        "sample_rate_hz": info.sample_rate_hz,
    }


def write_ground_truth(
    f: h5py.File, info: SessionInfo, out: Path, radius_px: float, progress: bool
) -> int:
    """Segmentation (x, y, z) int32 from neuron positions, and the ground truth's traces
    (t, f) float32 as ``ground_truth_traces`` (fluorescence) and ``ground_truth_dff``."""
    pos = np.asarray(f["ground_truth/positions_zyx"][...], dtype=np.float64)
    traces = f["ground_truth/traces"]
    if pos.ndim != 2 or pos.shape[1] != 3 or traces.ndim != 2 or traces.shape[1] != len(pos):
        raise SessionFileError(
            f"{f.filename}: /ground_truth/positions_zyx {pos.shape} and /ground_truth/traces "
            f"{traces.shape} do not describe the same neurons (expected (n, 3) and (t, n))"
        )
    _t, z, y, x = info.shape_tzyx
    vz, vy, vx = info.voxel_size_um_zyx
    seg = zarr3(
        out / "segmentation",
        (x, y, z),
        "int32",
        ["x", "y", "z"],
        [length_unit(vx), length_unit(vy), length_unit(vz)],
        (min(DATASET_CHUNK_XY, x), min(DATASET_CHUNK_XY, y), 1),
    )
    with progress_bar(z, "plane", "segmentation", progress) as bar:
        for k in range(z):
            seg[:, :, k].write(label_plane(pos, k, (x, y), radius_px)).result()
            bar.update(1)
    n = int(traces.shape[1])
    _write_tf(out / "ground_truth_traces", traces, info)
    if "ground_truth/dff" in f and f["ground_truth/dff"].shape[1] == n:
        _write_tf(out / "ground_truth_dff", f["ground_truth/dff"], info)
    if "ground_truth/tuning" in f:
        # what each trace's neuron responds to (simulated brains): name per trace column
        tu = f["ground_truth/tuning"]
        names = [str(x) for x in tu.attrs["names"]]
        (out / "tuning.json").write_text(
            json.dumps({"names": names, "tuning": [names[i] for i in tu[...].tolist()]}),
            encoding="utf-8",
        )
    return n


def _write_tf(path: Path, data: Any, info: SessionInfo) -> None:
    """A (t, f) float32 array (numpy or an h5py dataset) in the dataset's traces layout."""
    t_n, n = (int(v) for v in data.shape)
    tr = zarr3(
        path,
        (t_n, n),
        "float32",
        ["t", "f"],
        [time_unit(info.volume_period_s), None],
        (max(1, min(t_n, 128)), max(1, min(n, 8192))),
    )
    for a in range(0, t_n, 1024):
        b = min(a + 1024, t_n)
        if n:
            tr[a:b, :].write(np.asarray(data[a:b], dtype=np.float32)).result()


def write_readout_traces(f: h5py.File, info: SessionInfo, out: Path, notes: list[str]) -> int:
    """The offline readout's ΔF/F as ``traces`` (what the dataset's users load: finite
    everywhere, one row per volume), its mean counts as ``traces_raw``, and which label
    each column is in ``traces_labels.json``. From the sidecar ``zaprig readout`` wrote
    (``SESSION.readout.h5``) if there is one, else computed here (rig/readout/offline.py).

    Returns the number of columns (0: no readout was possible; the reason is a note).
    """
    from rig.core.errors import ConfigError
    from rig.readout.offline import read_offline, readout_session, sidecar_path

    side = sidecar_path(Path(f.filename))
    try:
        if side.exists():
            r = read_offline(side)
            source = f"{side.name} (zaprig readout)"
        else:
            _, r = readout_session(f, write=False)
            source = "computed by the export (rig/readout/offline.py)"
    except (ConfigError, SessionFileError) as e:
        notes.append(f"no traces: the offline readout failed ({e})")
        return 0
    if r.traces_dff.shape[0] != info.shape_tzyx[0]:
        notes.append(
            f"no traces: the offline readout {side.name} has {r.traces_dff.shape[0]} rows, "
            f"raw/ has {info.shape_tzyx[0]} volumes (delete it and run zaprig readout again)"
        )
        return 0
    _write_tf(out / "traces", r.traces_dff, info)
    _write_tf(out / "traces_raw", r.traces_raw, info)
    (out / "traces_labels.json").write_text(
        json.dumps(
            {
                "source": r.config.labels,
                "readout": source,
                "ids": r.ids.tolist(),
                "positions_zyx": np.round(r.positions_zyx, 3).tolist(),
                "columns": "column j of traces and traces_raw is label ids[j] "
                "(ground_truth: segmentation label ids[j], neuron ids[j] - 1)",
                "filled_volumes": np.flatnonzero(r.filled).tolist(),
                "empty_planes": r.empty_planes,
            }
        ),
        encoding="utf-8",
    )
    return int(r.traces_dff.shape[1])


def write_live_traces(f: h5py.File, info: SessionInfo, out: Path) -> int:
    """The live readout's traces in the dataset's traces layout: (t, f) float32, one row per
    timestep of raw/ (NaN where the readout has no row: the reference volumes, skipped
    volumes), one column per live label (``live_labels.json`` says which)."""
    g = f["live"]
    volumes = g["volume"][...].astype(np.int64)
    n = int(g["traces_raw"].shape[1])
    t_n = int(info.shape_tzyx[0])
    keep = (volumes >= 0) & (volumes < t_n)
    for name, quantity in (("traces_raw", "live_traces"), ("traces_dff", "live_traces_dff")):
        full = np.full((t_n, n), np.nan, dtype=np.float32)
        if n and keep.any():
            full[volumes[keep]] = g[name][...][keep]
        tr = zarr3(
            out / quantity,
            (t_n, n),
            "float32",
            ["t", "f"],
            [time_unit(info.volume_period_s), None],
            (max(1, min(t_n, 128)), max(1, min(n, 8192))),
        )
        if n and t_n:
            tr[...].write(full).result()
    lab = g["labels"]
    (out / "live_labels.json").write_text(
        json.dumps(
            {
                "source": str(lab.attrs.get("source", "")),
                "label_file": str(lab.attrs.get("label_file", "")),
                "ids": lab["id"][...].tolist(),
                "positions_zyx": np.round(lab["positions_zyx"][...], 3).tolist(),
                "rows": "timestep of raw/; NaN where the readout has no row",
            }
        ),
        encoding="utf-8",
    )
    return n


def _write_all(
    f: h5py.File,
    info: SessionInfo,
    out: Path,
    progress: bool,
    shard_volumes: bool,
    label_radius_px: float,
) -> ZapbenchExport:
    shape = write_volumes(f, info, out / "raw", progress, shard_volumes)
    return write_rest(f, info, out, shape, progress, shard_volumes, label_radius_px)


def write_rest(
    f: h5py.File,
    info: SessionInfo,
    out: Path,
    shape: tuple[int, int, int, int],
    progress: bool,
    shard_volumes: bool,
    label_radius_px: float,
) -> ZapbenchExport:
    """Everything but raw/: the stream, conditions, ground truth, live traces, metadata."""
    notes: list[str] = []
    if info.status != "complete":
        notes.append(f"the session's status is '{info.status}': exported what the file holds")
    if info.dropped_volumes:
        notes.append(
            f"{len(info.dropped_volumes)} dropped volumes are zeros in raw/ "
            "(listed in metadata.json)"
        )
    samples = write_stream(f, out / STREAM_FILE, progress)
    (out / "conditions.json").write_text(json.dumps(conditions_json(info), indent=2) + "\n")
    neurons = 0
    traces = write_readout_traces(f, info, out, notes)
    if info.has_ground_truth:
        neurons = write_ground_truth(f, info, out, label_radius_px, progress)
        t_traces = int(f["ground_truth/traces"].shape[0])
        if t_traces != info.shape_tzyx[0]:
            notes.append(
                f"ground-truth traces cover {t_traces} timesteps, raw/ has "
                f"{info.shape_tzyx[0]} volumes"
            )
    live = 0
    if "live/traces_raw" in f:
        live = write_live_traces(f, info, out)
    meta = info.to_json()
    gt = bool(neurons)
    meta["layout"] = {
        "stream": STREAM_FILE,
        "raw": "raw",
        "raw_sharded_per_volume": shard_volumes,
        "conditions": "conditions.json",
        "segmentation": "segmentation" if gt else None,
        "segmentation_labels": "neuron index + 1 (0 = background)" if gt else None,
        "traces": "traces" if traces else None,
        "traces_raw": "traces_raw" if traces else None,
        "traces_quantity": "dF/F of the offline readout (zaprig readout, rig/readout): the "
        "label's mean less the dark level and its local background, over a low running "
        "percentile; traces_raw: mean counts per label; columns in traces_labels.json"
        if traces
        else None,
        "ground_truth_traces": "ground_truth_traces" if gt else None,
        "ground_truth_dff": "ground_truth_dff" if gt and "ground_truth/dff" in f else None,
        "ground_truth_quantity": "the virtual neurons' fluorescence and true dF/F, one "
        "column per neuron (segmentation label - 1)"
        if gt
        else None,
        "live_traces": "live_traces" if "live/traces_raw" in f else None,
        "live_traces_dff": "live_traces_dff" if "live/traces_raw" in f else None,
        "live_traces_quantity": "the live readout (rig/readout): mean counts per label and "
        "dF/F on a running low-percentile baseline; columns in live_labels.json"
        if "live/traces_raw" in f
        else None,
    }
    meta["notes"] = notes
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    z = ZapbenchExport(
        out=out,
        samples=samples,
        volumes=shape[3],
        shape_xyzt=shape,
        conditions=len(info.condition_names),
        neurons=neurons,
        notes=notes,
        live_traces=live,
        traces=traces,
    )
    # the files the dataset's forecasting code opens (rig/export/_forecasting.py)
    z.forecasting = write_forecasting_files(f, info, out) is not None
    return z


def export_zapbench(
    session: str | Path,
    out: str | Path,
    *,
    progress: bool = True,
    shard_volumes: bool = True,
    label_radius_px: float = 2.0,
) -> ZapbenchExport:
    """Write the session at ``session`` into folder ``out`` in the dataset's layout.

    ``out`` must not exist or be empty; if the export fails it is removed again,
    so a folder that exists is a complete export.
    """
    out = Path(out)
    with SessionReader(session) as reader:
        f = reader.file
        info = session_info(reader)
        refuse_existing(out, "zapbench export", folder=True)
        out.mkdir(parents=True, exist_ok=True)
        try:
            return _write_all(f, info, out, progress, shard_volumes, label_radius_px)
        except BaseException:
            # only our own files are in it: refuse_existing saw it absent or empty
            shutil.rmtree(out, ignore_errors=True)
            raise
