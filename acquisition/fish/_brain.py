"""The virtual fish's brain: neurons in a brain-shaped volume whose calcium follows the stimulus.

Each neuron has a fixed position inside an ellipsoid "brain" and is tuned to one
feature (forward motion, light on, light off, looming, swimming, left or right
turning, or nothing: spontaneous). Its drive is convolved with a calcium kernel
(exponential, tau = 1.5 s) and rendered as a Gaussian blob into its plane, over
brain autofluorescence, a camera offset and shot noise. Positions and traces
are kept as ground truth so exports can carry a segmentation and traces.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import scipy.sparse as sp

from acquisition.fish._vision import Seen

__all__ = ["TUNINGS", "Brain"]

TUNINGS = ("forward", "light_on", "light_off", "loom", "motor", "left", "right", "spontaneous")
_TAU_S = 1.5
_OFFSET = 100.0  # camera dark level (counts)


class Brain:
    def __init__(self, shape_zyx: tuple[int, int, int], n: int, rng: np.random.Generator) -> None:
        self.shape = shape_zyx
        z, y, x = shape_zyx
        self.rng = rng
        # positions uniformly inside an ellipsoid filling ~80% of the field
        pts = rng.uniform(-1.0, 1.0, size=(n * 3, 3))
        pts = pts[(pts**2).sum(1) <= 1.0][:n]
        while len(pts) < n:  # tiny n: top up
            p = rng.uniform(-1.0, 1.0, size=(1, 3))
            if (p**2).sum() <= 1.0:
                pts = np.vstack([pts, p])
        centre = np.array([(z - 1) / 2, (y - 1) / 2, (x - 1) / 2])
        radius = np.array([max(z - 1, 0) / 2 * 0.95, y * 0.4, x * 0.4])
        self.positions = centre + pts * radius  # (n, 3) zyx in voxels
        self.tuning = rng.integers(0, len(TUNINGS), size=n)
        self.baseline = rng.uniform(80.0, 200.0, size=n)
        self.calcium = np.zeros(n)
        self.footprints = self._footprints()
        self.background = self._autofluorescence()
        #: Per volume, each neuron's fluorescence, until the engine sends it to the file.
        self.traces: deque[np.ndarray] = deque()
        # shot noise draws from a stream of its own: images are rendered on the image lane,
        # and must not change the random draws the brain's dynamics make on the loop lane
        self.noise_rng = np.random.default_rng(rng.integers(2**63))
        yx = shape_zyx[1] * shape_zyx[2]
        self._plane_footprints = [self.footprints[p * yx : (p + 1) * yx] for p in range(z)]

    def _footprints(self) -> sp.csr_matrix:
        """Sparse (voxels, neurons): a 2-D Gaussian (sigma 1.2 px) in each neuron's plane."""
        z, y, x = self.shape
        sigma = 1.2
        r = math.ceil(3 * sigma)
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        rows, cols, vals = [], [], []
        for i, (pz, py, px) in enumerate(self.positions):
            iz, iy, ix = round(pz), round(py), round(px)
            yy, xx = iy + dy, ix + dx
            w = np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * sigma**2))
            ok = (yy >= 0) & (yy < y) & (xx >= 0) & (xx < x) & (w > 0.01)
            rows.append(((iz * y + yy[ok]) * x + xx[ok]).ravel())
            cols.append(np.full(ok.sum(), i))
            vals.append(w[ok].ravel())
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(z * y * x, len(self.positions)),
        )

    def _autofluorescence(self) -> np.ndarray:
        z, y, x = self.shape
        zz, yy, xx = np.meshgrid(
            np.linspace(-1, 1, z) if z > 1 else np.zeros(1),
            np.linspace(-1, 1, y),
            np.linspace(-1, 1, x),
            indexing="ij",
        )
        inside = np.clip(1.0 - (zz**2 + (yy / 0.85) ** 2 + (xx / 0.85) ** 2), 0.0, 1.0)
        return (_OFFSET + 40.0 * np.sqrt(inside)).ravel()

    def drive(self, seen: Seen, swimming: float, turn: float) -> np.ndarray:
        """Per-neuron drive (0..~1) for the current features."""
        feats = np.array(
            [
                math.tanh(max(0.0, seen.forward_motion) / 8.0),
                max(0.0, seen.luminance - 0.3),
                max(0.0, 0.3 - seen.luminance) * 2.0,
                min(1.0, seen.looming / 10.0),
                swimming,
                max(0.0, -turn),
                max(0.0, turn),
                0.0,
            ]
        )
        d = feats[self.tuning]
        spont = self.tuning == TUNINGS.index("spontaneous")
        d[spont] = self.rng.random(int(spont.sum())) < 0.05
        return d

    def advance(self, dt: float, drive: np.ndarray) -> np.ndarray:
        """Calcium one volume on; returns fluorescence per neuron (kept as ground truth)."""
        k = math.exp(-dt / _TAU_S)
        self.calcium = self.calcium * k + drive * (1.0 - k)
        f = self.baseline * (1.0 + 3.0 * self.calcium)
        self.traces.append(f.astype(np.float32))
        return f

    def render_plane(self, fluorescence: np.ndarray, p: int, out: np.ndarray) -> None:
        """Render plane ``p`` into ``out`` (uint16 y, x) with shot noise: one camera frame."""
        yx = out.size
        mean = self.background[p * yx : (p + 1) * yx] + self._plane_footprints[p] @ fluorescence
        counts = self.noise_rng.poisson(mean)
        np.minimum(counts, 65535, out=counts)
        out[...] = counts.reshape(out.shape)
