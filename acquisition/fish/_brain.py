"""The virtual fish's brain: neurons in a brain-shaped volume whose calcium follows the stimulus.

Each neuron has a fixed position inside an ellipsoid "brain" and is tuned to one
feature (forward motion, light on, light off, dark objects and looms, swimming,
left or right turning, the left or right ARTR, or nothing: spontaneous), in a
plausible region: visual populations in the dorsal rostral half (tectum,
pretectum), motor cells in the hindbrain, the ARTR in the rostral hindbrain on
its side (:func:`_tuning_by_region`). The tuning is written with the session
(``/ground_truth/tuning``). Its activity (acquisition/fish/_dynamics.py: stimulus
features, assemblies, the ARTR oscillator, a global state and its own events) is
sampled at its plane's acquisition time, filtered by the indicator's rise and
decay and saturated by its Hill curve (acquisition/fish/_indicator.py), and
rendered as a Gaussian blob into its plane, over brain autofluorescence (which
carries a neuropil signal, the plane's mean activity, and a slow drift), a
camera offset and shot noise. Positions and traces are kept as ground truth so
exports can carry a segmentation and traces: ``baseline`` is each neuron's
resting fluorescence F0 and ``fluorescence`` its latest F, so the noiseless
ΔF/F is ``F / F0 - 1``.

Rendering is built to reach the dataset's size in real time (72 x 1328 x 2048,
~70,000 neurons, one volume every 0.914 s, at most 0.76 s of one core): measured
0.22-0.25 s of one core per volume (``benchmarks/fullsize_sim.py``, 2-core VM at
load ~1; 0.57-0.60 s before the tables below, with ``np.add.at`` and the background
made per plane). Work is done only where the sample emits, in cache-sized pieces:

* the background is mirror-symmetric in z, so planes p and z - 1 - p share one
  table: bands of ``_BAND_ROWS`` rows cut to the columns where the sample emits
  (the autofluorescent ellipse and the blobs of both planes), holding the mean
  (float32). Elsewhere a voxel is the dark level plus its noise, copied from a
  uint16 copy of the noise pool, scaled and rounded once;
* each plane's blobs are a sparse CSR map (one row per voxel a blob touches, one
  column per neuron; weights from a 2-D Gaussian): ``weights @ fluorescence`` (one
  C loop) gives each voxel's signal, which is added to its band's mean, in a
  float32 scratch that stays in L2 cache, by ``np.add.at`` on unique indices;
* shot noise is Gaussian with variance equal to the mean (the Poisson law's
  first two moments; at the camera's >= 100 counts per voxel its skew, 0.1 or
  less, is far below what a trace analysis can see), so brighter cells are
  noisier: mean + sqrt(mean) x noise, computed per band in the scratch and cast to
  uint16 straight into the frame by the same ufunc call (no clip: the dark level
  keeps it above zero and the signal's cap below 65535). The noise is drawn from a
  pool of standard normals made once, at a random offset per plane: a fresh
  Poisson draw costs ~100 ms per full plane, the pool slice nothing. A voxel's
  noise is independent from volume to volume (offsets are random over a pool four
  planes long); what repeats is a shifted copy of a plane's pattern, somewhere
  else, at another time, which no per-neuron trace picks up.

Memory at full size: background tables 151 MB, blob maps 232 MB (float32 weights
and int32 neuron indices per entry, 12.3 M entries; int32 row pointers and intp
band indices per voxel, 11.1 M voxels), noise pool 44 MB and its uint16 copy
22 MB: ~450 MB in all, ~260 MB more than the per-plane entry lists and pool of
before (resident memory after set-up: +375 MB). Set-up takes ~2.7-3.3 s of CPU,
as before, and peaks at ~1 GB (1.1 GB before).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from acquisition.fish._dynamics import FEATURES, Activity
from acquisition.fish._indicator import INDICATORS

__all__ = ["DARK_LEVEL", "TUNINGS", "Brain"]

TUNINGS = (*FEATURES, "artr_left", "artr_right", "spontaneous")
#: The neuropil seen around the cells: this fraction of its plane's mean ΔF/F raises the
#: autofluorescence (neuropil contamination of somatic signals is commonly corrected with
#: a coefficient of ~0.7 of the surround: Chen et al. 2013, Methods; Kerlin et al. 2010).
_NEUROPIL_GAIN = 0.15
#: Slow drift of the background: an Ornstein-Uhlenbeck process, time constant and sd.
_BACKGROUND_TAU_S = 300.0
_BACKGROUND_SD = 0.03
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
    z, y, x = pts[:, 0], pts[:, 1], pts[:, 2]
    visual = (x < 0.2) & (z < 0.3)
    hindbrain = x > 0.1
    out = drawn.copy()
    spont = TUNINGS.index("spontaneous")
    is_motor = drawn == TUNINGS.index("motor")
    is_left, is_right = drawn == TUNINGS.index("artr_left"), drawn == TUNINGS.index("artr_right")
    is_visual = ~is_motor & ~is_left & ~is_right & (drawn != spont)
    out[is_motor & ~hindbrain] = spont
    out[is_visual & ~visual] = spont
    # the ARTR: rostral hindbrain, each population on its own side (y < 0: left)
    artr = (x > 0.05) & (x < 0.5)
    out[is_left & ~(artr & (y < -0.1))] = spont
    out[is_right & ~(artr & (y > 0.1))] = spont
    return out


#: Rows per background band: a band's two float32 scratches (<= 32 x 2048 x 4 bytes each)
#: stay in the core's L2 cache while its mean, blobs and noise are combined (16 to 64
#: rows measured alike at full size; 128 slower).
_BAND_ROWS = 32
#: A voxel's blob signal is capped here (counts), so that a frame never passes 65535
#: (fluorescence is < 1,000 counts: never reached).
_SIGNAL_CAP = 60_000.0


@dataclass(frozen=True)
class _Band:
    """Up to ``_BAND_ROWS`` rows of a plane, cut to the columns where the sample emits."""

    rows: slice
    cols: slice
    #: float32 (rows, cols): dark level + autofluorescence + 0.5 (the 0.5 makes the final,
    #: truncating cast to uint16 round to the nearest count). The noise's sd, the square
    #: root of the mean, is computed per render, in cache: faster than a stored table.
    mean: np.ndarray


@dataclass(frozen=True)
class _Background:
    """A plane's background, ready to render.

    ``bands`` cover every voxel the sample may light in the plane (autofluorescence, and
    the blobs of both planes that share this table); everywhere else (``dark``: (rows,
    cols) slices) the mean is the camera's dark level alone and needs no table.
    """

    bands: tuple[_Band, ...]
    dark: tuple[tuple[slice, slice], ...]


@dataclass(frozen=True)
class _Blobs:
    """One plane's neurons as a sparse map from fluorescence to the voxels they light.

    ``weights`` (CSR, float32, one row per voxel any blob touches, one column per
    neuron of the brain) times the fluorescence gives each voxel's signal in one
    single-threaded C loop, summed over the blobs that overlap there. Its rows run
    band by band: band ``i``'s voxels are rows ``cuts[i]:cuts[i + 1]``, at the flat
    indices ``local`` (intp: numpy's index type, no conversion per use) inside that
    band's scratch, where they are added to the background's mean before the noise.
    """

    weights: sparse.csr_matrix
    local: np.ndarray
    cuts: tuple[int, ...]


class Brain:
    def __init__(
        self,
        shape_zyx: tuple[int, int, int],
        n: int,
        rng: np.random.Generator,
        voxel_size_um: tuple[float, float, float] | None = None,
        indicator: str = "H2B-jGCaMP7f",
        n_assemblies: int = 8,
        artr_period_s: float = 20.0,
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
        #: Each neuron's resting fluorescence F0 (counts above the background, unbleached).
        self.baseline = rng.uniform(80.0, 200.0, size=n)
        self.indicator = INDICATORS[indicator]
        self.planes = np.clip(np.rint(self.positions[:, 0]).astype(np.intp), 0, z - 1)
        feature = np.full(n, -1)
        nf = len(FEATURES)
        feature[self.tuning < nf] = self.tuning[self.tuning < nf]
        feature[self.tuning == TUNINGS.index("artr_left")] = -2
        feature[self.tuning == TUNINGS.index("artr_right")] = -3
        self.activity = Activity(
            pts, feature, self.planes, z, self.indicator, rng, n_assemblies, artr_period_s
        )
        #: The latest fluorescence F of each neuron (counts; F0 = ``baseline`` at rest).
        self.fluorescence = self.baseline.copy()
        #: Per plane, the factor on the autofluorescence of the latest volume: neuropil and
        #: slow drift (bleaching comes on top, from the microscope).
        self.background_scale = np.ones(z)
        self._plane_count = np.maximum(np.bincount(self.planes, minlength=z), 1)
        self._drift = 0.0
        px_um = voxel_size_um[1] if voxel_size_um is not None else 0.0
        self.sigma_px = max(_BLOB_SIGMA_MIN_PX, _BLOB_SIGMA_UM / px_um if px_um else 0.0)
        voxels, weights = self._blob_maps()
        self._profiles = self._background_profiles()
        # the background is mirror-symmetric in z: plane p and plane z - 1 - p share a table
        self._backgrounds = [
            self._background_table(d, (voxels[d], voxels[z - 1 - d])) for d in range((z + 1) // 2)
        ]
        self._blobs = [
            self._place_blobs(voxels[p], weights[p], self._backgrounds[min(p, z - 1 - p)])
            for p in range(z)
        ]
        #: Per volume, each neuron's fluorescence, until the engine sends it to the file.
        self.traces: deque[np.ndarray] = deque()
        # shot noise draws from a stream of its own: images are rendered on the image lane,
        # and must not change the random draws the brain's dynamics make on the loop lane
        self.noise_rng = np.random.default_rng(rng.integers(2**63))
        self._pool = self.noise_rng.standard_normal(4 * y * x + 1, dtype=np.float32)
        # where the sample emits nothing a voxel is the dark level plus its noise: the same
        # pool, scaled, rounded and stored as uint16 once, is copied there as it is
        dark = self._pool * np.float32(math.sqrt(_OFFSET)) + np.float32(_OFFSET + 0.5)
        self._dark_pool = dark.astype(np.uint16)
        # render_plane casts to uint16 without clipping: mean + sqrt(mean) x noise grows
        # with the mean (>= the dark level, ~6 noise sigmas above zero), so a voxel lies
        # between the dark frame's lowest and the capped signal's highest
        top = _OFFSET + _AUTOFLUORESCENCE + _SIGNAL_CAP
        highest = top + 0.5 + math.sqrt(top) * float(self._pool.max())
        assert float(dark.min()) >= 0.0 and highest < 65535.0, (float(dark.min()), highest)
        del dark
        # float32 scratches for a band (its mean; its noise), reused: one render at a time
        # (the image lane)
        self._band_mean = np.empty(_BAND_ROWS * x, np.float32)
        self._band_noise = np.empty(_BAND_ROWS * x, np.float32)

    def _blob_maps(self) -> tuple[list[np.ndarray], list[sparse.csr_matrix]]:
        """Per plane, the voxels its blobs light (flat, sorted, unique) and their weights.

        A 2-D Gaussian (``sigma_px``) around each neuron in the plane nearest its centre,
        cut at 3 sigma and where it falls below 1 %. All entries are made at once and
        sorted by (plane, voxel): a plane's voxels, and each voxel's entries (one CSR row,
        one column per neuron of the brain), are runs.
        """
        z, y, x = self.shape
        sigma = self.sigma_px
        r = math.ceil(3 * sigma)
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        dy, dx = dy.ravel(), dx.ravel()
        pos = self.positions
        n = len(pos)
        iz = np.clip(np.rint(pos[:, 0]).astype(np.int64), 0, z - 1)
        yy = np.rint(pos[:, 1]).astype(np.int64)[:, None] + dy[None, :]
        xx = np.rint(pos[:, 2]).astype(np.int64)[:, None] + dx[None, :]
        w = np.exp(-((yy - pos[:, 1:2]) ** 2 + (xx - pos[:, 2:3]) ** 2) / (2 * sigma**2))
        ok = (yy >= 0) & (yy < y) & (xx >= 0) & (xx < x) & (w > 0.01)
        neuron = np.broadcast_to(np.arange(n)[:, None], ok.shape)[ok]
        key = iz[neuron] * (y * x) + (yy * x + xx)[ok]  # plane, then voxel in the plane
        weight = w[ok].astype(np.float32)
        del yy, xx, w, ok
        order = np.argsort(key, kind="stable")
        key, weight, neuron = key[order], weight[order], neuron[order].astype(np.int32)
        del order
        cuts = np.searchsorted(key, np.arange(z + 1) * (y * x))
        voxels, weights = [], []
        for p in range(z):
            a, b = int(cuts[p]), int(cuts[p + 1])
            vox = key[a:b] - p * (y * x)
            first = np.flatnonzero(np.diff(vox, prepend=-1))  # each voxel's first entry
            indptr = np.append(first, b - a).astype(np.int32)
            voxels.append(vox[first])
            weights.append(
                sparse.csr_matrix((weight[a:b], neuron[a:b], indptr), shape=(len(first), n))
            )
        return voxels, weights

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
        inside: np.ndarray = np.subtract(cz[p], ay, dtype=np.float32) - bx
        np.maximum(inside, 0.0, out=inside)
        np.sqrt(inside, out=inside)
        inside *= _AUTOFLUORESCENCE
        inside += _OFFSET
        return inside

    def _background_table(self, p: int, blob_voxels: tuple[np.ndarray, ...]) -> _Background:
        """Plane ``p``'s background, in bands over the voxels the sample lights.

        A voxel is lit where there is autofluorescence or where one of ``blob_voxels``
        (flat indices: the blobs of the planes sharing this table) falls; each band of
        ``_BAND_ROWS`` rows is cut to its lit columns, so the tables hold ~1.05 x the
        autofluorescent ellipse, not the whole plane.
        """
        mean = self.background_plane(p)
        h, w = mean.shape
        lit = mean > _OFFSET
        for vox in blob_voxels:
            lit.reshape(-1)[vox] = True
        rows = np.flatnonzero(lit.any(1))
        if len(rows) == 0:
            return _Background((), ((slice(0, h), slice(0, w)),))
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        dark = [(slice(0, y0), slice(0, w)), (slice(y1, h), slice(0, w))]
        bands = []
        for r0 in range(y0, y1, _BAND_ROWS):
            rs = slice(r0, min(r0 + _BAND_ROWS, y1))
            cols = np.flatnonzero(lit[rs].any(0))
            if len(cols) == 0:  # a gap between blobs outside the autofluorescence
                dark.append((rs, slice(0, w)))
                continue
            cs = slice(int(cols[0]), int(cols[-1]) + 1)
            m = np.ascontiguousarray(mean[rs, cs])
            bands.append(_Band(rs, cs, m + np.float32(0.5)))
            dark += [(rs, slice(0, cs.start)), (rs, slice(cs.stop, w))]
        dark = [(r, c) for r, c in dark if r.stop > r.start and c.stop > c.start]
        return _Background(tuple(bands), tuple(dark))

    def _place_blobs(
        self, voxels: np.ndarray, weights: sparse.csr_matrix, bg: _Background
    ) -> _Blobs:
        """A plane's blobs (``voxels``: sorted flat indices) as indices into its bands."""
        x = self.shape[2]
        if len(bg.bands) == 0:  # nothing lit: no blobs either
            return _Blobs(weights, np.empty(0, np.intp), (0,))
        starts = np.array([b.rows.start for b in bg.bands])
        row, col = np.divmod(voxels, x)
        band = np.searchsorted(starts, row, side="right") - 1
        r0 = starts[band]
        c0 = np.array([b.cols.start for b in bg.bands])[band]
        width = np.array([b.cols.stop - b.cols.start for b in bg.bands])[band]
        assert np.all((col >= c0) & (col < c0 + width)), "a blob voxel outside its band"
        local = ((row - r0) * width + (col - c0)).astype(np.intp)
        cuts = np.searchsorted(band, np.arange(len(bg.bands) + 1))
        return _Blobs(weights, local, tuple(int(c) for c in cuts))

    @property
    def resting_fluorescence(self) -> np.ndarray:
        """F0: each neuron's fluorescence at rest (``F / F0 - 1`` is the true ΔF/F)."""
        return self.baseline

    def advance(
        self, times: np.ndarray, features: np.ndarray, drive_every_second: bool = False
    ) -> np.ndarray:
        """One volume on, its planes acquired at ``times`` (s) with stimulus ``features``
        (planes, features) then; returns each neuron's fluorescence at its plane's time
        (kept as ground truth) and sets the planes' ``background_scale``.
        ``drive_every_second`` ([faults] brain_change_at_s) drives every second neuron fully."""
        c = self.activity.step(times, features)
        if drive_every_second:
            c[::2] = np.maximum(c[::2], 1.0)
        dff = self.indicator.dff(c)
        f = self.baseline * (1.0 + dff)
        self.fluorescence = f
        self.traces.append(f.astype(np.float32))
        dt = float(times[-1] - times[0]) * len(times) / max(len(times) - 1, 1)
        a = math.exp(-dt / _BACKGROUND_TAU_S)
        self._drift = a * self._drift + _BACKGROUND_SD * math.sqrt(1.0 - a * a) * float(
            self.rng.standard_normal()
        )
        plane_dff = np.bincount(self.planes, dff, minlength=self.shape[0]) / self._plane_count
        self.background_scale = 1.0 + self._drift + _NEUROPIL_GAIN * plane_dff
        return f

    def true_dff(self, fluorescence: np.ndarray) -> np.ndarray:
        """Each neuron's noiseless ΔF/F (float32, same shape as ``fluorescence``: one row per
        volume, or several): its fluorescence over its resting fluorescence, less 1.

        Resting is what the neuron emits with no drive (calcium at rest). Bleaching and the
        camera do not enter: they scale or offset what is measured, not the cell's ΔF/F.
        ``/ground_truth/dff`` holds it per volume, for the readout to be measured against.
        """
        rest = self.baseline.astype(np.float64)
        return (np.asarray(fluorescence, np.float64) / rest - 1.0).astype(np.float32)

    def render_plane(
        self,
        fluorescence: np.ndarray,
        p: int,
        out: np.ndarray,
        bleach: float = 1.0,
        background: float = 1.0,
    ) -> None:
        """Render plane ``p`` into ``out`` (uint16 y, x) with shot noise: one camera frame.

        ``bleach`` scales everything the sample emits (not the camera's dark level);
        ``background`` the autofluorescence alone (neuropil and slow drift).
        Where the sample emits nothing, the dark frame is copied from the uint16 pool;
        each band's mean (background + the blobs' signal) goes into a float32 scratch,
        then mean + sqrt(mean) x noise is cast into ``out`` by the last ufunc call.
        The scratches are the brain's: one render at a time (the image lane renders,
        nothing else in a session). About 3.2 ms of one core for a 1328 x 2048 plane
        (module docstring).
        """
        z, y, x = self.shape
        k = int(self.noise_rng.integers(0, len(self._pool) - y * x))
        bg = self._backgrounds[min(p, z - 1 - p)]
        dark = self._dark_pool[k : k + y * x].reshape(y, x)
        for part in bg.dark:
            out[part] = dark[part]
        noise = self._pool[k : k + y * x].reshape(y, x)
        blobs = self._blobs[p]
        signal = self._blob_signal(fluorescence, blobs, bleach)
        for i, band in enumerate(bg.bands):
            mean = self._band_mean[: band.mean.size].reshape(band.mean.shape)
            scale = bleach * background
            if scale == 1.0:
                np.copyto(mean, band.mean)
            else:  # dark + scale x autofluorescence (+ 0.5)
                np.multiply(band.mean, scale, out=mean)
                mean += (1.0 - scale) * (_OFFSET + 0.5)
            a, b = blobs.cuts[i], blobs.cuts[i + 1]
            if b > a:  # unique voxels: add.at for its fast path, not for duplicates
                np.add.at(mean.reshape(-1), blobs.local[a:b], signal[a:b])
            # Poisson's first two moments: variance = mean (module docstring)
            v = self._band_noise[: band.mean.size].reshape(band.mean.shape)
            np.subtract(mean, 0.5, out=v)
            np.sqrt(v, out=v)
            v *= noise[band.rows, band.cols]
            np.add(v, mean, out=out[band.rows, band.cols], casting="unsafe")

    def _blob_signal(self, fluorescence: np.ndarray, blobs: _Blobs, bleach: float) -> np.ndarray:
        """Each blob voxel's mean signal (float32), within [0, ``_SIGNAL_CAP``]."""
        if len(blobs.local) == 0:
            return np.empty(0, np.float32)
        f = fluorescence.astype(np.float32)
        if bleach != 1.0:
            f *= bleach
        signal: np.ndarray = blobs.weights @ f
        np.clip(signal, 0.0, _SIGNAL_CAP, out=signal)
        return signal
