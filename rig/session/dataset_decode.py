"""Decode a 10-row stream the way the dataset's published notebook does, step by step.

The ZAPBench notebook (``processing/stimuli.ipynb``) is the reference for how a
recording's timing is read: volume starts are TTL peaks above 3.55 V
(``find_peaks(distance=500)``), plane triggers are peaks above 1 V
(``find_peaks(distance=50)``) minus the volume starts, the ratio of the two
should be the planes per volume, condition onsets are where row 4 changes, and
``idx_to_t`` maps a sample to the timestep whose first plane peak is at or
before it and whose successor's first plane peak is after it.

This module follows those steps in the same order, written for this project
(vectorised where the notebook loops, with the same results), so tests can say
"the dataset's own decoding of this session gives ..." about session files and
about their ``--format zapbench`` exports alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

__all__ = ["DatasetDecode", "decode_rows", "load_10chflt"]

#: The notebook's thresholds and peak distances.
VOLUME_HEIGHT_V = 3.55
VOLUME_DISTANCE = 500
PLANE_HEIGHT_V = 1.0
PLANE_DISTANCE = 50


@dataclass(frozen=True)
class DatasetDecode:
    """What the notebook's steps give for one stream."""

    #: ``ttls_high``: volume-start peaks (samples).
    volume_peaks: np.ndarray
    #: ``ttls_low`` after removing the volume-start peaks: plane peaks (samples).
    plane_peaks: np.ndarray
    #: ``np.where(np.diff(condition_index) != 0)[0] + 1``: samples where row 4 changes.
    condition_onsets: np.ndarray
    #: The row-4 value from each onset on (1-based condition, 0 outside the protocol).
    onset_values: np.ndarray
    #: ``markers[t][0]`` for every timestep the notebook can form (needs peak t + 1).
    first_plane_peak: np.ndarray
    #: Plane peaks between volume-start peaks t and t + 1, per timestep.
    planes_per_timestep: np.ndarray

    @property
    def ratio(self) -> float:
        """``len(low_peaks) / len(ttls_high)``: the notebook expects the planes per volume."""
        return len(self.plane_peaks) / max(1, len(self.volume_peaks))

    def idx_to_t(self, idx: int | np.ndarray) -> np.ndarray:
        """Timestep t with ``markers[t][0] <= idx < markers[t+1][0]``; -1 where there is none."""
        m = self.first_plane_peak
        idx = np.asarray(idx)
        t = np.searchsorted(m, idx, side="right") - 1
        # the notebook's loop needs markers[t + 1]: the last formed timestep maps nothing
        return np.where((t >= 0) & (t < len(m) - 1), t, -1)

    def condition_onsets_imaging(self) -> list[int]:
        """The notebook's ``condition_onsets_imaging``: each row-4 change as a timestep."""
        return [int(x) for x in self.idx_to_t(self.condition_onsets)]


def decode_rows(ttl: np.ndarray, condition_row: np.ndarray) -> DatasetDecode:
    """Run the notebook's steps on row 2 (TTL, volts) and row 4 (condition index)."""
    ttl = np.asarray(ttl, dtype=np.float64)
    high = scipy.signal.find_peaks(ttl, distance=VOLUME_DISTANCE, height=VOLUME_HEIGHT_V)[0]
    low = scipy.signal.find_peaks(ttl, distance=PLANE_DISTANCE, height=PLANE_HEIGHT_V)[0]
    # "remove volume imaging start steps and only keep plane imaging steps"
    low = low[~np.isin(low, high)]
    cond = np.asarray(condition_row)
    onsets = np.flatnonzero(np.diff(cond) != 0) + 1
    # markers_for_timestep(t): plane peaks with ttls_high[t] <= p < ttls_high[t + 1]
    n_t = max(0, len(high) - 1)
    lo = np.searchsorted(low, high[:n_t], side="left")
    hi = np.searchsorted(low, high[1:], side="left")
    per = (hi - lo).astype(np.int64)
    first = np.where(per > 0, low[np.minimum(lo, max(0, len(low) - 1))], -1) if n_t else per
    return DatasetDecode(
        volume_peaks=high,
        plane_peaks=low,
        condition_onsets=onsets,
        onset_values=cond[onsets] if len(onsets) else np.zeros(0, cond.dtype),
        first_plane_peak=np.asarray(first, dtype=np.int64),
        planes_per_timestep=per,
    )


def load_10chflt(path: str | Path, num_channels: int = 10) -> np.ndarray:
    """The notebook's ``load_stimuli_and_ephys``: rows x samples from a raw float32 file."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size % num_channels:
        raise ValueError(f"{path}: {data.size} values do not fit {num_channels} channels")
    return data.reshape((-1, num_channels)).T
