"""The ``/live`` group: what the readout lane computed while recording (docs/session-format.md).

Created with the file (SWMR allows no new objects later), grown one row per
read-out volume by the writer process, the file's one owner:

=========================  ===========  ==============================================
``/live/volume``           int64 (r,)   the timestep of each row (volumes may be skipped)
``/live/drift_um``         f8 (r, 3)    rigid drift z, y, x in µm against the reference
``/live/brightness``       f4 (r, z)    each plane's level / the reference's (NaN: no tissue)
``/live/traces_raw``       f4 (r, n)    mean counts of each label's voxels
``/live/traces_dff``       f4 (r, n)    ΔF/F less dark level and background, long baseline
``/live/seconds``          f8 (r,)      CPU seconds the readout took per volume
``/live/labels/id``        i8 (n,)      label id of each trace column
``/live/labels/positions_zyx`` f8 (n, 3) each label's centroid, voxels
``/live/triggers``         table        one row per brain-triggered step (see below)
``/live/forecast/next``    f4 (r, n)    the live forecaster's forecast of the next volume
``/live/forecast/mae``     f4 (r, H)    its MAE on this row's volume, made h = 1..H volumes before
``/live/forecast/baseline_mae`` f4 (r, H) the mean baseline's MAE, same volume and leads
``/live/forecast/surprise`` f4 (r,)     ``mae[:, 0]`` over its running median
``/live/forecast/seconds`` f8 (r,)      CPU seconds the forecaster took per volume
=========================  ===========  ==============================================

``/live/triggers`` columns: ``step_start_sample``; ``volume`` whose readout crossed the
threshold (-1: timed out); ``value`` of the signal then; ``committed_sample`` (the loop's
sample when that volume was committed); ``decision_sample`` (the stimulus's start);
``shown_sample`` (the first frame of it, flip); ``timed_out``; ``latency_s`` = shown -
committed, the decision latency (NaN on a timeout).

``/live`` attrs say how it was made (``reference_volumes``, ``downsample``,
``baseline_volumes``, ...); ``/live/labels`` attrs say where the labels came from
(``source``: ground_truth / file / detect, ``label_file``, ``radius_px``). With
``ground_truth`` labels, label id ``k`` is ground-truth neuron ``k - 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

__all__ = [
    "TRIGGER_COLUMNS",
    "append_live_row",
    "create_forecast_group",
    "create_live_group",
    "live_summary",
    "set_live_labels",
]

TRIGGER_COLUMNS: dict[str, str] = {
    "step_start_sample": "i8",
    "volume": "i8",
    "value": "f8",
    "committed_sample": "i8",
    "decision_sample": "i8",
    "shown_sample": "i8",
    "timed_out": "i1",
    "latency_s": "f8",
}


def create_live_group(
    f: h5py.File,
    planes: int,
    n_labels: int | None,
    attrs: Mapping[str, Any],
    label_attrs: Mapping[str, Any],
    ids: np.ndarray | None = None,
    positions_zyx: np.ndarray | None = None,
) -> None:
    """Every ``/live`` dataset, empty; ``n_labels`` None: the labels are found during the run."""
    g = f.create_group("live")
    for k, v in attrs.items():
        g.attrs[k] = v
    g.create_dataset("volume", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
    g.create_dataset("seconds", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(1024,))
    d = g.create_dataset(
        "drift_um", shape=(0, 3), maxshape=(None, 3), dtype=np.float64, chunks=(1024, 3)
    )
    d.attrs["axes"] = ["t", "zyx"]
    d.attrs["units"] = "um"
    b = g.create_dataset(
        "brightness", shape=(0, planes), maxshape=(None, planes), dtype=np.float32,
        chunks=(max(1, 4096 // planes), planes),
    )  # fmt: skip
    b.attrs["units"] = "plane mean / the reference volume's plane mean"
    n = n_labels or 0
    col_chunk = max(1, min(n, 8192)) if n else 1024
    for name, units in (
        ("traces_raw", "camera counts (mean over the label's sampled voxels)"),
        ("traces_dff", "dF/F on a running low-percentile baseline"),
    ):
        tr = g.create_dataset(
            name, shape=(0, n), maxshape=(None, None), dtype=np.float32, chunks=(16, col_chunk)
        )
        tr.attrs["axes"] = ["t", "label"]
        tr.attrs["units"] = units
    horizon = int(attrs.get("forecast_horizon", 0))
    if horizon > 0:
        create_forecast_group(g, n, horizon)
    trig = g.create_group("triggers")
    for name, dt in TRIGGER_COLUMNS.items():
        trig.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(256,))
    lab = g.create_group("labels")
    for k, v in label_attrs.items():
        lab.attrs[k] = v
    lab.create_dataset("id", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(8192,))
    lab.create_dataset(
        "positions_zyx", shape=(0, 3), maxshape=(None, 3), dtype=np.float64, chunks=(8192, 3)
    )
    if ids is not None and positions_zyx is not None:
        set_live_labels(lab, ids, positions_zyx)


def create_forecast_group(g: h5py.Group, n: int, horizon: int) -> None:
    """``/live/forecast``: one row per ``/live`` row (the live forecaster, rig/forecast)."""
    fc = g.create_group("forecast")
    fc.attrs["horizon"] = horizon
    fc.attrs["method"] = (
        "mean of the last 4 volumes (the ZAPBench mean baseline) plus a ridge regression, shared "
        "by all neurons and fitted online, on each neuron's last volumes, their projection on the "
        "top principal components of the recent past and its running mean; the ridge penalty, or "
        "no correction, chosen per lead by recent error (rig/forecast/_online.py)"
    )
    col_chunk = max(1, min(n, 8192)) if n else 1024
    nx = fc.create_dataset(
        "next", shape=(0, n), maxshape=(None, None), dtype=np.float32, chunks=(16, col_chunk)
    )
    nx.attrs["units"] = "dF/F: the forecast of the next volume, made at this row's volume"
    for name, what in (
        ("mae", "MAE of the forecasts made for this row's volume h = 1..H volumes earlier"),
        ("baseline_mae", "the mean baseline's MAE for the same volume and leads"),
    ):
        d = fc.create_dataset(
            name, shape=(0, horizon), maxshape=(None, horizon), dtype=np.float32,
            chunks=(1024, horizon),
        )  # fmt: skip
        d.attrs["units"] = f"dF/F; {what}; NaN where none was made"
    s = fc.create_dataset(
        "surprise", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1024,)
    )
    s.attrs["units"] = "mae[:, 0] over its running median (60 volumes)"
    c = fc.create_dataset("seconds", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(1024,))
    c.attrs["units"] = "CPU seconds the forecaster's update and forecast took"


def set_live_labels(lab: h5py.Group, ids: np.ndarray, positions_zyx: np.ndarray) -> None:
    n = len(ids)
    lab["id"].resize((n,))
    lab["id"][:] = ids
    lab["positions_zyx"].resize((n, 3))
    if n:
        lab["positions_zyx"][:] = positions_zyx


def append_live_row(g: h5py.Group, row: Mapping[str, Any]) -> None:
    """One volume's readout (keys as the datasets, plus ``volume`` and ``seconds``)."""
    r = g["volume"].shape[0]
    g["volume"].resize((r + 1,))
    g["volume"][r] = int(row["volume"])
    g["seconds"].resize((r + 1,))
    g["seconds"][r] = float(row["seconds"])
    for name in ("drift_um", "brightness"):
        d = g[name]
        d.resize((r + 1, d.shape[1]))
        d[r] = row[name]
    for name in ("traces_raw", "traces_dff"):
        d = g[name]
        values = np.asarray(row[name], dtype=np.float32)
        d.resize((r + 1, len(values)))
        if len(values):
            d[r] = values
    if "forecast" in g:
        fc, got = g["forecast"], row.get("forecast")
        h = fc["mae"].shape[1]
        nxt = np.asarray(got["next"], np.float32) if got else np.zeros(0, np.float32)
        fc["next"].resize((r + 1, len(nxt)))
        if len(nxt):
            fc["next"][r] = nxt
        for name in ("mae", "baseline_mae"):
            fc[name].resize((r + 1, h))
            fc[name][r] = got[name] if got else np.full(h, np.nan)
        fc["surprise"].resize((r + 1,))
        fc["surprise"][r] = got["surprise"] if got else np.nan
        fc["seconds"].resize((r + 1,))
        fc["seconds"][r] = got.get("seconds", np.nan) if got else np.nan


def live_summary(f: h5py.File) -> list[str]:
    """``zaprig inspect``'s lines about ``/live`` (none when the session had no readout)."""
    if "live/volume" not in f:
        return []
    g = f["live"]
    rows = int(g["volume"].shape[0])
    lab = g["labels"]
    source = str(lab.attrs.get("source", ""))
    n = int(g["traces_raw"].shape[1])
    if rows == 0:
        return [f"live      no readout rows ({source} labels)"]
    drift = g["drift_um"][...]
    norm = np.linalg.norm(drift, axis=1)
    k = int(np.argmax(norm))
    volumes = g["volume"][...]
    bright = float(np.nanmedian(g["brightness"][-1]))
    cost = float(np.median(g["seconds"][...])) * 1e3
    lines = [
        f"live      {rows} volumes read out, {n} neurons traced ({source} labels); "
        f"readout {cost:.0f} ms/volume (median)",
        f"          drift max {norm[k]:.1f} um at volume {int(volumes[k])}, last "
        f"(z, y, x) = ({drift[-1, 0]:+.1f}, {drift[-1, 1]:+.1f}, {drift[-1, 2]:+.1f}) um; "
        f"brightness at the end {bright:.1%} of the start",
    ]
    if "triggers" in g and g["triggers/volume"].shape[0]:
        t = g["triggers"]
        timed_out = int(np.count_nonzero(t["timed_out"][...]))
        lat = t["latency_s"][...]
        lat = lat[np.isfinite(lat)]
        p50 = f", latency p50 {np.median(lat) * 1e3:.0f} ms" if len(lat) else ""
        lines.append(
            f"          brain-triggered steps: {t['volume'].shape[0]} ({timed_out} timed out){p50}"
        )
    return lines
