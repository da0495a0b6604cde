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

from rig.config import ReadoutConfig
from rig.forecast._online import OnlineForecaster
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

__all__ = ["Readout", "ReadoutSettings"]


#: Drift refinement: this many crops of this many pixels (at full resolution).
_CROP_PX = 128
_CROPS = 8


@dataclass(frozen=True, slots=True)
class ReadoutSettings:
    """What the readout process needs: ``[readout]`` and the volume's geometry (picklable).

    The section itself travels (not a copy of its values), so its defaults live in one
    place: :class:`~rig.config.ReadoutConfig`.
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

    def process(self, t: int, volume: np.ndarray) -> LiveRow | None:
        """The row of volume ``t``; None while the reference is still being built."""
        c0 = time.thread_time()
        binned = bin_xy(volume, self._factor)
        if self._corr is None:
            self._add_to_reference(binned, volume)
            if self._corr is None:
                return None
        assert self._ref_planes is not None and self._baseline is not None
        f = self._factor
        shift = self._corr.shift(binned) * np.array([1.0, f, f])  # voxels, to ~1/3 of f in y, x
        fine = self._refiner.refine(volume, shift) if self._refiner is not None else None
        if fine is not None:
            shift[1:] = fine
        planes = self._plane_levels(binned)
        brightness = (planes / np.maximum(self._ref_planes, 1e-6)).astype(np.float32)
        raw = trace_means(volume, self.labels) if self.labels is not None else np.zeros(0)
        dff = self._baseline.update(raw)
        seconds = time.thread_time() - c0
        # the forecaster times itself (ForecastRow.seconds): /live/seconds stays the readout's
        forecast = self._forecaster.update(t, dff) if self._forecaster is not None else None
        return LiveRow(
            volume=t,
            drift_um=(shift * self._um).astype(np.float64),
            brightness=brightness,
            traces_raw=raw.astype(np.float32),
            traces_dff=dff,
            seconds=seconds,
            forecast=forecast,
        )

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
        return scipy.ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))

    def _plane_levels(self, binned: np.ndarray) -> np.ndarray:
        """Per plane, the mean over the sample (not the dark around it) less the dark level.

        The sample is the binned reference's voxels well above the dark level, less
        those near a traced cell, whose activity would move it. The mean, not the
        median: shot noise grows with the signal, and the median of a skewed
        profile plus noise moves with the noise (+2 % at 20 % bleaching, measured).
        """
        out = np.zeros(binned.shape[0])
        for p in range(binned.shape[0]):
            inside = binned[p][self._sample_mask[p]]
            out[p] = (
                float(np.median(inside)) if inside.size else float(binned[p].mean())
            ) - self._dark
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
        n = self.labels.n if self.labels is not None else 0
        self._baseline = Baseline(
            n, self.s.config.baseline_volumes, self.s.config.baseline_percentile
        )
        c = self.s.config
        if c.forecast_horizon > 0 and n:
            self._forecaster = OnlineForecaster(
                n, c.forecast_horizon, c.forecast_components, c.forecast_history
            )
        self._ref_sum = None
