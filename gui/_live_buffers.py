"""Fixed-size rolling histories for the live plots: the newest seconds of each stream.

The GUI may miss chunks (when it is slow, the engine thread's hand-off queue
drops the oldest), so every value carries its time and a gap in time becomes a
NaN break in the drawn line instead of a false straight segment.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TimeRing", "minmax_bins", "peak_decimate"]


class TimeRing:
    """The last ``capacity`` (time, values) rows, oldest first on read; preallocated."""

    def __init__(self, capacity: int, n_columns: int, max_gap_s: float) -> None:
        if capacity < 2 or n_columns < 1:
            raise ValueError("TimeRing needs capacity >= 2 and at least one column")
        self.capacity = capacity
        self.max_gap_s = max_gap_s
        self._t = np.zeros(capacity)
        self._v = np.zeros((capacity, n_columns), dtype=np.float32)
        self._head = 0  # next row to write
        self._size = 0
        self.last_t = -np.inf

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._head = 0
        self._size = 0
        self.last_t = -np.inf

    def extend(self, t: np.ndarray, values: np.ndarray) -> None:
        """Append rows in time order; a jump larger than ``max_gap_s`` inserts a NaN break."""
        t = np.asarray(t, dtype=np.float64)
        v = np.asarray(values, dtype=np.float32).reshape(len(t), -1)
        if not len(t):
            return
        if self._size and t[0] - self.last_t > self.max_gap_s:
            self._write(np.array([0.5 * (t[0] + self.last_t)]), np.full((1, v.shape[1]), np.nan))
        self._write(t, v)
        self.last_t = float(t[-1])

    def _write(self, t: np.ndarray, v: np.ndarray) -> None:
        n = len(t)
        if n >= self.capacity:
            t, v, n = t[-self.capacity :], v[-self.capacity :], self.capacity
        idx = (self._head + np.arange(n)) % self.capacity
        self._t[idx] = t
        self._v[idx] = v
        self._head = int((self._head + n) % self.capacity)
        self._size = min(self.capacity, self._size + n)

    def view(self, since_t: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (t, values) with t >= ``since_t``, oldest first."""
        start = (self._head - self._size) % self.capacity
        if start + self._size <= self.capacity:
            t = self._t[start : start + self._size]
            v = self._v[start : start + self._size]
            k = int(np.searchsorted(t, since_t, side="left"))  # rows are in time order
            return t[k:].copy(), v[k:].copy()
        # wrapped: copy only the rows asked for (a long history, a short window drawn)
        old_t, new_t = self._t[start:], self._t[: self._head]
        k = int(np.searchsorted(old_t, since_t, side="left"))
        if k < len(old_t):
            return (
                np.concatenate([old_t[k:], new_t]),
                np.concatenate([self._v[start + k :], self._v[: self._head]]),
            )
        k = int(np.searchsorted(new_t, since_t, side="left"))
        return new_t[k:].copy(), self._v[k : self._head].copy()


def peak_decimate(t: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each of ``n_bins`` bins, interleaved: a trace drawn at screen resolution
    that keeps every spike's height (a swim burst must not vanish when zoomed out)."""
    n = len(y)
    if n <= 2 * n_bins:
        return t, y
    per = n // n_bins
    m = per * n_bins
    start = n - m  # drop the oldest few so the newest sample is always drawn
    yb = y[start:].reshape(n_bins, per)
    tb = t[start:].reshape(n_bins, per)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduce(yb, axis=1)
        hi = np.fmax.reduce(yb, axis=1)
    out_y = np.empty(2 * n_bins, dtype=y.dtype)
    out_y[0::2] = lo
    out_y[1::2] = hi
    out_t = np.repeat(tb[:, per // 2], 2)
    out_t[0::2] = tb[:, 0]
    out_t[1::2] = tb[:, -1]
    return out_t, out_y


def minmax_bins(t: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`peak_decimate`, but every sample counts, the first as the last (the last bin
    is shorter): the min at each bin's first time, the max at its last. A past session's
    view uses it, where the first sample must be drawn as well as the newest."""
    n = len(y)
    if n <= 2 * n_bins:
        return t, y
    per = -(-n // n_bins)
    k = -(-n // per)
    pad = np.full(k * per, np.nan, dtype=np.float64)
    pad[:n] = y
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduce(pad.reshape(k, per), axis=1)
        hi = np.fmax.reduce(pad.reshape(k, per), axis=1)
    out_y = np.empty(2 * k, dtype=y.dtype)
    out_y[0::2] = lo
    out_y[1::2] = hi
    out_t = np.empty(2 * k, dtype=np.float64)
    out_t[0::2] = t[::per]
    out_t[1::2] = t[np.minimum(np.arange(1, k + 1) * per, n) - 1]
    return out_t, out_y
