"""The offline readout of a session, cut into tasks: reference, ranges of volumes, ΔF/F.

The live readout (rig/readout) runs volume after volume in one process. Offline the
same computations (:class:`rig.readout.Readout`, :class:`rig.readout.Baseline`) run
as tasks over a cluster, in three steps, because only two things in it are sequential:

1. ``reference``: the first ``reference_volumes`` volumes build the reference (and find
   the cells, with ``labels = "detect"``). The ready readout state is saved beside the
   job's bookkeeping; the output arrays are created (their width is the number of labels).
2. ``range``: each task loads that state and reads out volumes ``start:stop``, a whole
   chunk of the arrays along t, so tasks write in parallel without a lock.
3. ``dff``: ΔF/F's baseline is a running percentile along t, so it is computed last, per
   block of label columns (a whole chunk column), from ``traces_raw``.

Rows before the last reference volume stay NaN, as the live readout has no row for them.

    DIR/<stem>/drift_um     zarr3 float64 (t, 3)  z, y, x
    DIR/<stem>/brightness   zarr3 float32 (t, z)
    DIR/<stem>/traces_raw   zarr3 float32 (t, f)  mean counts per label
    DIR/<stem>/traces_dff   zarr3 float32 (t, f)
    DIR/<stem>/seconds      zarr3 float64 (t,)    CPU seconds per volume
    DIR/<stem>/readout.json the labels (ids, positions) and the settings
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from rig.batch._layout import Task, atomic_write
from rig.errors import SessionFileError

__all__ = ["COLUMN_BLOCK", "readout_dff", "readout_range", "readout_reference"]

#: Label columns per chunk (and per ΔF/F task).
COLUMN_BLOCK = 8192
_STATE = "reference.pickle"


def _array(
    path: Path, shape: tuple[int, ...], dtype: str, chunk: tuple[int, ...], create: bool
) -> ts.TensorStore:
    from rig.export._zapbench import _codecs

    spec: dict[str, Any] = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
    }
    if create:
        spec["metadata"] = {
            "shape": list(shape),
            "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk)}},
            "codecs": _codecs(np.dtype(dtype).itemsize),
            "fill_value": "NaN",
        }
        # a retried reference task finds them made: open them if they match
        spec["create"] = True
        spec["open"] = True
    else:
        spec["open"] = True
    return ts.open(spec).result()


def _settings(f: Any, path: str) -> tuple[Any, Any]:
    """The session's own ``[readout]`` and geometry, and its labels (None: detect)."""
    from rig.config import config_from_json
    from rig.readout import ReadoutSettings, prepare_labels

    rig = config_from_json(str(f.attrs["hardware_config"]))
    _t, z, y, x = (int(v) for v in f["volumes/raw"].shape)
    vz, vy, vx = rig.microscope.voxel_size_um
    settings = ReadoutSettings(shape_zyx=(z, y, x), voxel_size_um=(vz, vy, vx), config=rig.readout)
    pos = (
        np.asarray(f["ground_truth/positions_zyx"][...], dtype=np.float64)
        if "ground_truth/positions_zyx" in f
        else None
    )
    if rig.readout.labels == "ground_truth" and pos is None:
        raise SessionFileError(
            f"{path}: readout.labels = 'ground_truth' but the file has no /ground_truth "
            "(a real fish): set [readout] labels = 'detect' or 'file' in the rig config"
        )
    if tuple(rig.microscope.shape_zyx) != (z, y, x):
        raise SessionFileError(
            f"{path}: /volumes/raw is {z} x {y} x {x} (z, y, x) but the rig config stored in "
            f"the file says {rig.microscope.shape_zyx}: the file was changed after recording"
        )
    return settings, prepare_labels(rig, pos)


def readout_reference(task: Task, f: Any) -> int:
    """Build the reference, save the ready state, create the output arrays; volumes read."""
    from rig.readout import Readout

    settings, labels = _settings(f, task.session)
    raw = f["volumes/raw"]
    t_n = int(raw.shape[0])
    r_n = max(1, settings.config.reference_volumes)
    if t_n < r_n:
        raise SessionFileError(
            f"{task.session}: {t_n} volumes, fewer than readout.reference_volumes = {r_n}"
        )
    readout = Readout(settings, labels)
    for t in range(r_n):
        readout.process(t, raw[t])
    n = readout.labels.n if readout.labels is not None else 0
    chunk_t = int(task.option("chunk_volumes"))
    out = task.out
    z = settings.shape_zyx[0]
    for name, shape, dtype, chunk in (
        ("drift_um", (t_n, 3), "float64", (chunk_t, 3)),
        ("brightness", (t_n, z), "float32", (chunk_t, z)),
        ("traces_raw", (t_n, n), "float32", (chunk_t, max(1, min(n, COLUMN_BLOCK)))),
        ("traces_dff", (t_n, n), "float32", (chunk_t, max(1, min(n, COLUMN_BLOCK)))),
        ("seconds", (t_n,), "float64", (chunk_t,)),
    ):
        _array(out / name, shape, dtype, chunk, create=True)
    ids = readout.labels.ids if readout.labels is not None else np.zeros(0, np.int64)
    pos = readout.labels.positions_zyx if readout.labels is not None else np.zeros((0, 3))
    (out / "readout.json").write_text(
        json.dumps(
            {
                "source_session": Path(task.session).name,
                "labels_source": settings.config.labels,
                "ids": ids.tolist(),
                "positions_zyx": np.round(pos, 3).tolist(),
                "settings": settings.config.model_dump(),
                "rows": f"timestep of the session; NaN before volume {r_n - 1} "
                "(the reference's last)",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    state = task.book / _STATE
    tmp = state.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(readout, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(state)
    atomic_write(task.book / "columns", f"{n}\n")
    return r_n


def readout_range(task: Task, f: Any) -> int:
    """Read out volumes ``task.start:task.stop`` with the saved reference; volumes read."""
    # our own file, written by this job's reference task (never a file from elsewhere)
    readout = pickle.loads((task.book / _STATE).read_bytes())
    raw = f["volumes/raw"]
    out = task.out
    a, b = task.start, task.stop
    rows = [readout.process(t, raw[t]) for t in range(a, b)]
    if any(r is None for r in rows):
        raise RuntimeError(f"{task.session}: the saved reference was not ready")
    arrays = {
        name: _array(out / name, (), "", (), create=False)
        for name in ("drift_um", "brightness", "traces_raw", "seconds")
    }
    futures = [
        arrays["drift_um"][a:b].write(np.stack([r.drift_um for r in rows])),
        arrays["brightness"][a:b].write(np.stack([r.brightness for r in rows])),
        arrays["seconds"][a:b].write(np.array([r.seconds for r in rows])),
    ]
    n = int(arrays["traces_raw"].shape[1])
    if n:
        futures.append(arrays["traces_raw"][a:b].write(np.stack([r.traces_raw for r in rows])))
    for fut in futures:
        fut.result()
    return b - a


def readout_dff(task: Task) -> int:
    """ΔF/F of label columns ``task.start:task.stop`` along the whole session."""
    from rig.readout import Baseline

    first = int(task.option("first_row"))
    raw_arr = _array(task.out / "traces_raw", (), "", (), create=False)
    dff_arr = _array(task.out / "traces_dff", (), "", (), create=False)
    a, b = task.start, task.stop
    raw = raw_arr[first:, a:b].read().result()
    base = Baseline(
        b - a, int(task.option("baseline_volumes")), float(task.option("baseline_percentile"))
    )
    dff = np.empty_like(raw)
    for k in range(len(raw)):
        dff[k] = base.update(raw[k])
    dff_arr[first:, a:b].write(dff).result()
    return 0
