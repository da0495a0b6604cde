"""What the readout computes from one volume: drift, brightness per plane and neuron traces.

Pure numpy/scipy on one volume at a time, so it runs the same in the readout
process, in the tests and in ``benchmarks/readout_cost.py``. The budget is
0.5 s of one core for a 72 x 1328 x 2048 volume with ~70,000 neurons, so:

* drift and brightness use a copy binned ``downsample`` x in y and x (the
  volume is read once, plane by plane, so the work stays in the cache); the
  drift is the peak of the 3-D phase correlation with the reference, refined
  on each axis from the peak and its larger neighbour (:func:`_subpixel`);
* traces gather a fixed flat-index array per label (:class:`LabelIndex`, at
  most ``max_voxels`` per label) with ``np.take`` and sum per label with
  ``np.add.reduceat``: no label volume is touched per volume;
* ΔF/F is taken on the trace less the dark level and its local background
  (``rig/readout/_background.py``), over a low percentile of block means over a
  long window (:class:`Baseline`): a slow baseline that follows bleaching, not the
  responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from rig.forecast import ForecastRow

__all__ = [
    "Baseline",
    "LabelIndex",
    "LiveRow",
    "bin_xy",
    "dff",
    "phase_shift",
    "trace_means",
]


@dataclass(frozen=True, slots=True)
class LiveRow:
    """The readout of one volume: a row of each ``/live/...`` dataset."""

    volume: int
    drift_um: np.ndarray  # (3,) z, y, x
    brightness: np.ndarray  # (z,) mean per plane / the reference's
    traces_raw: np.ndarray  # (n,) float32 mean counts per label
    traces_dff: np.ndarray  # (n,) float32 ΔF/F of traces_f
    seconds: float  # CPU seconds this volume's readout took
    #: (n,) float32: traces_raw less the dark level and the local background (the F of ΔF/F)
    traces_f: np.ndarray | None = None
    #: The live forecaster's row (None: ``readout.forecast_horizon = 0``); rig/forecast.
    forecast: ForecastRow | None = None


@dataclass(frozen=True, slots=True)
class LabelIndex:
    """Per label, the flat voxel indices to average: ``flat[starts[i]:starts[i+1]]``.

    Labels with no voxel are dropped at construction (``ids`` are those kept).
    """

    ids: np.ndarray  # (n,) int64 label ids
    flat: np.ndarray  # (m,) int64 flat indices into a (z, y, x) volume
    starts: np.ndarray  # (n,) int64
    counts: np.ndarray  # (n,) int64
    positions_zyx: np.ndarray  # (n, 3) float64 centroid of each label, voxels

    @property
    def n(self) -> int:
        return len(self.ids)

    @classmethod
    def from_labels(cls, labels: np.ndarray, max_voxels: int = 64, seed: int = 0) -> LabelIndex:
        """From a label volume (z, y, x; 0 and below = background, as segmentations mark
        unlabelled voxels with 0 or -1); large labels are sampled."""
        flat_labels = labels.reshape(-1)
        where = np.flatnonzero(flat_labels > 0)
        lab = flat_labels[where].astype(np.int64)
        order = np.argsort(lab, kind="stable")
        return cls.from_pairs(lab[order], where[order], labels.shape, max_voxels, seed)

    @classmethod
    def from_pairs(
        cls,
        label: np.ndarray,
        flat: np.ndarray,
        shape_zyx: tuple[int, ...],
        max_voxels: int = 64,
        seed: int = 0,
    ) -> LabelIndex:
        """From (label, flat index) pairs sorted by label."""
        ids, starts, counts = np.unique(label, return_index=True, return_counts=True)
        if np.any(counts > max_voxels):
            # keep a random max_voxels of each large label: the mean of a sample, fixed once
            rng = np.random.default_rng(seed)
            order = np.lexsort((rng.random(len(label)), label))
            label, flat = label[order], flat[order]
            rank = np.arange(len(label)) - np.repeat(starts, counts)
            keep = rank < max_voxels
            label, flat = label[keep], flat[keep]
            order = np.lexsort((flat, label))  # ascending within a label: kinder to the cache
            label, flat = label[order], flat[order]
            ids, starts, counts = np.unique(label, return_index=True, return_counts=True)
        zyx = np.stack(np.unravel_index(flat, shape_zyx), axis=1).astype(np.float64)
        sums = np.add.reduceat(zyx, starts, axis=0) if len(flat) else np.zeros((0, 3))
        return cls(
            ids=ids.astype(np.int64),
            flat=flat.astype(np.int64),
            starts=starts.astype(np.int64),
            counts=counts.astype(np.int64),
            positions_zyx=sums / np.maximum(counts, 1)[:, None],
        )


def trace_means(volume: np.ndarray, index: LabelIndex) -> np.ndarray:
    """Mean value of each label's voxels (float32), from a gather and a segmented sum."""
    if index.n == 0:
        return np.zeros(0, dtype=np.float32)
    vals = np.take(volume.reshape(-1), index.flat)
    sums = np.add.reduceat(vals, index.starts, dtype=np.float64)
    result: np.ndarray = (sums / index.counts).astype(np.float32)
    return result


def bin_xy(volume: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks in y and x (float32); edges that do not fill a
    block are cut.

    Plane by plane, as ``factor`` strided row adds and then ``factor`` strided column
    adds: 0.09 s per full-size volume at 4x, against 0.39 s for a reshape-and-sum
    (numpy's reduction over an inner axis of length 4 is slow).
    """
    z, y, x = volume.shape
    f = max(1, int(factor))
    by, bx = y // f, x // f
    out = np.empty((z, by, bx), dtype=np.float32)
    for p in range(z):
        plane = volume[p, : by * f, : bx * f]
        rows = plane[0::f].astype(np.float32)
        for k in range(1, f):
            rows += plane[k::f]
        cols = rows.reshape(by, bx, f)
        o = out[p]
        o[...] = cols[:, :, 0]
        for k in range(1, f):
            o += cols[:, :, k]
    out *= 1.0 / (f * f)
    return out


def _parabola(c_minus: float, c0: float, c_plus: float) -> float:
    """Offset of the vertex of the parabola through three equally spaced points (-0.5..0.5)."""
    den = c_minus - 2.0 * c0 + c_plus
    if den >= 0 or not np.isfinite(den):
        return 0.0
    return float(np.clip(0.5 * (c_minus - c_plus) / den, -0.5, 0.5))


def _subpixel(c_minus: float, c0: float, c_plus: float, binned: bool) -> float:
    """Offset of the true peak from the sampled maximum ``c0`` (-0.5..0.5 samples).

    On a binned axis a shift is mostly a fraction of a sample, and the phase
    correlation is close to a sampled sinc (Dirichlet) kernel, whose peak lies
    ``c1 / (c1 + c0)`` toward the larger neighbour ``c1`` (Foroosh, Zerubia &
    Berthod 2002); on an unbinned axis the taper widens the peak and a parabola
    fits it better. Measured on the simulated brain, shifts of 0-8 px: a parabola
    is off by up to 0.04 px unbinned, 0.15 px at 2x and 0.8 px at 4x binning; the
    sinc rule by up to 0.35 px at 4x (and 0.38 px unbinned).
    """
    if not binned:
        return _parabola(c_minus, c0, c_plus)
    if c_plus >= c_minus and c_plus > 0:
        d = c_plus / (c_plus + c0)
    elif c_minus > 0:
        d = -c_minus / (c_minus + c0)
    else:
        return 0.0
    return float(np.clip(d, -0.5, 0.5)) if np.isfinite(d) else 0.0


def _window(shape: tuple[int, ...]) -> np.ndarray:
    """A separable Hann-like taper, so the volume's edges do not dominate the correlation."""
    w = np.ones(shape, dtype=np.float32)
    for axis, n in enumerate(shape):
        if n < 4:
            continue
        taper = np.hanning(n).astype(np.float32) * 0.9 + 0.1
        sh = [1] * len(shape)
        sh[axis] = n
        w = w * taper.reshape(sh)
    return w


class PhaseCorrelator:
    """The shift of an array against a fixed reference of its shape (in its samples).

    ``factors``: the binning of each axis, which decides the sub-voxel rule
    (None: unbinned, any number of axes).
    """

    def __init__(self, reference: np.ndarray, factors: tuple[int, ...] | None = None) -> None:
        self.shape = reference.shape
        self.factors = factors if factors is not None else (1,) * reference.ndim
        self._win = _window(self.shape)
        ref = (reference - reference.mean()) * self._win
        self._ref_conj = np.conj(scipy.fft.rfftn(ref, workers=1))

    def shift(self, moving: np.ndarray) -> np.ndarray:
        """Per axis (e.g. dz, dy, dx): how far ``moving`` is displaced from the reference."""
        mov = (moving - moving.mean()) * self._win
        cross = scipy.fft.rfftn(mov, workers=1) * self._ref_conj
        cross /= np.maximum(np.abs(cross), 1e-6)
        corr = scipy.fft.irfftn(cross, s=self.shape, workers=1)
        peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
        out = np.zeros(len(self.shape))
        for axis, n in enumerate(self.shape):
            i = peak[axis]
            sub = 0.0
            if n >= 3:
                lo = list(peak)
                hi = list(peak)
                lo[axis] = (i - 1) % n
                hi[axis] = (i + 1) % n
                sub = _subpixel(
                    float(corr[tuple(lo)]),
                    float(corr[peak]),
                    float(corr[tuple(hi)]),
                    binned=self.factors[axis] > 2,
                )
            s = i + sub
            out[axis] = s - n if s > n / 2 else s
        return out


class CropRefiner:
    """Sub-voxel y, x drift from a few full-resolution crops of the reference.

    Phase correlation on the whole volume is only affordable binned (8x: 0.1 s;
    4x: 0.5 s), where a shift is known to about a third of a binned voxel. Here
    the binned estimate, rounded to full-resolution voxels, places a crop of each
    moving plane over the reference's crop; a 2-D phase correlation there (a
    parabola through its peak) gives what is left, to a few hundredths of a
    voxel. The median over the crops ignores one that a cell's flash dominated.
    """

    def __init__(self, crops: list[tuple[int, int, int, np.ndarray]]) -> None:
        self.crops = [(p, y0, x0, PhaseCorrelator(c.astype(np.float32))) for p, y0, x0, c in crops]
        self.size = crops[0][3].shape if crops else (0, 0)

    @staticmethod
    def places(
        reference_binned: np.ndarray, factor: int, size: int, n: int
    ) -> list[tuple[int, int, int]]:
        """(plane, y0, x0) of ``n`` crops: planes spread over z, each at its brightest region."""
        z, by, bx = reference_binned.shape
        planes = np.unique(np.linspace(0, z - 1, min(n, z)).round().astype(int))
        out = []
        for p in planes.tolist():
            smooth = scipy.ndimage.uniform_filter(reference_binned[p], max(1, size // factor))
            cy, cx = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
            y0 = int(np.clip(cy * factor + factor // 2 - size // 2, 0, by * factor - size))
            x0 = int(np.clip(cx * factor + factor // 2 - size // 2, 0, bx * factor - size))
            out.append((p, max(0, y0), max(0, x0)))
        return out

    def refine(self, volume: np.ndarray, coarse_zyx: np.ndarray) -> np.ndarray | None:
        """(dy, dx) in full-resolution voxels; None if no crop fits in the moving volume."""
        z, y, x = volume.shape
        iz, iy, ix = (round(v) for v in coarse_zyx)
        h, w = self.size
        found = []
        for p, y0, x0, pc in self.crops:
            q, ys, xs = p + iz, y0 + iy, x0 + ix
            if not (0 <= q < z and ys >= 0 and ys + h <= y and xs >= 0 and xs + w <= x):
                continue
            r = pc.shift(volume[q, ys : ys + h, xs : xs + w].astype(np.float32))
            if np.all(np.abs(r) < min(h, w) / 4):
                found.append((iy + r[0], ix + r[1]))
        if not found:
            return None
        result: np.ndarray | None = np.median(np.asarray(found), axis=0)
        return result


def phase_shift(
    reference: np.ndarray, moving: np.ndarray, factors: tuple[int, ...] | None = None
) -> np.ndarray:
    """One-off :meth:`PhaseCorrelator.shift` (tests, benchmarks)."""
    return PhaseCorrelator(reference, factors).shift(moving)


class Baseline:
    """ΔF/F's F0 per trace: a low percentile of block means over a long window of volumes.

    Each trace is averaged over blocks of ``block`` volumes (a short running mean, so shot
    noise does not pull the low percentile down); F0 is the ``percentile`` of the block
    means of the last ``window`` volumes, taken again as each block completes (Jia et al.
    2011, Nat Protoc 6:28-35, "Data analysis": the minimum of a short running mean over a
    long preceding window; the percentile is ours). A response held for fewer than
    (100 - percentile) % of the window's volumes does not reach F0, so it keeps its ΔF/F;
    a slow fall (bleaching) does, within a block or two.

    Until the first block is complete, F0 is the mean of the volumes so far, so ΔF/F is
    defined (finite) from the first volume on. ``update`` is the live lane's, volume by
    volume; :meth:`series` runs it over a whole (t, n) array (the offline readout): the
    same numbers either way.
    """

    def __init__(self, n: int, window: int, percentile: float = 10.0, block: int = 3) -> None:
        self.n = int(n)
        self.block = max(1, int(block))
        self.window = max(1, int(window))
        self.blocks = max(1, self.window // self.block)
        self.percentile = float(percentile)
        self._means = np.zeros((self.blocks, self.n), dtype=np.float32)
        self._sum = np.zeros(self.n, dtype=np.float64)
        self._in_block = 0
        self._done = 0  # completed blocks
        self._count = 0  # volumes
        self._f0 = np.zeros(self.n, dtype=np.float64)

    def _refresh(self, cols: slice) -> None:
        """F0 of columns ``cols``: the percentile of the block means held."""
        held = self._means[: min(self._done, self.blocks), cols]
        if len(held) == 1:
            self._f0[cols] = held[0]
            return
        k = round(self.percentile / 100.0 * (len(held) - 1))
        self._f0[cols] = np.partition(held, k, axis=0)[k]

    def update(self, f: np.ndarray) -> np.ndarray:
        """Add this volume's (background-subtracted) trace; return its ΔF/F.

        F0 is taken again for a ``1 / block`` share of the traces each volume, in turn (all
        of them once per block): at 70,000 traces a whole percentile over 200 blocks costs
        ~0.1 s, a share of it ~0.03 s per volume.
        """
        self._sum += f
        self._in_block += 1
        self._count += 1
        if self._done == 0:
            self._f0 = self._sum / self._in_block
        if self._in_block == self.block:
            self._means[self._done % self.blocks] = self._sum / self.block
            self._done += 1
            self._sum[:] = 0.0
            self._in_block = 0
            if self._done == 1:  # the first block: every trace's F0 at once
                self._refresh(slice(None))
                return dff(f, self._f0)
        if self._done:
            part = self._count % self.block
            step = -(-self.n // self.block)
            self._refresh(slice(part * step, (part + 1) * step))
        return dff(f, self._f0)

    @classmethod
    def series(
        cls, f: np.ndarray, window: int, percentile: float = 10.0, block: int = 3
    ) -> np.ndarray:
        """ΔF/F of a whole (t, n) series, volume by volume as :meth:`update` gives it."""
        b = cls(f.shape[1], window, percentile, block)
        out = np.empty(f.shape, dtype=np.float32)
        for t in range(len(f)):
            out[t] = b.update(f[t])
        return out


#: F0 below this (counts over the background) is no resting light: ΔF/F is 0 there,
#: not a division by about zero (a label on no cell, a ring brighter than its label).
MIN_F0 = 1.0


def dff(f: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """(F - F0) / F0 (float32), 0 where F0 < ``MIN_F0`` or F is not finite."""
    ok = (f0 >= MIN_F0) & np.isfinite(f)
    out = np.zeros(f.shape, dtype=np.float32)
    np.divide(f - f0, f0, out=out, where=ok, casting="unsafe")
    return out
