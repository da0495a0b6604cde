"""The session file's layout (the contract in DESIGN.md) and how to create it.

Tables are groups of equal-length 1-D datasets ("columns"), one convention
everywhere. Every dataset is created before SWMR mode is switched on (HDF5
forbids new objects afterwards) and grows by appending, so the file is
readable while it is written and after a crash up to the last flush.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.core.live_layout import TRIGGER_COLUMNS, create_live_group
from rig.core.records import BOUT_DTYPE, FRAME_DTYPE, Look

__all__ = [
    "CHANNEL_NAMES",
    "CONDITION_DTYPE",
    "EVENT_COLUMNS",
    "FORMAT",
    "FORMAT_VERSION",
    "LIVE_TABLES",
    "ROW",
    "TABLES",
    "append_columns",
    "columns_to_write",
    "create_session_file",
    "read_table",
]

FORMAT = "zaprig.session"
#: 2: the dataset's TTL layout (a volume-start marker pulse before z plane pulses, with
#: ``/volumes/marker_sample``) and conditions that start after plane 0's pulse.
#: 1: the volume-start pulse replaced plane 0's pulse (z - 1 plane pulses per marker).
FORMAT_VERSION = 2

#: The dataset's 10 rows, in its order (DATASET.md); the names its own code uses.
CHANNEL_NAMES = (
    "ai0", "ai1", "ai2", "stimParam4", "stimParam6",
    "stimParam5", "stimParam3", "stimID", "stimParam1", "stimParam2",
)  # fmt: skip
ROW = {
    "tail_left": 0,
    "tail_right": 1,
    "trigger": 2,
    "param4": 3,
    "condition": 4,
    "param5": 5,
    "param3": 6,
    "stim_id": 7,
    "velocity": 8,
    "gain": 9,
}

CONDITION_DTYPE = np.dtype(
    [
        ("index", "i4"),
        ("start_volume", "i8"),
        ("stop_volume", "i8"),
        ("start_sample", "i8"),
        ("stop_sample", "i8"),
    ]
)
_STR = h5py.string_dtype("utf-8")
#: The writer's chunk cache per dataset (HDF5's default is 1 MiB). Every dataset of a
#: session is filled in order, so a chunk once full is never written again: one chunk
#: being filled is all a cache needs, and the largest written in pieces is the stream's
#: (6000 x 10 float32, 240 kB). With the default, each table column kept its last 1 MiB of
#: chunks, and the writer's memory grew over the 2-hour protocol until the ~45 columns'
#: caches were full (+42 MB, 1.155 x the first 10 minutes' peak).
CHUNK_CACHE_BYTES = 256 * 1024
#: Objects of at least this many bytes start on a 4 KiB boundary of the file, where the
#: writer can write them past the page cache: a plane of the dataset's volumes (5.4 MB) and
#: of the simulated camera (20 kB); the tables' chunks of 4096 rows too (32 kB, padded by
#: at most 4 kB each), not the file's small metadata.
ALIGN_THRESHOLD = 16 * 1024
#: ``source`` and ``severity`` (rig/core/events.py) since format 2; the first four are the contract's.
EVENT_COLUMNS: dict[str, Any] = {
    "sample": "i8",
    "wall_time": "f8",
    "kind": _STR,
    "message": _STR,
    "source": _STR,
    "severity": _STR,
}

#: table path -> columns (name -> dtype)
TABLES: dict[str, dict[str, Any]] = {
    "protocol/conditions": {
        "name": _STR,
        **{n: CONDITION_DTYPE[n] for n in CONDITION_DTYPE.names or ()},
    },
    "stimulus/frames": {n: FRAME_DTYPE[n] for n in FRAME_DTYPE.names or ()},
    "behavior/bouts": {n: BOUT_DTYPE[n] for n in BOUT_DTYPE.names or ()},
    "events": EVENT_COLUMNS,
    "volumes/dropped": {"volume": "i8", "reason": _STR},
}
#: Tables of the ``/live`` group (rig/core/live_layout.py), in files made with the live readout.
LIVE_TABLES: dict[str, dict[str, Any]] = {"live/triggers": dict(TRIGGER_COLUMNS)}


def _compression(kind: str) -> dict[str, Any]:
    if kind == "none":
        return {}
    import hdf5plugin

    return dict(
        hdf5plugin.Blosc(
            cname=kind,  # type: ignore[arg-type]  # "lz4" | "zstd", checked by the config
            clevel=5 if kind == "lz4" else 3,
            shuffle=hdf5plugin.Blosc.BITSHUFFLE,
        )
    )


def _raw_layout(compression: str, shape_zyx: tuple[int, int, int]) -> dict[str, Any]:
    """How ``/volumes/raw`` is chunked and allocated.

    Compressed: a chunk per plane, sized by its filter, placed by HDF5. Uncompressed: a
    chunk per volume, allocated when the dataset grows to hold it and never filled by
    HDF5, so the writer can ask where it lies and write the volume there itself, past the
    page cache (acquisition/writer/_direct.py). One chunk per volume, not per plane,
    because asking HDF5 where a chunk lies walks the chunk index from its start
    (``H5Dget_chunk_info_by_coord``), so the question grows with the session: at the
    simulated rig's size (8 planes), by the end of the built-in protocol it took 11.5 ms
    per volume with a chunk per plane (63,000 chunks; 52 s over the protocol, which
    slowed the virtual-time run by ~15 s), 0.66 ms with a chunk per volume (2.8 s in all).
    A plane reads as cheaply from a volume's chunk (HDF5 reads the part of an unfiltered
    chunk a selection needs). An unwritten (dropped) volume is a hole in the file: it
    reads as zeros and takes no disk.
    """
    z, y, x = shape_zyx
    if compression != "none":
        return {"chunks": (1, 1, y, x), **_compression(compression)}
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return {"chunks": (1, z, y, x), "dcpl": dcpl, "fill_time": "never"}


def create_session_file(
    path: Path,
    attrs: Mapping[str, Any],
    shape_zyx: tuple[int, int, int],
    voxel_size_um: tuple[float, float, float],
    volume_period_s: float,
    sample_rate_hz: float,
    compression: str = "none",
    ground_truth_positions: np.ndarray | None = None,
    analog_inputs: Sequence[tuple[str, str]] = (),
    ground_truth_tuning: np.ndarray | None = None,
    tuning_names: tuple[str, ...] = (),
    live: Mapping[str, Any] | None = None,
) -> h5py.File:
    """Create every group and dataset, set the root attributes, switch SWMR on.

    ``mode="w-"`` refuses an existing file: a session file is never overwritten.
    """
    # full chunks go first when the cache needs room (w0 = 1): they are done with
    # large objects (the volumes' plane chunks) start on a 4 KiB boundary, where the
    # writer can place them itself with O_DIRECT (acquisition/writer/_direct.py)
    f = h5py.File(
        path,
        "w-",
        libver="latest",
        rdcc_nbytes=CHUNK_CACHE_BYTES,
        rdcc_w0=1.0,
        alignment_threshold=ALIGN_THRESHOLD,
        alignment_interval=4096,
    )
    try:
        for k, v in attrs.items():
            f.attrs[k] = v
        s = f.create_dataset(
            "stimuli_and_ephys",
            shape=(0, 10),
            maxshape=(None, 10),
            dtype=np.float32,
            chunks=(6000, 10),
        )
        s.attrs["sample_rate_hz"] = float(sample_rate_hz)
        s.attrs["channel_names"] = list(CHANNEL_NAMES)
        s.attrs["units"] = "V for rows 0-2; stimulus units for rows 3-9 (docs/session-format.md)"
        if analog_inputs:
            # (name, physical channel): the photodiode first when the rig has one
            n_inputs = len(analog_inputs)
            a = f.create_dataset(
                "analog_inputs",
                shape=(0, n_inputs),
                maxshape=(None, n_inputs),
                dtype=np.float32,
                chunks=(6000, n_inputs),
            )
            a.attrs["sample_rate_hz"] = float(sample_rate_hz)
            a.attrs["channel_names"] = [name for name, _ in analog_inputs]
            a.attrs["physical_channels"] = [ch for _, ch in analog_inputs]
            a.attrs["units"] = "V"
            a.attrs["sample_index"] = "row i is DAQ sample i, as row i of /stimuli_and_ephys"
        z, y, x = shape_zyx
        raw = f.create_dataset(
            "volumes/raw",
            shape=(0, z, y, x),
            maxshape=(None, z, y, x),
            dtype=np.uint16,
            fillvalue=0,
            **_raw_layout(compression, shape_zyx),
        )
        raw.attrs["axes"] = ["t", "z", "y", "x"]
        raw.attrs["voxel_size_um"] = list(voxel_size_um)
        raw.attrs["volume_period_s"] = float(volume_period_s)
        raw.attrs["compression"] = compression
        f.create_dataset(
            "volumes/start_sample", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,)
        )
        f.create_dataset(
            "volumes/marker_sample", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,)
        )
        f.create_dataset(
            "volumes/plane_sample",
            shape=(0, z),
            maxshape=(None, z),
            dtype=np.int64,
            chunks=(max(1, 4096 // z), z),
        )
        for tpath, cols in TABLES.items():
            g = f.require_group(tpath)
            for name, dt in cols.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(4096,))
        f["stimulus/frames"].attrs["look_names"] = [m.name.lower() for m in Look]
        if ground_truth_positions is not None:
            # simulated sessions: the virtual brain's neurons (voxel coordinates) and traces
            gt = f.create_group("ground_truth")
            pos = gt.create_dataset("positions_zyx", data=np.asarray(ground_truth_positions, float))
            pos.attrs["units"] = "voxels"
            n = len(ground_truth_positions)
            tr = gt.create_dataset(
                "traces", shape=(0, n), maxshape=(None, n), dtype=np.float32, chunks=(64, n)
            )
            tr.attrs["axes"] = ["t", "neuron"]
            tr.attrs["units"] = "camera counts above background (raw fluorescence, not dF/F)"
            dff = gt.create_dataset(
                "dff", shape=(0, n), maxshape=(None, n), dtype=np.float32, chunks=(64, n)
            )
            dff.attrs["axes"] = ["t", "neuron"]
            dff.attrs["units"] = (
                "dF/F: each neuron's noiseless fluorescence over its resting fluorescence, "
                "less 1 (acquisition/fish/_brain.py Brain.true_dff); row t is volume t"
            )
            if ground_truth_tuning is not None:
                # what each neuron responds to: an index into the attribute `names`
                tu = gt.create_dataset("tuning", data=np.asarray(ground_truth_tuning, np.int8))
                tu.attrs["names"] = list(tuning_names)
        if live is not None:
            create_live_group(f, **live)  # the live readout (rig/core/live_layout.py)
        f.swmr_mode = True
    except BaseException:
        f.close()
        path.unlink(missing_ok=True)  # a file that failed to be created is not a session
        raise
    return f


def columns_to_write(
    where: str,
    present: Collection[str],
    names: Sequence[str],
    only_existing: bool = False,
) -> tuple[str, ...]:
    """Which of the columns ``names`` of some rows to write into a table whose columns are
    ``present``: every one of them (``only_existing``: those the table has; a file of an
    older format lacks the newer columns). Rows that leave one of the table's columns out
    are refused (``ValueError``): a table is equal-length columns, and rows that skip one
    would break every reader after. The writer process and the appender both ask this."""
    if only_existing:
        names = tuple(n for n in names if n in present)
    missing = sorted(set(present) - set(names))
    if missing:
        raise ValueError(f"{where}: rows without the column(s) {', '.join(missing)}")
    unknown = sorted(set(names) - set(present))
    if unknown:
        raise ValueError(f"{where}: rows with column(s) the table lacks: {', '.join(unknown)}")
    return tuple(names)


def append_columns(
    group: h5py.Group,
    rows: Mapping[str, np.ndarray] | np.ndarray,
    only_existing: bool = False,
) -> int:
    """Append equal-length columns (a dict or a structured array) to a table group.

    ``only_existing``: skip columns the group lacks (a file of an older format).
    """
    given = rows.dtype.names if isinstance(rows, np.ndarray) else tuple(rows.keys())
    assert given
    names = columns_to_write(str(group.name), list(group.keys()), given, only_existing)
    n = len(rows[given[0]])
    if n == 0:
        return 0
    for name in names:
        d = group[name]
        old = d.shape[0]
        d.resize((old + n,))
        d[old:] = rows[name]
    return n


def read_table(obj: h5py.Group) -> dict[str, np.ndarray]:
    """A table group as a dict of columns (strings decoded)."""
    out: dict[str, np.ndarray] = {}
    for k in obj:
        d = obj[k]
        if not isinstance(d, h5py.Dataset):
            continue
        if h5py.check_string_dtype(d.dtype) is not None:
            out[k] = d.asstr()[...]
        else:
            out[k] = d[...]
    return out
