"""Offline fictive-swim detection for re-analysis (the Ahrens lab's method), and bout comparison.

Per channel the swim power is ``flt = smooth((x - smooth(x))**2)`` with a
normalised Gaussian kernel of 121 samples (sigma 20): the first smoothing
removes slow drift, squaring the residual gives power, the second smoothing
turns the spikes of one tail-beat burst into one hump. The threshold is
``mode + k * (mode - low)`` of the distribution of the humps' peak values,
where ``low`` is the nearest value below the mode that is less than 1/200 as
common as the mode (the noise's width measured on the side swims never reach).
It is estimated in a 60 s window centred on each short hop (2 s), so a change of
electrode noise moves the threshold within a hop of the change.

A *burst* is a supra-threshold stretch of one channel; stretches closer than the
dead time (80 samples) are one burst. Bursts of both channels closer than
``gap_s`` form one *bout*; a bout needs ``min_bursts`` bursts, so a lone noise
excursion is not a swim.

The detector is streaming: it takes the file in blocks of any size and holds
only half a window of filtered signal (about 32 s) plus one small histogram per
hop and one row per burst, so a two-hour recording is processed in bounded
memory (about 10 s and 220 MB for the 2 h built-in protocol, file reading included). Its bouts use the online detector's
record (``BOUT_DTYPE``) and power units (square root of power above threshold,
in threshold units), so both can be compared with :func:`compare`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from acquisition.swims._online import BOUT_DTYPE

__all__ = [
    "THRESHOLD_DTYPE",
    "BoutComparison",
    "OfflineParams",
    "OfflineSwimDetector",
    "OfflineSwims",
    "compare",
    "detect_bouts",
]

#: One row per hop: the thresholds (flt units, V^2) used for samples [start, stop).
THRESHOLD_DTYPE = np.dtype(
    [
        ("start_sample", "i8"),
        ("stop_sample", "i8"),
        ("threshold_left", "f8"),
        ("threshold_right", "f8"),
        ("mode_left", "f8"),
        ("mode_right", "f8"),
    ]
)

# Bursts as float rows: start, stop (exclusive), channel, power sum, power peak.
_B_START, _B_STOP, _B_CH, _B_SUM, _B_PEAK = range(5)


@dataclass(frozen=True, slots=True)
class OfflineParams:
    """The method's constants (DATASET.md, "Offline swim detection"); the defaults are the lab's."""

    kernel_half_width: int = 60  # 121-sample kernel
    kernel_sigma: float = 20.0
    threshold_k: float = 2.5
    #: Fraction of the mode's count below which the histogram counts as "low tail".
    low_tail_fraction: float = 1.0 / 200.0
    window_s: float = 60.0
    hop_s: float = 2.0
    dead_time_samples: int = 80
    gap_s: float = 0.12
    min_bursts: int = 2
    #: Log-spaced histogram of hump peaks; scale-free, so no unit assumptions.
    bins_per_decade: int = 50
    log10_range: tuple[float, float] = (-16.0, 4.0)

    def kernel(self) -> np.ndarray:
        x = np.arange(-self.kernel_half_width, self.kernel_half_width + 1, dtype=np.float64)
        k = np.exp(-(x**2) / (2.0 * self.kernel_sigma**2))
        result: np.ndarray = k / k.sum()
        return result


class _PowerFilter:
    """``smooth((x - smooth(x))**2)`` over a stream, with reflected ends.

    Output lags input by ``2h`` samples (h = kernel half width) until :meth:`finish`.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        self._k = kernel[:, None]
        self._h = (len(kernel) - 1) // 2
        self._buf = np.zeros((0, 2))
        self._started = False

    def push(self, x: np.ndarray) -> np.ndarray:
        h2 = 2 * self._h
        buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        if not self._started:
            if len(buf) <= h2:
                self._buf = buf
                return np.zeros((0, 2))
            buf = np.concatenate([buf[h2:0:-1], buf])
            self._started = True
        out = self._valid(buf)
        self._buf = buf[-2 * h2 :]
        return out

    def finish(self) -> np.ndarray:
        h2 = 2 * self._h
        buf = self._buf
        if not self._started:
            if len(buf) <= h2:  # too short to say anything
                return np.zeros((0, 2))
            buf = np.concatenate([buf[h2:0:-1], buf])
        tail = buf[-2 : -h2 - 2 : -1]
        out = self._valid(np.concatenate([buf, tail]))
        self._buf = np.zeros((0, 2))
        return out

    def _valid(self, buf: np.ndarray) -> np.ndarray:
        # imported here: scipy.signal takes ~2 s to import, and every session process (the
        # engine, the writer) imports this package for the online detector alone
        from scipy.signal import oaconvolve

        h = self._h
        if len(buf) <= 4 * h:
            return np.zeros((0, 2))
        smooth = oaconvolve(buf, self._k, mode="valid", axes=0)
        hp = buf[h:-h] - smooth
        flt = oaconvolve(hp * hp, self._k, mode="valid", axes=0)
        # FFT round-off can leave tiny negatives where the power is ~0
        result: np.ndarray = np.maximum(flt, 0.0)
        return result


@dataclass
class _Hop:
    start: int
    flt: np.ndarray  # (n, 2)
    hist: np.ndarray  # (2, bins) counts of hump peaks


class OfflineSwimDetector:
    """Streaming offline detector: :meth:`feed` blocks of (n, 2) tail volts, then :meth:`finish`."""

    def __init__(self, sample_rate_hz: float, params: OfflineParams | None = None) -> None:
        self.p = params or OfflineParams()
        self.fs = float(sample_rate_hz)
        self._filter = _PowerFilter(self.p.kernel())
        self._hop_n = max(1, round(self.p.hop_s * self.fs))
        self._side = max(1, round(self.p.window_s / 2.0 / self.p.hop_s))
        lo, hi = self.p.log10_range
        self._n_bins = round((hi - lo) * self.p.bins_per_decade)
        centres = lo + (np.arange(self._n_bins) + 0.5) / self.p.bins_per_decade
        self._centres = 10.0**centres
        self._parts: list[np.ndarray] = []
        self._parts_n = 0
        self._next_hop_start = 0
        # hops whose histograms are still needed; the newest _side+1 also keep their signal
        self._hops: deque[_Hop] = deque()
        self._hop_index = 0  # index (in hops since the start) of self._hops[0]
        self._done_hops = 0  # hops whose bursts are extracted
        self._carry: list[np.ndarray | None] = [None, None]  # last open burst per channel
        self._bursts: list[np.ndarray] = []
        self._thresholds: list[tuple[int, int, float, float, float, float]] = []
        self._samples_in = 0
        self._finished: np.ndarray | None = None

    # -- feeding -----------------------------------------------------------------------------
    def feed(self, tail: np.ndarray) -> None:
        """Samples continuing the stream: (n, 2) volts, left and right tail channels."""
        if self._finished is not None:
            raise RuntimeError("feed() after finish(): make a new detector per recording")
        x = np.asarray(tail, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"tail must be (n, 2) left/right samples, not shape {x.shape}")
        self._samples_in += len(x)
        self._add_flt(self._filter.push(x))

    def finish(self) -> np.ndarray:
        """Flush the stream; return every bout (``BOUT_DTYPE``, by start sample)."""
        if self._finished is not None:
            return self._finished
        self._add_flt(self._filter.finish())
        if self._parts_n:
            self._new_hop(np.concatenate(self._parts))
            self._parts, self._parts_n = [], 0
        while self._done_hops < self._hop_index + len(self._hops):
            self._finalise_next()
        for ch in range(2):
            c = self._carry[ch]
            if c is not None:
                self._bursts.append(c[None, :])
        self._finished = self._group_bouts()
        return self._finished

    @property
    def samples(self) -> int:
        return self._samples_in

    @property
    def thresholds(self) -> np.ndarray:
        """Per hop: the thresholds and noise modes used (``THRESHOLD_DTYPE``)."""
        return np.array(self._thresholds, dtype=THRESHOLD_DTYPE)

    # -- hops --------------------------------------------------------------------------------
    def _add_flt(self, flt: np.ndarray) -> None:
        if not len(flt):
            return
        self._parts.append(flt)
        self._parts_n += len(flt)
        if self._parts_n < self._hop_n:
            return
        allf = np.concatenate(self._parts)
        k = 0
        while len(allf) - k >= self._hop_n:
            self._new_hop(allf[k : k + self._hop_n])
            k += self._hop_n
        rest = allf[k:]
        self._parts = [rest] if len(rest) else []
        self._parts_n = len(rest)

    def _new_hop(self, flt: np.ndarray) -> None:
        hist = np.zeros((2, self._n_bins), dtype=np.int64)
        lo, hi = self.p.log10_range
        for ch in range(2):
            f = flt[:, ch]
            peak = (f[1:-1] > f[:-2]) & (f[1:-1] >= f[2:]) & (f[1:-1] > 0.0)
            v = np.log10(f[1:-1][peak])
            hist[ch] = np.histogram(v, bins=self._n_bins, range=(lo, hi))[0]
        self._hops.append(_Hop(self._next_hop_start, flt, hist))
        self._next_hop_start += len(flt)
        # a hop is final once the hops up to half a window after it exist
        while self._done_hops + self._side < self._hop_index + len(self._hops):
            self._finalise_next()

    def _finalise_next(self) -> None:
        i = self._done_hops - self._hop_index  # position in the deque
        hop = self._hops[i]
        a, b = max(0, i - self._side), min(len(self._hops), i + self._side + 1)
        counts = np.sum([self._hops[j].hist for j in range(a, b)], axis=0)
        thr = np.empty(2)
        mode = np.empty(2)
        for ch in range(2):
            thr[ch], mode[ch] = self._threshold(counts[ch])
        self._thresholds.append(
            (hop.start, hop.start + len(hop.flt), thr[0], thr[1], mode[0], mode[1])
        )
        for ch in range(2):
            self._bursts_in(hop.start, hop.flt[:, ch], thr[ch], ch)
        hop.flt = np.zeros((0, 2))
        self._done_hops += 1
        # drop hops no future window reaches
        while self._hops and self._hop_index < self._done_hops - self._side:
            self._hops.popleft()
            self._hop_index += 1

    def _threshold(self, counts: np.ndarray) -> tuple[float, float]:
        if counts.sum() < 10:
            return np.inf, np.nan  # a flat or silent channel: nothing can be a swim
        c = np.convolve(counts.astype(np.float64), np.ones(5) / 5.0, mode="same")
        m = int(np.argmax(c))
        below = np.flatnonzero(c[:m] < c[m] * self.p.low_tail_fraction)
        low = self._centres[below[-1]] if len(below) else 0.0
        mode = float(self._centres[m])
        return mode + self.p.threshold_k * (mode - low), mode

    # -- bursts and bouts --------------------------------------------------------------------
    def _bursts_in(self, start: int, f: np.ndarray, thr: float, ch: int) -> None:
        supra = f > thr
        edges = np.diff(supra.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        r0 = np.flatnonzero(edges == 1)
        r1 = np.flatnonzero(edges == -1)
        if not len(r0):
            return
        pw = np.sqrt(np.maximum(f - thr, 0.0) / thr)
        cs = np.concatenate([[0.0], np.cumsum(pw)])
        runs = np.empty((len(r0), 5))
        runs[:, _B_START] = r0 + start
        runs[:, _B_STOP] = r1 + start
        runs[:, _B_CH] = ch
        runs[:, _B_SUM] = cs[r1] - cs[r0]
        runs[:, _B_PEAK] = np.maximum.reduceat(pw, r0)[: len(r0)]
        c = self._carry[ch]
        if c is not None:
            runs = np.concatenate([c[None, :], runs])
        # a run starting within the dead time of the previous one belongs to the same burst
        new = np.ones(len(runs), dtype=bool)
        new[1:] = runs[1:, _B_START] - runs[:-1, _B_STOP] >= self.p.dead_time_samples
        first = np.flatnonzero(new)
        last = np.append(first[1:], len(runs)) - 1
        merged = np.empty((len(first), 5))
        merged[:, _B_START] = runs[first, _B_START]
        merged[:, _B_STOP] = runs[last, _B_STOP]
        merged[:, _B_CH] = ch
        merged[:, _B_SUM] = np.add.reduceat(runs[:, _B_SUM], first)
        merged[:, _B_PEAK] = np.maximum.reduceat(runs[:, _B_PEAK], first)
        # the newest burst may still grow in the next hop
        self._carry[ch] = merged[-1]
        if len(merged) > 1:
            self._bursts.append(merged[:-1])

    def _group_bouts(self) -> np.ndarray:
        if not self._bursts:
            return np.zeros(0, dtype=BOUT_DTYPE)
        b = np.concatenate(self._bursts)
        b = b[np.argsort(b[:, _B_START], kind="stable")]
        gap = round(self.p.gap_s * self.fs)
        reach = np.maximum.accumulate(b[:, _B_STOP])
        new = np.ones(len(b), dtype=bool)
        new[1:] = b[1:, _B_START] - reach[:-1] > gap
        first = np.flatnonzero(new)
        n_bursts = np.diff(np.append(first, len(b)))
        start = b[first, _B_START]
        stop = np.maximum.reduceat(b[:, _B_STOP], first)
        sums = np.zeros((len(first), 2))
        group = np.cumsum(new) - 1
        for ch in range(2):
            on = b[:, _B_CH] == ch
            sums[:, ch] = np.bincount(group[on], weights=b[on, _B_SUM], minlength=len(first))
        peak = np.maximum.reduceat(b[:, _B_PEAK], first)
        keep = n_bursts >= self.p.min_bursts
        dur = np.maximum(stop - start, 1.0)
        out = np.zeros(int(keep.sum()), dtype=BOUT_DTYPE)
        out["start_sample"] = start[keep]
        out["stop_sample"] = stop[keep]
        out["power_left"] = (sums[:, 0] / dur)[keep]
        out["power_right"] = (sums[:, 1] / dur)[keep]
        out["peak_power"] = peak[keep]
        return out


def detect_bouts(
    tail: np.ndarray,
    sample_rate_hz: float,
    params: OfflineParams | None = None,
    block_samples: int = 360_000,
) -> np.ndarray:
    """Bouts (``BOUT_DTYPE``) in an in-memory (n, 2) recording, fed in blocks."""
    det = OfflineSwimDetector(sample_rate_hz, params)
    for i in range(0, len(tail), block_samples):
        det.feed(tail[i : i + block_samples])
    return det.finish()


@dataclass(frozen=True)
class OfflineSwims:
    """The offline detector's result for a session file."""

    bouts: np.ndarray  # BOUT_DTYPE
    thresholds: np.ndarray  # THRESHOLD_DTYPE
    sample_rate_hz: float
    samples: int


@dataclass(frozen=True)
class BoutComparison:
    """Bouts of two detectors matched one-to-one by onset."""

    n_online: int
    n_offline: int
    matched: int
    online_only: int
    offline_only: int
    #: Onset differences (online - offline, seconds) of matched pairs, by online onset.
    onset_error_s: np.ndarray
    #: Indices into the (sorted) inputs of each matched pair: (online, offline).
    pairs: np.ndarray
    tolerance_s: float

    @property
    def agreement(self) -> float:
        """Matched bouts / all distinct bouts (1.0 when both are empty)."""
        total = self.matched + self.online_only + self.offline_only
        return self.matched / total if total else 1.0

    @property
    def online_matched_fraction(self) -> float:
        return self.matched / self.n_online if self.n_online else 1.0

    @property
    def offline_matched_fraction(self) -> float:
        return self.matched / self.n_offline if self.n_offline else 1.0

    def onset_stats_ms(self) -> dict[str, float]:
        """Median, mean, p95 of |error| and max |error|, in milliseconds (NaN with no pairs)."""
        e = self.onset_error_s * 1e3
        if not len(e):
            nan = float("nan")
            return {"median": nan, "mean": nan, "p95_abs": nan, "max_abs": nan}
        a = np.abs(e)
        return {
            "median": float(np.median(e)),
            "mean": float(np.mean(e)),
            "p95_abs": float(np.percentile(a, 95)),
            "max_abs": float(a.max()),
        }


def _onsets(bouts: np.ndarray) -> np.ndarray:
    arr = np.asarray(bouts)
    if arr.dtype.names and "start_sample" in arr.dtype.names:
        return np.sort(arr["start_sample"].astype(np.int64))
    return np.sort(arr.astype(np.int64).ravel())


def compare(
    online: np.ndarray,
    offline: np.ndarray,
    tolerance_s: float = 0.02,
    sample_rate_hz: float = 6000.0,
) -> BoutComparison:
    """Match bouts by onset (closest pairs first, each bout at most once, within the tolerance).

    Either input is a bout table (a structured array with ``start_sample``) or an
    array of onset samples.
    """
    a, b = _onsets(online), _onsets(offline)
    tol = tolerance_s * sample_rate_hz
    lo = np.searchsorted(b, a - tol, side="left")
    hi = np.searchsorted(b, a + tol, side="right")
    cand = [
        (abs(int(a[i]) - int(b[j])), i, j)
        for i in np.flatnonzero(hi > lo)
        for j in range(lo[i], hi[i])
    ]
    cand.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, i, j in cand:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j))
    pairs.sort()
    p = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    err = (a[p[:, 0]] - b[p[:, 1]]) / sample_rate_hz if len(p) else np.zeros(0)
    return BoutComparison(
        n_online=len(a),
        n_offline=len(b),
        matched=len(p),
        online_only=len(a) - len(p),
        offline_only=len(b) - len(p),
        onset_error_s=np.asarray(err, dtype=np.float64),
        pairs=p,
        tolerance_s=tolerance_s,
    )
