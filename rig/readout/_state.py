"""The readout of a session, volume after volume: reference first, then one row per volume.

The first ``reference_volumes`` volumes build the reference (their mean, binned
for drift and brightness; full size only when the cells are to be detected on
it). From the last of them on, every volume gives a :class:`LiveRow`. Volumes
are taken in order; a skipped one simply has no row (``/live/volume`` says
which timestep each row is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage

from rig.core.config import ReadoutConfig
from rig.forecast import OnlineForecaster
from rig.readout._background import RingIndex, ring_index
from rig.readout._compute import (
    Baseline,
    CropRefiner,
    LabelIndex,
    LiveRow,
    PhaseCorrelator,
    bin_xy,
    trace_means,
)
from rig.readout._labels import detect_cells, disk_index

__all__ = ["Measured", "Readout", "ReadoutSettings"]


#: Drift refinement: this many crops of this many pixels (at full resolution).
_CROP_PX = 128
_CROPS = 8
#: A plane's brightness needs this many binned voxels of tissue in the reference.
_MIN_SAMPLE = 4


@dataclass(frozen=True, slots=True)
class Measured:
    """What one volume gives on its own: a :class:`LiveRow` without ΔF/F."""

    volume: int
    drift_um: np.ndarray  # (3,) z, y, x
    brightness: np.ndarray  # (z,) float32, NaN for a plane without tissue
    traces_raw: np.ndarray  # (n,) float32 mean counts per label
    traces_f: np.ndarray  # (n,) float32 less the dark level and the local background


@dataclass(frozen=True, slots=True)
class ReadoutSettings:
    """What the readout process needs: ``[readout]`` and the volume's geometry (picklable).

    The section itself travels (not a copy of its values), so its defaults live in one
    place: :class:`~rig.core.config.ReadoutConfig`.
    """

    shape_zyx: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    config: ReadoutConfig = field(default_factory=ReadoutConfig)

    @property
    def detect(self) -> bool:
        """Cells are found on the reference volume (``labels = "detect"``)."""
        return self.config.labels == "detect"


def _dark_level(reference: np.ndarray) -> float:
    """The camera's dark level: the mode of the darker half of the binned reference.

    Around a brain most of the field is dark, one sharp peak of the histogram; its
    low tail (a low percentile) lies a few counts under the true level, which is
    several per cent of a brightness of some tens of counts.
    """
    lo, hi = np.percentile(reference, [0.1, 50.0])
    if not hi > lo:
        return float(lo)
    counts, edges = np.histogram(reference, bins=256, range=(float(lo), float(hi)))
    k = int(np.argmax(counts))
    return float(0.5 * (edges[k] + edges[k + 1]))


def _dark_noise(reference: np.ndarray, dark: float) -> float:
    """The noise of the dark level (robust SD of the voxels under it, mirrored), >= 0.5 count.

    The sample is what stands clear of it: a threshold relative to the brightest
    voxels (the cells) would keep only the cells' surroundings, which follow activity.
    """
    below = reference[reference < dark]
    if below.size < 10:
        return 0.5
    return max(0.5, 1.4826 * float(np.median(dark - below)))


class Readout:
    """One session's readout state: the reference, the crop refiner, the ΔF/F baseline.

    ``labels`` None with ``settings.detect``: cells are found on the reference volume
    (then :attr:`labels` is set once it is complete).
    """

    def __init__(self, settings: ReadoutSettings, labels: LabelIndex | None) -> None:
        self.s = settings
        self.labels = labels
        self._ref_sum: np.ndarray | None = None
        self._full_sum: np.ndarray | None = None
        self._ref_n = 0
        self._corr: PhaseCorrelator | None = None
        self._places: list[tuple[int, int, int]] = []
        self._crop_sums: list[np.ndarray] = []
        self._refiner: CropRefiner | None = None
        self._ref_planes: np.ndarray | None = None
        self._dark = 0.0
        self._sample_mask = np.zeros((0, 0, 0), dtype=bool)
        self._baseline: Baseline | None = None
        self._ring: RingIndex | None = None
        self._forecaster: OnlineForecaster | None = None
        self._um = np.asarray(settings.voxel_size_um, dtype=np.float64)

    @property
    def _factor(self) -> int:
        """The binning, less where the frame is small: at least 32 binned voxels each way
        (below that the coarse drift is off by more than the crops can absorb)."""
        _, y, x = self.s.shape_zyx
        return max(1, min(self.s.config.downsample, min(y, x) // 32))

    @property
    def ready(self) -> bool:
        return self._corr is not None

    @property
    def empty_planes(self) -> list[int]:
        """Planes with no tissue in the reference (too few voxels clear of the dark level):
        their brightness is NaN rather than a division by about zero."""
        if self._ref_planes is None:
            return []
        result: list[int] = np.flatnonzero(~np.isfinite(self._ref_planes)).tolist()
        return result

    def add_reference(self, volume: np.ndarray) -> bool:
        """Add a volume to the reference (in order, from the first); True once it is complete."""
        if self._corr is None:
            self._add_to_reference(bin_xy(volume, self._factor), volume)
        return self._corr is not None

    def process(self, t: int, volume: np.ndarray) -> LiveRow | None:
        """The row of volume ``t``; None while the reference is still being built."""
        c0 = time.thread_time()
        binned = bin_xy(volume, self._factor)
        if self._corr is None:
            self._add_to_reference(binned, volume)
            if self._corr is None:
                return None
        assert self._baseline is not None
        m = self._measure(t, volume, binned)
        dff = self._baseline.update(m.traces_f)
        seconds = time.thread_time() - c0
        # the forecaster times itself (ForecastRow.seconds): /live/seconds stays the readout's
        forecast = self._forecaster.update(t, dff) if self._forecaster is not None else None
        return LiveRow(
            volume=t,
            drift_um=m.drift_um,
            brightness=m.brightness,
            traces_raw=m.traces_raw,
            traces_dff=dff,
            seconds=seconds,
            traces_f=m.traces_f,
            forecast=forecast,
        )

    def measure(self, t: int, volume: np.ndarray) -> Measured:
        """Drift, brightness and traces of volume ``t`` (no ΔF/F: that needs the volumes
        before it, :class:`Baseline`); the reference must be complete. The offline readout
        calls this on any volume, in any order; :meth:`process` calls it live."""
        if self._corr is None:
            raise RuntimeError("the readout's reference is not complete")
        return self._measure(t, volume, bin_xy(volume, self._factor))

    def _measure(self, t: int, volume: np.ndarray, binned: np.ndarray) -> Measured:
        assert self._corr is not None and self._ref_planes is not None
        f = self._factor
        shift = self._corr.shift(binned) * np.array([1.0, f, f])  # voxels, to ~1/3 of f in y, x
        fine = self._refiner.refine(volume, shift) if self._refiner is not None else None
        if fine is not None:
            shift[1:] = fine
        planes = self._plane_levels(binned)
        with np.errstate(invalid="ignore", divide="ignore"):
            brightness = (planes / self._ref_planes).astype(np.float32)
        if self.labels is not None:
            raw = trace_means(volume, self.labels)
            traces_f = self._background_subtracted(volume, raw)
        else:
            raw = traces_f = np.zeros(0, np.float32)
        return Measured(
            volume=t,
            drift_um=(shift * self._um).astype(np.float64),
            brightness=brightness,
            traces_raw=raw.astype(np.float32),
            traces_f=traces_f,
        )

    def _background_subtracted(self, volume: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """F of ΔF/F: the label's mean less the dark level and ``background_factor`` x its
        ring's signal over the dark level (no ring: the dark level alone)."""
        f = raw.astype(np.float64) - self._dark
        if self._ring is not None:
            ring = self._ring.means(volume) - self._dark
            f -= self.s.config.background_factor * np.nan_to_num(ring, nan=0.0)
        return f.astype(np.float32)

    def _cells_binned(self, shape: tuple[int, ...]) -> np.ndarray:
        """Binned voxels holding (or next to) a traced cell: left out of the brightness, so it
        follows bleaching and focus, not activity."""
        assert self.labels is not None
        f = self._factor
        z, y, x = self.s.shape_zyx
        pz, py, px = np.unravel_index(self.labels.flat, (z, y, x))
        by, bx = py // f, px // f
        ok = (by < shape[1]) & (bx < shape[2])
        mask = np.zeros(shape, dtype=bool)
        mask[pz[ok], by[ok], bx[ok]] = True
        # a cell's light reaches past its label's disk
        result: np.ndarray = scipy.ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))
        return result

    def _plane_levels(self, binned: np.ndarray) -> np.ndarray:
        """Per plane, the median over the sample (not the dark around it) less the dark level;
        NaN for a plane whose sample has fewer than ``_MIN_SAMPLE`` voxels (no tissue).

        The sample is the binned reference's voxels well above the dark level, less
        those near a traced cell, whose activity would move it. A plane without it (the
        end planes of the simulated brain hold nothing but dark) has no brightness: the
        mean of its dark frame less the dark level is about zero, and a ratio of two
        such numbers was -2.4e5 (issue 26).
        """
        out = np.full(binned.shape[0], np.nan)
        for p in range(binned.shape[0]):
            inside = binned[p][self._sample_mask[p]]
            if inside.size >= _MIN_SAMPLE:
                out[p] = float(np.median(inside)) - self._dark
        return out

    def _add_to_reference(self, binned: np.ndarray, volume: np.ndarray) -> None:
        if self._ref_sum is None:
            self._ref_sum = np.zeros_like(binned, dtype=np.float64)
        self._ref_sum += binned
        if not self._places:
            # at most half the frame, so a crop still fits after the sample moved
            size = max(8, min(_CROP_PX, volume.shape[1] // 2, volume.shape[2] // 2))
            self._places = CropRefiner.places(binned, self._factor, size, _CROPS)
            self._crop_sums = [np.zeros((size, size)) for _ in self._places]
        h, w = self._crop_sums[0].shape if self._crop_sums else (0, 0)
        for acc, (p, y0, x0) in zip(self._crop_sums, self._places, strict=True):
            acc += volume[p, y0 : y0 + h, x0 : x0 + w]
        if self.s.detect and self.labels is None:
            if self._full_sum is None:
                self._full_sum = np.zeros(volume.shape, dtype=np.float32)
            self._full_sum += volume
        self._ref_n += 1
        if self._ref_n < max(1, self.s.config.reference_volumes):
            return
        ref = (self._ref_sum / self._ref_n).astype(np.float32)
        self._corr = PhaseCorrelator(ref, (1, self._factor, self._factor))
        self._refiner = CropRefiner(
            [
                (p, y0, x0, acc / self._ref_n)
                for (p, y0, x0), acc in zip(self._places, self._crop_sums, strict=True)
            ]
        )
        # the camera's dark level does not bleach: take it out of the brightness
        self._dark = (
            _dark_level(ref)
            if self.s.config.dark_level is None
            else float(self.s.config.dark_level)
        )
        if self._full_sum is not None:
            # in place: at full size the sum is 780 MB, and a mean beside it would double that
            full = np.divide(self._full_sum, self._ref_n, out=self._full_sum)
            pos = detect_cells(
                full, self.s.config.label_radius_px, self.s.config.detect_threshold_sd
            )
            self.labels = disk_index(
                pos,
                self.s.shape_zyx,
                self.s.config.label_radius_px,
                self.s.config.max_voxels_per_label,
            )
            self._full_sum = None
        self._sample_mask = ref > self._dark + 5.0 * _dark_noise(ref, self._dark)
        if self.labels is not None and self.labels.n:
            self._sample_mask &= ~self._cells_binned(ref.shape)
        self._ref_planes = self._plane_levels(ref)
        if self.labels is not None and self.s.config.background == "annulus":
            gap, width = self.s.config.annulus_px
            self._ring = ring_index(
                self.labels, self.s.shape_zyx, gap, width, self.s.config.max_voxels_per_label
            )
        n = self.labels.n if self.labels is not None else 0
        c = self.s.config
        self._baseline = Baseline(
            n, c.baseline_volumes, c.baseline_percentile, c.baseline_block_volumes
        )
        if c.forecast_horizon > 0 and n:
            self._forecaster = OnlineForecaster(
                n, c.forecast_horizon, c.forecast_components, c.forecast_history
            )
        self._ref_sum = None
