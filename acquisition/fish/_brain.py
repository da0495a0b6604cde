"""The virtual fish's brain: neurons in a brain-shaped volume whose calcium follows the stimulus.

Each neuron has a fixed position inside an ellipsoid "brain" and is tuned to one
feature (forward motion, light on, light off, looming, swimming, left or right
turning, or nothing: spontaneous), in a plausible region: visual populations in
the dorsal rostral half (tectum, pretectum), motor cells in the hindbrain
(:func:`_tuning_by_region`). The tuning is written with the session
(``/ground_truth/tuning``). Its drive is convolved with a calcium kernel
(exponential, tau = 1.5 s) and rendered as a Gaussian blob into its plane, over
brain autofluorescence, a camera offset and shot noise. Positions and traces
are kept as ground truth so exports can carry a segmentation and traces.

Rendering is built to reach the dataset's size in real time (72 x 1328 x 2048,
~70,000 neurons, one volume every 0.914 s, at most 0.76 s of one core):

* each plane's blobs are a precomputed list of (pixel, weight, neuron) entries,
  scattered with ``np.add.at`` (~0.3 ms for the ~1,000 neurons of a full plane);
* the background is made per plane from two 1-D profiles (no 200-million-voxel
  table in memory);
* shot noise is Gaussian with variance equal to the mean (the Poisson law's
  first two moments; at the camera's >= 100 counts per voxel its skew, 0.1 or
  less, is far below what a trace analysis can see), drawn from a pool of
  standard normals made once, at a random offset per plane: a fresh Poisson draw
  costs ~100 ms per full plane, the pool slice nothing. A voxel's noise is
  independent from volume to volume (offsets are random over a pool four planes
  long); what repeats is a shifted copy of a plane's pattern, somewhere else, at
  another time, which no per-neuron trace picks up. The blobs' own noise
  (variance = their signal) is added per entry, so brighter cells are noisier.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from acquisition.fish._vision import Seen

__all__ = ["DARK_LEVEL", "TUNINGS", "Brain"]

TUNINGS = ("forward", "light_on", "light_off", "loom", "motor", "left", "right", "spontaneous")
_TAU_S = 1.5
_OFFSET = 100.0  # camera dark level (counts)
DARK_LEVEL = _OFFSET
_AUTOFLUORESCENCE = 40.0  # counts at the brain's centre above the dark level


#: Standard deviation of a cell's blob in µm (a ~5 µm soma at 2 sigma), and never below
#: this many pixels (small simulated frames have coarse pixels).
_BLOB_SIGMA_UM = 1.0
_BLOB_SIGMA_MIN_PX = 1.2


def _tuning_by_region(pts: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Move each population to a plausible region of the ellipsoid (unit coordinates z, y, x).

    Rostro-caudal runs along x (x < 0 rostral), dorsal is z < 0. Visual populations
    (flash on/off, forward flow, loom, turning direction) sit in the dorsal midbrain
    (optic tectum and pretectum: rostral half, dorsal), motor (swim vigour) cells in
    the caudal hindbrain; spontaneous cells anywhere. A neuron keeps its drawn
    tuning when it already lies in its population's region; otherwise visual and
    motor cells outside their region become spontaneous, so the populations are
    regional and every random draw stays as it was.
    """
    z, x = pts[:, 0], pts[:, 2]
    visual = (x < 0.2) & (z < 0.3)
    hindbrain = x > 0.1
    out = drawn.copy()
    is_motor = drawn == TUNINGS.index("motor")
    is_visual = ~is_motor & (drawn != TUNINGS.index("spontaneous"))
    out[is_motor & ~hindbrain] = TUNINGS.index("spontaneous")
    out[is_visual & ~visual] = TUNINGS.index("spontaneous")
    return out


class Brain:
    def __init__(
        self,
        shape_zyx: tuple[int, int, int],
        n: int,
        rng: np.random.Generator,
        voxel_size_um: tuple[float, float, float] | None = None,
    ) -> None:
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
        self.tuning = _tuning_by_region(pts, rng.integers(0, len(TUNINGS), size=n))
        self.baseline = rng.uniform(80.0, 200.0, size=n)
        self.calcium = np.zeros(n)
        px_um = voxel_size_um[1] if voxel_size_um is not None else 0.0
        self.sigma_px = max(_BLOB_SIGMA_MIN_PX, _BLOB_SIGMA_UM / px_um if px_um else 0.0)
        self._planes = self._blob_entries()
        self._profiles = self._background_profiles()
        #: Per volume, each neuron's fluorescence, until the engine sends it to the file.
        self.traces: deque[np.ndarray] = deque()
        # shot noise draws from a stream of its own: images are rendered on the image lane,
        # and must not change the random draws the brain's dynamics make on the loop lane
        self.noise_rng = np.random.default_rng(rng.integers(2**63))
        yx = y * x
        # long enough for a plane and for the most blob pixels any one plane holds
        longest = max([4 * yx] + [4 * len(pix) for pix, _, _ in self._planes])
        self._pool = self.noise_rng.standard_normal(longest + 1, dtype=np.float32)

    def _blob_entries(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per plane: (flat pixel index, weight, neuron) of every blob pixel, made at once.

        A 2-D Gaussian (``sigma_px``) around each neuron in the plane nearest its centre,
        cut at 3 sigma and where it falls below 1 %.
        """
        z, y, x = self.shape
        sigma = self.sigma_px
        r = math.ceil(3 * sigma)
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        dy, dx = dy.ravel(), dx.ravel()
        pos = self.positions
        iz = np.clip(np.rint(pos[:, 0]).astype(np.int64), 0, z - 1)
        yy = np.rint(pos[:, 1]).astype(np.int64)[:, None] + dy[None, :]
        xx = np.rint(pos[:, 2]).astype(np.int64)[:, None] + dx[None, :]
        w = np.exp(-((yy - pos[:, 1:2]) ** 2 + (xx - pos[:, 2:3]) ** 2) / (2 * sigma**2))
        ok = (yy >= 0) & (yy < y) & (xx >= 0) & (xx < x) & (w > 0.01)
        neuron = np.broadcast_to(np.arange(len(pos))[:, None], ok.shape)[ok]
        pix = (yy * x + xx)[ok]
        weight = w[ok].astype(np.float32)
        plane = iz[neuron]
        order = np.argsort(plane, kind="stable")
        cuts = np.searchsorted(plane[order], np.arange(z + 1))
        out = []
        for p in range(z):
            sel = order[cuts[p] : cuts[p + 1]]
            out.append((pix[sel].astype(np.int32), weight[sel], neuron[sel].astype(np.int32)))
        return out

    def _background_profiles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Brain autofluorescence as ``1 - z^2 - (y/.85)^2 - (x/.85)^2`` inside the ellipsoid:
        the z term per plane and the y and x terms as 1-D profiles, summed per plane."""
        z, y, x = self.shape
        zz = np.linspace(-1, 1, z) if z > 1 else np.zeros(1)
        ay = (np.linspace(-1, 1, y) / 0.85) ** 2
        bx = (np.linspace(-1, 1, x) / 0.85) ** 2
        return (
            (1.0 - zz**2).astype(np.float32),
            ay.astype(np.float32)[:, None],
            bx.astype(np.float32)[None, :],
        )

    def background_plane(self, p: int) -> np.ndarray:
        """Plane ``p``'s mean without neurons (camera offset + autofluorescence), float32."""
        cz, ay, bx = self._profiles
        inside = np.subtract(cz[p], ay, dtype=np.float32) - bx
        np.maximum(inside, 0.0, out=inside)
        np.sqrt(inside, out=inside)
        inside *= _AUTOFLUORESCENCE
        inside += _OFFSET
        return inside

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

    def render_plane(
        self, fluorescence: np.ndarray, p: int, out: np.ndarray, bleach: float = 1.0
    ) -> None:
        """Render plane ``p`` into ``out`` (uint16 y, x) with shot noise: one camera frame.

        ``bleach`` scales everything the sample emits (not the camera's dark level).
        float32 throughout; about 6 ms of one core for a 1328 x 2048 plane (module docstring).
        """
        mean = self.background_plane(p).reshape(-1)
        if bleach != 1.0:
            mean -= _OFFSET
            mean *= bleach
            mean += _OFFSET
        n = mean.size
        rng = self.noise_rng
        noise = self._pool[int(rng.integers(0, len(self._pool) - n)) :][:n]
        img = np.sqrt(mean)
        img *= noise
        img += mean
        pix, weight, neuron = self._planes[p]
        if len(pix):
            signal = weight * fluorescence[neuron].astype(np.float32)
            if bleach != 1.0:
                signal *= bleach
            # the blobs' own shot noise: variance = their signal (Gaussian, as above)
            k = int(rng.integers(0, len(self._pool) - len(pix)))
            signal += np.sqrt(signal) * self._pool[k : k + len(pix)]
            np.add.at(img, pix, signal)
        img += 0.5  # round to the nearest count, not down
        np.clip(img, 0.0, 65535.0, out=img)
        np.copyto(out, img.reshape(out.shape), casting="unsafe")
