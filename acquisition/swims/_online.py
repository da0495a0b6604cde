"""Online fictive-swim detection from the two tail channels (the Ahrens lab's method).

Per channel, every ``step`` samples (10 = 1.7 ms at 6 kHz): the variance of the
last ``window`` samples (60 = 10 ms) around their mean. A noise threshold is
re-estimated every second from the last minute of those values: the histogram
mode plus ``k`` times the distance from the mode down to the low tail (the
noise distribution's width, measured from the side swims never reach).
Swim power comes in two units (``power_units``, chosen per protocol):

* ``"threshold"`` (the default): per evaluation ``sqrt(max(var - thr, 0) / thr)``,
  averaged over the chunk. Dimensionless, so closed-loop gains carry over between
  fish and electrodes whatever the noise level.
* ``"lab"``: the Ahrens lab's definition, the square root of the summed
  supra-threshold power, ``sqrt(sum(max(var - thr, 0)))`` in volts, summed over the
  evaluations of one of the lab's 50-sample loops (5 evaluations at 6 kHz) whatever
  our chunk size, so a gain written for the lab's rig means the same here.

Per evaluation the two are related by ``lab = sqrt(5 * thr) * threshold`` (``thr``
in V²): docs/closed-loop-units.md works the conversion through.
A bout starts when either channel crosses its threshold and ends after
``gap_s`` with both below.

Cost: a few vectorised numpy calls per chunk; the sliding window is carried
across chunks, so results do not depend on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rig.core.records import BOUT_DTYPE
from stimuli.closed_loop import SwimInput

__all__ = [
    "BOUT_DTYPE",
    "LAB_GAP_S",
    "LAB_LOOP_SAMPLES",
    "LAB_THRESHOLD_K",
    "OnlineSwimDetector",
    "PowerUnits",
    "SwimParams",
    "swim_power",
]

PowerUnits = Literal["threshold", "lab"]
#: The lab's C# rig read 50 samples per loop and summed the supra-threshold power over them.
LAB_LOOP_SAMPLES = 50
#: The lab's online rule (DATASET.md): threshold factor and the gap that separates swims.
LAB_THRESHOLD_K = 1.8
LAB_GAP_S = 0.4


#: "No bout ended in this chunk": one shared, read-only empty table (most chunks).
_NO_BOUTS = np.zeros(0, dtype=BOUT_DTYPE)
_NO_BOUTS.flags.writeable = False


@dataclass(frozen=True, slots=True)
class SwimParams:
    window: int = 60
    step: int = 10
    # 2.5 rather than the lab's 1.8 (rule "lab"): on the virtual fish's tail 1.8 made 12 false
    # bouts in 300 s of noise and precision 0.92; 2.5 gave 0 and 1.00, full recall
    # (rig/core/_devices.py SwimsConfig; benchmarks/README.md)
    threshold_k: float = 2.5
    low_tail_percentile: float = 0.05
    # a 10 s window follows a change of electrode noise within ~10 s (60 s took ~30 s)
    history_s: float = 10.0
    reestimate_s: float = 1.0
    # 0.1 s rather than the lab's ≈0.4 s (rule "lab"): the virtual fish's bouts come as close
    # as 0.31 s (7 of 125 closer than 0.4 s); a 0.4 s gap merges them (recall 0.94 vs 1.00)
    gap_s: float = 0.1
    min_bout_s: float = 0.02
    #: Until enough noise has been seen, the threshold is this multiple of the median power.
    warmup_factor: float = 2.5

    @classmethod
    def for_rule(
        cls,
        rule: Literal["zaprig", "lab"] = "zaprig",
        threshold_k: float | None = None,
        gap_s: float | None = None,
    ) -> SwimParams:
        """The parameters of a named rule (rig config ``[swims]``), with values set over it.

        ``"lab"``: the Ahrens lab's online rule as DATASET.md gives it (threshold factor
        1.8, bouts split at 0.4 s gaps); ``"zaprig"``: these defaults (rig/core/_devices.py,
        ``SwimsConfig``, says why each differs).
        """
        base = cls(threshold_k=LAB_THRESHOLD_K, gap_s=LAB_GAP_S) if rule == "lab" else cls()
        return cls(
            **{
                **{f: getattr(base, f) for f in cls.__dataclass_fields__},
                **({"threshold_k": threshold_k} if threshold_k is not None else {}),
                **({"gap_s": gap_s} if gap_s is not None else {}),
            }
        )


def swim_power(var: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per-evaluation swim power in threshold units: ``sqrt(max(var - thr, 0) / thr)``.

    Before the first threshold estimate the threshold is infinite and this is 0 for
    every (finite) variance, as it should be.
    """
    result: np.ndarray = np.sqrt(np.maximum(var - threshold, 0.0) / threshold)
    return result


class OnlineSwimDetector:
    def __init__(
        self,
        sample_rate_hz: float,
        params: SwimParams | None = None,
        power_units: PowerUnits = "threshold",
    ) -> None:
        self.p = params or SwimParams()
        #: Units of the chunk power handed to the feedback law and of the bout table's powers.
        self.power_units: PowerUnits = power_units
        # lab units: evaluations per lab loop (the sum's length)
        self._lab_evals = LAB_LOOP_SAMPLES / self.p.step
        self.fs = sample_rate_hz
        self._n_carry = 0  # samples of the last chunk(s) kept for the next window (<= window)
        self._xx = np.zeros((4, 0))
        self._sums = np.zeros((4, 1))
        self._ends_step = np.zeros(0, dtype=np.int64)  # 0, step, 2 step, ...: ends less first
        self._no_swim = SwimInput(False, 0.0, 0.0)  # most chunks' answer, one shared value
        n_hist = int(self.p.history_s * sample_rate_hz / self.p.step)
        self._hist = np.zeros((n_hist, 2))
        self._hist_n = 0
        self._hist_i = 0
        self._since_estimate = 0
        self.threshold = np.array([np.inf, np.inf])
        self._ready = False
        self._gap = round(self.p.gap_s * sample_rate_hz)
        self._in_bout = False
        self._bout_start = 0
        self._last_supra = 0
        self._sum_l = 0.0
        self._sum_r = 0.0
        self._count = 0
        self._peak = 0.0
        #: (evals, 2) windowed variance of the last chunk (``last_power`` is made from it
        #: on demand). This, ``last_eval_samples`` and ``threshold`` are new arrays whenever
        #: they change (never written in place), so the engine hands them on without copying.
        self.last_var = np.zeros((0, 2))
        self._last_thr = self.threshold
        self._unit_power: np.ndarray | None = np.zeros((0, 2))  # in ``power_units``; None: not made
        self.last_eval_samples = np.zeros(0, dtype=np.int64)

    @property
    def swimming(self) -> bool:
        return self._in_bout

    def process(self, tail: np.ndarray, s0: int) -> tuple[SwimInput, np.ndarray]:
        """Feed samples [s0, s0+n) of (n, 2) tail voltages; return the chunk's swim input
        and the bouts that ended in it (BOUT_DTYPE)."""
        n = len(tail)
        w, st = self.p.window, self.p.step
        xx, sums = self._xx, self._sums
        # ([x_left, x_right, x_left^2, x_right^2], samples): the last ``w`` samples (the carry,
        # squares included) then this chunk's, and their running sums after a leading zero
        # column, kept between chunks. After the first chunk the carry moves down inside the
        # buffer (no copy out and back) and only the new samples are squared. One row per
        # quantity: the squares and running sums run over contiguous memory (numpy's
        # accumulate along rows of a (samples, 4) array took twice as long).
        if self._n_carry == w and xx.shape[1] == w + n:
            xx[:, :w] = xx[:, n:]  # numpy copies overlapping columns correctly
        else:
            n_carry = self._n_carry
            new = np.empty((4, n_carry + n))
            new[:, :n_carry] = xx[:, xx.shape[1] - n_carry :]
            self._xx = xx = new
            self._sums = sums = np.zeros((4, n_carry + n + 1))
        n_carry = self._n_carry
        m = n_carry + n
        x_new = xx[:2, n_carry:]
        x_new[...] = tail.T
        np.multiply(x_new, x_new, out=xx[2:, n_carry:])
        base = s0 - n_carry
        # evaluation points: global samples e (multiple of step) with a full window [e-w, e)
        first = max(base + w, ((s0 + st - 1) // st) * st)
        if first % st:
            first += st - first % st
        last = s0 + n
        done = _NO_BOUTS
        if first <= last:
            k = (last - first) // st + 1
            if self._ends_step.shape[0] != k:
                self._ends_step = np.arange(0, k * st, st, dtype=np.int64)
            ends = self._ends_step + first
            # running sums; the window sums are differences of them (slices, not index
            # arrays). Each column is summed in order from the carry's first sample, so the
            # numbers are those of one cumsum per quantity, whatever the buffer's layout.
            np.add.accumulate(xx, axis=1, out=sums[:, 1:])  # = np.cumsum(xx, axis=1)
            hi0 = first - base
            d = (
                sums[:, hi0 : last - base + 1 : st] - sums[:, hi0 - w : last - base + 1 - w : st]
            ).T
            d /= w
            mean = d[:, :2]
            var = np.subtract(d[:, 2:], mean * mean, order="C")  # (evals, 2), as handed on
            np.maximum(var, 0.0, out=var)
            self._remember(var)
            # the powers are made only when a bout needs them (most chunks: no swim at all)
            self.last_var, self._last_thr, self._unit_power = var, self.threshold, None
            done = self._bouts(var, ends)
            self.last_eval_samples = ends
        self._n_carry = min(w, m)  # the carry: the buffer's last rows
        if not self._in_bout:
            return self._no_swim, done
        pl, pr = self._chunk_power()
        return SwimInput(True, pl, pr), done

    @property
    def last_power(self) -> np.ndarray:
        """(evals, 2) swim power of the last chunk in threshold units, for live views."""
        return swim_power(self.last_var, self._last_thr)

    def _unit(self) -> np.ndarray:
        """The last chunk's per-evaluation power in ``power_units`` (made once, on demand)."""
        if self._unit_power is None:
            var = self.last_var
            self._unit_power = self._in_units(var, swim_power(var, self._last_thr))
        return self._unit_power

    def _in_units(self, var: np.ndarray, power: np.ndarray) -> np.ndarray:
        """Per-evaluation power in ``power_units`` (threshold units are ``power`` itself)."""
        if self.power_units == "threshold" or not self._ready:
            return power
        # a lab loop whose every evaluation had this supra-threshold power
        result: np.ndarray = np.sqrt(self._lab_evals * np.maximum(var - self.threshold, 0.0))
        return result

    def _chunk_power(self) -> tuple[float, float]:
        """The chunk's swim power, left and right (asked only while in a bout)."""
        p = self._unit()
        if not len(p):
            return 0.0, 0.0
        # lab: sqrt of the supra-threshold power summed over one lab loop = rms of the
        # per-evaluation values above; threshold units: their mean
        m = np.sqrt((p * p).mean(axis=0)) if self.power_units == "lab" else p.mean(axis=0)
        return float(m[0]), float(m[1])

    def _remember(self, var: np.ndarray) -> None:
        n = len(var)
        cap = len(self._hist)
        i = self._hist_i
        if i + n <= cap:
            self._hist[i : i + n] = var
        else:
            self._hist[(i + np.arange(n)) % cap] = var
        self._hist_i = (self._hist_i + n) % cap
        self._hist_n = min(cap, self._hist_n + n)
        self._since_estimate += n * self.p.step
        if self._since_estimate >= self.p.reestimate_s * self.fs or not self._ready:
            self._since_estimate = 0
            self._estimate()

    def _estimate(self) -> None:
        h = self._hist[: self._hist_n]
        if len(h) < 50:
            return
        thr = np.empty(2)
        for ch in range(2):
            v = h[:, ch]
            lo = np.percentile(v, self.p.low_tail_percentile)
            top = np.percentile(v, 90.0)
            span = (float(lo), float(max(top, lo * 1.01 + 1e-12)))
            counts, edges = np.histogram(v, bins=100, range=span)
            k = int(np.argmax(counts))
            mode = 0.5 * (edges[k] + edges[k + 1])
            thr[ch] = mode + self.p.threshold_k * max(mode - lo, 1e-12)
            if self._hist_n * self.p.step < 2.0 * self.fs:
                thr[ch] = max(thr[ch], self.p.warmup_factor * float(np.median(v)))
        self.threshold = thr
        self._ready = True

    def _bouts(self, var: np.ndarray, ends: np.ndarray) -> np.ndarray:
        if not self._ready:
            return _NO_BOUTS
        gt = var > self.threshold
        if not self._in_bout and not gt.any():
            return _NO_BOUTS  # most chunks: no bout going on, none starting
        supra: np.ndarray = gt[:, 0] | gt[:, 1]  # either channel (np.any(axis=1), cheaper)
        power = self._unit()
        out = []
        half = self.p.window // 2
        for i in range(len(ends)):
            e = int(ends[i])
            if supra[i]:
                if not self._in_bout:
                    self._in_bout = True
                    self._bout_start = e - half
                    self._sum_l = self._sum_r = self._peak = 0.0
                    self._count = 0
                self._last_supra = e
                self._sum_l += power[i, 0]
                self._sum_r += power[i, 1]
                self._count += 1
                self._peak = max(self._peak, float(power[i].max()))
            elif self._in_bout and e - self._last_supra >= self._gap:
                self._in_bout = False
                stop = self._last_supra - half
                if (stop - self._bout_start) >= self.p.min_bout_s * self.fs:
                    n = max(1, self._count)
                    out.append(
                        (self._bout_start, stop, self._sum_l / n, self._sum_r / n, self._peak)
                    )
        return np.array(out, dtype=BOUT_DTYPE) if out else _NO_BOUTS
