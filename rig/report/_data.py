"""What the QC report shows, read from a session file with bounded memory.

The 6 kHz rows are reduced to a few thousand bins (mean, min, max) as they are
read, block by block, so a two-hour stream (~1.7 GB) never sits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rig.session import ROW, SessionReader, SessionSummary

__all__ = ["Binned", "ReportData", "load_report_data"]

_BINS = 3000
_BLOCK_ROWS = 1 << 20
#: a frame interval this many times the nominal one counts as a late (dropped) frame
LATE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class Binned:
    """A stream row reduced to bins: centre times (s) and mean / min / max per bin."""

    t: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True)
class ReportData:
    summary: SessionSummary
    fs: float
    volume_period_s: float
    refresh_hz: float
    condition_names: list[str]
    condition_start_s: np.ndarray
    condition_stop_s: np.ndarray
    bout_start_s: np.ndarray
    bout_stop_s: np.ndarray
    bout_power: np.ndarray  # (mean of left and right)
    bout_condition: np.ndarray  # index into condition_names, -1 outside every condition
    velocity: Binned
    gain: Binned
    volume_start_s: np.ndarray
    volume_jitter_ms: np.ndarray  # interval to the previous volume minus the period
    volume_drift_ms: np.ndarray  # start minus its place on the ideal schedule
    dropped_volumes: np.ndarray
    dropped_volume_reasons: list[str]
    frame_intervals_ms: np.ndarray
    late_frame_s: np.ndarray  # flip times of frames that came late
    frames_missing: int

    @property
    def nominal_frame_ms(self) -> float:
        return 1000.0 / self.refresh_hz

    def bouts_in(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.bout_condition == c)

    def condition_minutes(self, c: int) -> float:
        return float(self.condition_stop_s[c] - self.condition_start_s[c]) / 60.0


def _binned(ds: h5py.Dataset, cols: list[int], fs: float) -> list[Binned]:
    n = int(ds.shape[0])
    if n == 0:
        empty = np.zeros(0)
        return [Binned(empty, empty, empty, empty) for _ in cols]
    step = max(1, n // _BINS)
    block = max(step, (_BLOCK_ROWS // step) * step)
    means, los, his = [], [], []
    for a in range(0, n, block):
        x = np.asarray(ds[a : min(a + block, n), cols[0] : cols[-1] + 1], dtype=np.float64)
        x = x[:, [c - cols[0] for c in cols]]
        whole = (len(x) // step) * step
        parts = [x[:whole].reshape(-1, step, len(cols))]
        if whole < len(x):  # the last, shorter bin
            parts.append(x[whole:][None])
        for p in parts:
            means.append(p.mean(axis=1))
            los.append(p.min(axis=1))
            his.append(p.max(axis=1))
    mean, lo, hi = np.concatenate(means), np.concatenate(los), np.concatenate(his)
    starts = np.arange(len(mean)) * step
    t = (starts + np.minimum(step, n - starts) / 2.0) / fs
    return [Binned(t, mean[:, i], lo[:, i], hi[:, i]) for i in range(len(cols))]


def _condition_of(t: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Index of the condition each time falls in, -1 before, between or after them."""
    idx = np.searchsorted(start, t, side="right") - 1
    ok = idx >= 0
    ok[ok] = t[ok] < stop[idx[ok]]
    return np.where(ok, idx, -1)


def load_report_data(path: str | Path) -> ReportData:
    with SessionReader(path) as r:
        f = r.file
        summary = r.summary()
        fs = r.sample_rate_hz
        period = r.volume_period_s
        conds = r.conditions
        names = list(r.condition_names)
        c_start = conds["start_sample"] / fs
        c_stop = conds["stop_sample"] / fs
        bouts = r.bouts
        b_start = bouts["start_sample"] / fs
        b_power = (bouts["power_left"].astype(float) + bouts["power_right"].astype(float)) / 2.0
        b_cond = _condition_of(b_start, c_start, c_stop)
        velocity, gain = _binned(f["stimuli_and_ephys"], [ROW["velocity"], ROW["gain"]], fs)
        start = f["volumes/start_sample"][...].astype(np.float64)
        period_samples = period * fs
        jitter = (np.diff(start) - period_samples) / fs * 1000.0
        drift = (
            (start - start[0] - np.arange(len(start)) * period_samples) / fs * 1000.0
            if len(start)
            else np.zeros(0)
        )
        dropped = r.table("volumes/dropped")
        flips = f["stimulus/frames/flip_sample"][...].astype(np.float64)
        refresh = r.refresh_hz
        intervals = np.diff(flips) / fs * 1000.0
        late = flips[1:][intervals > LATE_FACTOR * 1000.0 / refresh] / fs
        return ReportData(
            summary=summary,
            fs=fs,
            volume_period_s=period,
            refresh_hz=refresh,
            condition_names=names,
            condition_start_s=c_start,
            condition_stop_s=c_stop,
            bout_start_s=b_start,
            bout_stop_s=bouts["stop_sample"] / fs,
            bout_power=b_power,
            bout_condition=b_cond,
            velocity=velocity,
            gain=gain,
            volume_start_s=start / fs,
            volume_jitter_ms=jitter,
            volume_drift_ms=drift,
            dropped_volumes=dropped["volume"].astype(np.int64),
            dropped_volume_reasons=[str(r) for r in dropped["reason"]],
            frame_intervals_ms=intervals,
            late_frame_s=late,
            frames_missing=r.planes_dropped,
        )
