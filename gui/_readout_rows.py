"""What the Brain readout tab draws of one live readout row, made where the row is made.

A :class:`~rig.readout.LiveRow` carries five arrays of one value per traced neuron
(70,000 at the dataset's size: 1.4 MB a row). The readout tab draws far less: the
ΔF/F averaged in groups of neighbouring neurons (a raster column of at most
``RASTER_ROWS`` values, and ``FORECAST_ROWS`` for the forecast's rasters), the
forecast's scores, and the ΔF/F of the few neurons picked by a click. The engine
process turns each row into a :class:`ShownRow` before sending it, so the window
never stacks or groups 70,000-value rows: at 300 volumes shown that cost it
~0.2 s of CPU per volume.

The whole ΔF/F row is still sent (280 kB at 70,000 neurons): a neuron picked later
shows its trace over every volume on screen.

Nothing here imports Qt: the engine process imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rig.readout import LiveRow

__all__ = [
    "FORECAST_ROWS",
    "RASTER_ROWS",
    "ShownForecast",
    "ShownRow",
    "finite_or_zero",
    "group",
    "shown_row",
    "stable_span",
]

#: Rows of the activity raster at most (neurons averaged in groups above that).
RASTER_ROWS = 1000
#: Rows of the forecast's predicted and observed rasters at most.
FORECAST_ROWS = 500


def group(values: np.ndarray, rows: int) -> np.ndarray:
    """(n, ...) -> (<= rows, ...): neighbouring values averaged in groups of ceil(n / rows)
    (the last group shorter). A group with a NaN is NaN."""
    a = np.asarray(values, dtype=np.float32)
    n = a.shape[0]
    if n <= rows:
        return a
    size = -(-n // rows)
    starts = np.arange(0, n, size)
    counts = np.diff(np.append(starts, n)).astype(np.float32)
    sums = np.add.reduceat(a, starts, axis=0)
    return (sums / counts.reshape((-1,) + (1,) * (a.ndim - 1))).astype(np.float32)


#: Volume axes move in steps of this many volumes (not at every volume).
X_STEP = 25


def stable_span(first: float, last: float, step: int = X_STEP) -> tuple[float, float]:
    """An x range for volumes ``first``..``last`` that moves in whole steps: an axis whose
    range changed is laid out and drawn again (its text is most of a plot's repaint), so the
    volume axes change once every ``step`` volumes instead of at every volume."""
    lo = np.floor(first / step) * step
    hi = max(lo + step, np.ceil((last + 1) / step) * step)
    return float(lo), float(hi)


def finite_or_zero(a: np.ndarray) -> np.ndarray:
    """``a`` (a new array the caller owns) with NaN and infinities set to 0, in place: a raster
    drawn as an image (about half the time of ``np.nan_to_num``, which copies)."""
    a[~np.isfinite(a)] = 0.0
    return a


def _p995(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(np.percentile(finite, 99.5)) if finite.size else float("nan")


@dataclass(frozen=True, slots=True)
class ShownForecast:
    """The live forecaster's row as the forecast panel draws it."""

    mae: float  # 1-volume-ahead MAE of the forecast made for this volume
    baseline_mae: float  # the mean baseline's, for the same volume
    surprise: float
    next: np.ndarray  # (<= FORECAST_ROWS,) the forecast of the next volume, grouped
    observed: np.ndarray  # (<= FORECAST_ROWS,) this volume's ΔF/F, grouped the same way
    observed_hi: float  # the 99.5th percentile of ``observed`` (its levels)


@dataclass(frozen=True, slots=True)
class ShownRow:
    """One volume's readout as the Brain readout tab draws it."""

    volume: int
    drift_um: np.ndarray  # (3,) z, y, x
    brightness: np.ndarray  # (z,)
    seconds: float  # CPU seconds the readout took
    n_traced: int  # neurons traced
    traces_dff: np.ndarray  # (n,) float32: the picked neurons' traces come from here
    raster: np.ndarray  # (<= RASTER_ROWS,) ΔF/F grouped
    raster_hi: float  # the 99.5th percentile of ``raster`` (its levels)
    forecast: ShownForecast | None = None


def shown_row(row: LiveRow | ShownRow) -> ShownRow:
    """The drawn part of a live readout row (a :class:`ShownRow` is returned as it is)."""
    if isinstance(row, ShownRow):
        return row
    dff = np.asarray(row.traces_dff, dtype=np.float32)
    raster = group(dff, RASTER_ROWS)
    fc = None
    if row.forecast is not None:
        f = row.forecast
        observed = group(dff, FORECAST_ROWS)
        fc = ShownForecast(
            float(f.mae[0]) if len(f.mae) else float("nan"),
            float(f.baseline_mae[0]) if len(f.baseline_mae) else float("nan"),
            float(f.surprise),
            group(f.next, FORECAST_ROWS),
            observed,
            _p995(observed),
        )
    return ShownRow(
        int(row.volume),
        np.asarray(row.drift_um, dtype=np.float64),
        np.asarray(row.brightness, dtype=np.float32),
        float(row.seconds),
        len(row.traces_raw),
        dff,
        raster,
        _p995(raster),
        fc,
    )
