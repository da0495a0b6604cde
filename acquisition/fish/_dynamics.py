"""The virtual brain's activity: shared signals, each neuron's loadings on them, and its own noise.

A neuron's activity is a weighted sum of a few signals shared across the brain,
plus its own sparse events, so whole-brain activity is low-dimensional and
correlated the way light-sheet recordings of larval zebrafish are (Ahrens et al.
2013, Nat. Methods 10:413: a few components explain much of the variance;
Chen et al. 2018, Neuron 100:876):

* **stimulus features** (forward flow, light on, light off, dark objects and
  looms, swimming, left and right turning): tuned cells load on one, as before
  (tectum and pretectum for the visual ones; Portugues et al. 2014, Neuron 81:1328;
  Naumann et al. 2016, Cell 167:947);
* **swim-correlated (motor) populations** in the hindbrain load on the swimming
  signal and on the turn direction (Ahrens et al. 2012, Nature 485:471);
* the **anterior rhombencephalic turning region (ARTR)**: left and right
  populations of the rostral hindbrain alternate in antiphase with a period of
  ~20 s (Ahrens et al. 2013, Dunn et al. 2016 eLife 5:e12741, Wolf et al. 2017
  Nat. Commun. 8:651);
* **assemblies**: groups of nearby neurons that fire together spontaneously
  (Romano et al. 2015, Neuron 85:1070, optic tectum), each driven by a slow
  latent process (Ornstein-Uhlenbeck, ~8 s) through a threshold, so they fire in
  episodes;
* a **global state** (arousal, slow; Marques et al. 2020, Nature 577:239, and the
  first principal component of whole-brain data): every neuron loads on it a little.

Every shared signal is sampled at each plane's own acquisition time and filtered
by the indicator's kinetics once per volume for all signals together (a small
matrix product, :func:`~acquisition.fish._indicator.exp_filter_matrix`); a
neuron then reads its plane's row, so cells in planes acquired after a stimulus
change respond and cells acquired before do not.
"""

from __future__ import annotations

import math

import numpy as np

from acquisition.fish._indicator import Indicator, exp_filter_matrix

__all__ = ["FEATURES", "Activity"]

#: Stimulus and motor features, in the order ``VirtualFish`` samples them.
FEATURES = ("forward", "light_on", "light_off", "loom", "motor", "left", "right")
_ASSEMBLY_TAU_S = 8.0  # latent process of an assembly (episodes of several seconds)
_GLOBAL_TAU_S = 30.0  # slow global state
_ASSEMBLY_THRESHOLD = 0.8  # an assembly fires while its latent is above this (~21 % of the time)
_PRIVATE_EVENT_PROB = 0.02  # per volume: a neuron's own event
_PRIVATE_EVENT_SIZE = 0.5


class Activity:
    """Shared signals and each neuron's loadings on them; :meth:`step` advances one volume."""

    def __init__(
        self,
        unit_pts: np.ndarray,
        tuning_features: np.ndarray,
        planes: np.ndarray,
        n_planes: int,
        indicator: Indicator,
        rng: np.random.Generator,
        n_assemblies: int,
        artr_period_s: float,
    ) -> None:
        """``unit_pts``: positions in the unit ball (z, y, x; x rostro-caudal, y left-right);
        ``tuning_features``: per neuron the index in :data:`FEATURES` it is tuned to, -1 for
        none, -2 for ARTR left, -3 for ARTR right; ``planes``: each neuron's plane."""
        n = len(unit_pts)
        self.rng = rng
        self.indicator = indicator
        self.planes = planes.astype(np.intp)
        self.n_planes = n_planes
        self.n_assemblies = n_assemblies
        self.artr_period_s = artr_period_s
        nf = len(FEATURES)
        k = nf + 2 + n_assemblies + 1
        w = np.zeros((n, k))
        tuned = tuning_features >= 0
        w[np.flatnonzero(tuned), tuning_features[tuned]] = rng.uniform(0.7, 1.2, int(tuned.sum()))
        w[tuning_features == -2, nf] = 1.0
        w[tuning_features == -3, nf + 1] = 1.0
        if n_assemblies:
            centres = rng.uniform(-0.8, 0.8, size=(n_assemblies, 3))
            d = ((unit_pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
            nearest = d.argmin(1)
            close = np.sqrt(d.min(1)) < 0.45
            p_join = np.where(tuned, 0.3, 0.8)
            join = close & (rng.random(n) < p_join)
            w[np.flatnonzero(join), nf + 2 + nearest[join]] = rng.uniform(0.4, 1.0, int(join.sum()))
        w[:, -1] = rng.uniform(0.05, 0.35, n)
        self.weights = w
        # filter states: shared signals (rise, decay) and each neuron's own events
        self._shared = np.zeros((2, k))
        self._private = np.zeros((2, n))
        self._latent = rng.standard_normal(n_assemblies + 1)
        self._phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._t_prev: float | None = None
        #: The shared signals of the last volume, filtered, per plane (planes, signals).
        self.filtered = np.zeros((n_planes, k))

    def _latents(self, times: np.ndarray, t_prev: float) -> np.ndarray:
        """Assembly and global latents at ``times``: exact Ornstein-Uhlenbeck steps, rectified."""
        taus = np.array([_ASSEMBLY_TAU_S] * self.n_assemblies + [_GLOBAL_TAU_S])
        gaps = np.diff(times, prepend=t_prev)
        a = np.exp(-gaps[:, None] / taus[None, :])  # (planes, latents)
        eps = self.rng.standard_normal(a.shape) * np.sqrt(1.0 - a**2)
        out = np.empty_like(a)
        x = self._latent
        # a short recursion over the planes, on vectors of a few latents
        for p in range(len(times)):
            x = a[p] * x + eps[p]
            out[p] = x
        self._latent = x
        rect: np.ndarray = np.empty_like(out)
        rect[:, :-1] = np.maximum(out[:, :-1] - _ASSEMBLY_THRESHOLD, 0.0) * 1.5
        # the global state too is off half the time, so a cell's quiet periods are at rest
        rect[:, -1] = np.maximum(np.tanh(out[:, -1]), 0.0)
        return rect

    def _artr(self, times: np.ndarray, t_prev: float) -> np.ndarray:
        """ARTR left and right at ``times``: antiphase half-waves of a ~20 s oscillation."""
        omega = 2.0 * math.pi / self.artr_period_s
        phase = self._phase + omega * (times - t_prev)
        self._phase = float(phase[-1]) + float(self.rng.normal(0.0, 0.05))  # period jitters
        s = np.sin(phase)
        return np.stack([np.maximum(s, 0.0), np.maximum(-s, 0.0)], axis=1)

    def step(self, times: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Advance to a volume whose planes were acquired at ``times`` (s, one per plane) with
        stimulus ``features`` (planes, len(FEATURES)) sampled then; returns each neuron's
        filtered activity at its own plane's time (>= 0)."""
        t_prev = (
            self._t_prev
            if self._t_prev is not None
            else float(times[0]) - (float(times[-1] - times[0]) / max(len(times) - 1, 1))
        )
        u = np.concatenate(
            [features, self._artr(times, t_prev), self._latents(times, t_prev)], axis=1
        )
        ind = self.indicator
        tr, td = ind.tau_rise_s, ind.tau_decay_s
        mr, cr = exp_filter_matrix(times, t_prev, tr)
        md, cd = exp_filter_matrix(times, t_prev, td)
        s_r = mr @ u + cr[:, None] * self._shared[0]
        s_d = md @ u + cd[:, None] * self._shared[1]
        self._shared[0], self._shared[1] = s_r[-1], s_d[-1]
        g = (td * s_d - tr * s_r) / (td - tr)
        self.filtered = g
        shared = np.einsum("ik,ik->i", self.weights, g[self.planes])
        # each neuron's own events, one volume at a time (held over the volume)
        dt = float(times[-1]) - t_prev
        ev = (self.rng.random(len(shared)) < _PRIVATE_EVENT_PROB) * _PRIVATE_EVENT_SIZE
        ar, ad = math.exp(-dt / tr), math.exp(-dt / td)
        pr, pd = self._private
        pr *= ar
        pr += (1.0 - ar) * ev
        pd *= ad
        pd += (1.0 - ad) * ev
        self._t_prev = float(times[-1])
        result: np.ndarray = np.maximum(shared + (td * pd - tr * pr) / (td - tr), 0.0)
        return result
