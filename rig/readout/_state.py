"""The readout of a session, volume after volume: reference first, then one row per volume.

The first ``reference_volumes`` volumes build the reference (their mean, binned
for drift and brightness; full size only when the cells are to be detected on
it). From the last of them on, every volume gives a :class:`LiveRow`. Volumes
are taken in order; a skipped one simply has no row (``/live/volume`` says
which timestep each row is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True, slots=True)
class ReadoutSettings:
    """What the readout process needs (a plain, picklable copy of ``[readout]``)."""

    shape_zyx: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    downsample: int = 8
    crop_px: int = 128
    crops: int = 8
    reference_volumes: int = 3
    baseline_volumes: int = 60
    baseline_percentile: float = 10.0
    label_radius_px: float = 2.0
    max_voxels_per_label: int = 64
    dark_level: float | None = None
    detect: bool = False
    detect_threshold_sd: float = 3.0


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


class Readout:
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
        self._um = np.asarray(settings.voxel_size_um, dtype=np.float64)

    @property
    def _factor(self) -> int:
        return max(1, min(self.s.downsample, self.s.shape_zyx[1], self.s.shape_zyx[2]))

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
        coarse = self._corr.shift(binned) * np.array([1.0, f, f])
        fine = self._refiner.refine(volume, coarse) if self._refiner is not None else None
        if fine is not None:
            coarse[1:] = fine
        planes = self._plane_levels(binned)
        brightness = (planes / np.maximum(self._ref_planes, 1e-6)).astype(np.float32)
        raw = trace_means(volume, self.labels) if self.labels is not None else np.zeros(0)
        dff = self._baseline.update(raw)
        return LiveRow(
            volume=t,
            drift_um=(coarse * self._um).astype(np.float64),
            brightness=brightness,
            traces_raw=raw.astype(np.float32),
            traces_dff=dff,
            seconds=time.thread_time() - c0,
        )

    def _plane_levels(self, binned: np.ndarray) -> np.ndarray:
        """Per plane, the median over the sample (not the dark around it) less the dark level.

        The median, not the mean: cells lighting up are a minority of the binned
        voxels, so the level follows bleaching and focus, not activity.
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
            size = min(self.s.crop_px, volume.shape[1], volume.shape[2])
            self._places = CropRefiner.places(binned, self._factor, size, self.s.crops)
            self._crop_sums = [np.zeros((size, size)) for _ in self._places]
        h, w = self._crop_sums[0].shape if self._crop_sums else (0, 0)
        for acc, (p, y0, x0) in zip(self._crop_sums, self._places, strict=True):
            acc += volume[p, y0 : y0 + h, x0 : x0 + w]
        if self.s.detect and self.labels is None:
            if self._full_sum is None:
                self._full_sum = np.zeros(volume.shape, dtype=np.float32)
            self._full_sum += volume
        self._ref_n += 1
        if self._ref_n < max(1, self.s.reference_volumes):
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
        self._dark = _dark_level(ref) if self.s.dark_level is None else float(self.s.dark_level)
        top = float(np.percentile(ref, 99.0))
        self._sample_mask = ref > self._dark + 0.2 * (top - self._dark)
        self._ref_planes = self._plane_levels(ref)
        if self._full_sum is not None:
            full = self._full_sum / self._ref_n
            pos = detect_cells(full, self.s.label_radius_px, self.s.detect_threshold_sd)
            self.labels = disk_index(
                pos, self.s.shape_zyx, self.s.label_radius_px, self.s.max_voxels_per_label
            )
            self._full_sum = None
        n = self.labels.n if self.labels is not None else 0
        self._baseline = Baseline(n, self.s.baseline_volumes, self.s.baseline_percentile)
        self._ref_sum = None
