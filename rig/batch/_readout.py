"""The offline readout of a session (rig/readout/offline.py), cut into cluster tasks.

``zaprig readout`` runs :func:`~rig.readout.offline.build_readout`, then
:func:`~rig.readout.offline.readout_volumes` over ranges of volumes, then
:func:`~rig.readout.offline.assemble` in one process. Here the same three steps are tasks:

1. ``reference``: :func:`build_readout` (the reference, the labels); the ready state is
   saved beside the job's bookkeeping and the output arrays are created (their width is
   the number of labels, known only now with ``labels = "detect"``).
2. ``range``: :func:`readout_volumes` over volumes ``start:stop``, a whole chunk of the
   arrays along t, so the tasks write in parallel without a lock.
3. ``dff``: what :func:`assemble` does, per block of label columns (whole chunk columns):
   dropped volumes' rows filled from their neighbour, and ΔF/F over the whole series
   (:meth:`Baseline.series`, the one step that cannot be split along t; it is column by
   column, so it splits across labels).

The arrays equal the sidecar ``zaprig readout`` writes (a test checks):

    DIR/<stem>/drift_um                    zarr3 float64 (t, 3)  z, y, x
    DIR/<stem>/brightness                  zarr3 float32 (t, z)
    DIR/<stem>/traces_raw, traces_f, traces_dff   zarr3 float32 (t, f)
    DIR/<stem>/readout.json                the labels (ids, positions), empty planes, settings
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from rig.batch._layout import Task, atomic_write

__all__ = ["COLUMN_BLOCK", "readout_dff", "readout_range", "readout_reference"]

#: Label columns per chunk (and per ΔF/F task).
COLUMN_BLOCK = 8192
#: The readout's settings, beside the ready state (what a ΔF/F task needs of it).
_CONFIG = "config.json"
_STATE = "reference.pickle"


def _array(
    path: Path, shape: tuple[int, ...], dtype: str, chunk: tuple[int, ...], create: bool
) -> ts.TensorStore:
    from rig.export import zarr_codecs

    spec: dict[str, Any] = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
    }
    if create:
        spec["metadata"] = {
            "shape": list(shape),
            "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk)}},
            "codecs": zarr_codecs(np.dtype(dtype).itemsize),
            "fill_value": "NaN",
        }
        # a retried reference task finds them made: open them if they match
        spec["create"] = True
        spec["open"] = True
    else:
        spec["open"] = True
    return ts.open(spec).result()


def readout_reference(task: Task, f: Any) -> int:
    """Build the reference, save the ready state, create the output arrays; volumes read."""
    from rig.readout.offline import build_readout

    readout = build_readout(f)
    t_n, z = (int(v) for v in f["volumes/raw"].shape[:2])
    n = readout.labels.n if readout.labels is not None else 0
    chunk_t = int(task.option("chunk_volumes"))
    cols = max(1, min(n, COLUMN_BLOCK))
    out = task.out
    for name, shape, dtype, chunk in (
        ("drift_um", (t_n, 3), "float64", (chunk_t, 3)),
        ("brightness", (t_n, z), "float32", (chunk_t, z)),
        ("traces_raw", (t_n, n), "float32", (chunk_t, cols)),
        ("traces_f", (t_n, n), "float32", (chunk_t, cols)),
        ("traces_dff", (t_n, n), "float32", (chunk_t, cols)),
    ):
        _array(out / name, shape, dtype, chunk, create=True)
    ids = readout.labels.ids if readout.labels is not None else np.zeros(0, np.int64)
    pos = readout.labels.positions_zyx if readout.labels is not None else np.zeros((0, 3))
    (out / "readout.json").write_text(
        json.dumps(
            {
                "source_session": Path(task.session).name,
                "ids": ids.tolist(),
                "positions_zyx": pos.tolist(),
                "empty_planes": list(readout.empty_planes),
                "config": readout.s.config.model_dump(),
                "rows": "row t is volume t of the session's /volumes/raw, every volume; "
                "dropped volumes' traces copied from a neighbour",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    state = task.book / _STATE
    tmp = state.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(readout, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(state)
    atomic_write(task.book / _CONFIG, readout.s.config.model_dump_json())
    atomic_write(task.book / "columns", f"{n}\n")
    return readout.s.config.reference_volumes


def _state(task: Task) -> Any:
    # our own file, written by this job's reference task (never a file from elsewhere)
    return pickle.loads((task.book / _STATE).read_bytes())


def readout_range(task: Task, f: Any) -> int:
    """:func:`readout_volumes` over ``task.start:task.stop``, into the arrays; volumes read."""
    from rig.readout.offline import readout_volumes

    c = readout_volumes(f, task.start, task.stop, _state(task))
    a, b = c.start, c.stop
    futures = [
        _array(task.out / "drift_um", (), "", (), create=False)[a:b].write(c.drift_um),
        _array(task.out / "brightness", (), "", (), create=False)[a:b].write(c.brightness),
    ]
    if c.traces_raw.shape[1]:
        for name in ("traces_raw", "traces_f"):
            arr = _array(task.out / name, (), "", (), create=False)
            futures.append(arr[a:b].write(getattr(c, name)))
    for fut in futures:
        fut.result()
    return b - a


def readout_dff(task: Task) -> int:
    """Label columns ``task.start:task.stop``: dropped rows filled, ΔF/F over the session."""
    from rig.core.config import ReadoutConfig
    from rig.readout import Baseline
    from rig.readout.offline import _fill

    # the settings alone, not the ready state: unpickling its ~190 MB (at full size) cost
    # each ΔF/F task more than its own work (a job begun before they were saved: the state)
    saved = task.book / _CONFIG
    cfg = (
        ReadoutConfig.model_validate_json(saved.read_text(encoding="utf-8"))
        if saved.exists()
        else _state(task).s.config
    )
    a, b = task.start, task.stop
    arrays = {
        n: _array(task.out / n, (), "", (), create=False)
        for n in ("traces_raw", "traces_f", "traces_dff")
    }
    f = arrays["traces_f"][:, a:b].read().result()
    # a dropped volume's row is NaN in every column (readout_volumes leaves it so)
    missing = ~np.isfinite(f).all(axis=1)
    f = _fill(f, missing)
    dff = Baseline.series(
        f, cfg.baseline_volumes, cfg.baseline_percentile, cfg.baseline_block_volumes
    )
    futures = [arrays["traces_f"][:, a:b].write(f), arrays["traces_dff"][:, a:b].write(dff)]
    if missing.any():
        raw = arrays["traces_raw"][:, a:b].read().result()
        futures.append(arrays["traces_raw"][:, a:b].write(_fill(raw, missing)))
    for fut in futures:
        fut.result()
    return 0
