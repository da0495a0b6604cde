"""A live forecaster of every traced neuron, fitted on the session's own past, volume by volume.

The forecast of volume ``t + h`` (``h = 1..H``) made at volume ``t`` is the benchmark's
mean baseline ``b_t`` (the mean of the last ``CONTEXT`` volumes, zapbench/models/naive.py
``MeanBaseline``) plus a correction, linear in a few features of each neuron:

    x̂_i[t + h] = b_i,t + f_i,t · w_h

    f_i,t = [x_i,t−j − b_i,t (j < L),  r_i,t−j − b_i,t (j < L),  m_i,t − b_i,t,  1]

* ``x_i,t−j``: the neuron's own last ``L`` volumes (a trend the 4-volume mean lags behind);
* ``r_t = μ + U Uᵀ (x_t − μ)``: the volume projected on the top ``k`` principal components
  of the last ``history`` volumes (``U``, neurons x k). Brain-wide activity is
  low-dimensional, so the projection is the neuron's value with most of its own noise
  averaged out over the neurons it shares activity with; its last ``L`` volumes enter;
* ``m_i,t``: the neuron's slow running mean (half-life ``history`` volumes), toward which
  activity returns.

The weights ``w_h`` (one short vector per lead, shared by all neurons) are ridge
regressions of how far volume ``t + h`` came from the mean baseline, fitted on every
(neuron, volume) pair of the past with exponential forgetting (half-life ``memory``
volumes): the (features x features) sums are updated once per volume. Several ridge
penalties are kept side by side, and a zero correction (the mean baseline itself); each
lead uses whichever has had the lowest recent MAE on the volumes already seen (online
validation, the errors forgetting with a half-life of ``history`` volumes). So the
forecast is shrunk toward the mean baseline by as much as the session's own past says,
and is the mean baseline where the correction has not helped.

The principal components are refitted every ``refit_every`` volumes from a Gram matrix
kept up to date one row per volume (one dot product of the new volume with each kept
volume), so no volume pays for a whole decomposition at 70,000 neurons.

Each volume is scored as it arrives: the MAE of the forecasts made for it 1..H volumes
earlier, beside the mean baseline's for the same volume and lead (``/live/forecast``).
``surprise`` is the 1-volume-ahead MAE over its running median: about 1 while the
brain does what the model expects, several times that when it changes course.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from rig.forecast._benchmark import CONTEXT

__all__ = ["RIDGES", "ForecastRow", "OnlineForecaster"]

#: Ridge penalties tried side by side (relative to the features' mean square); the
#: mean baseline (no correction) is tried beside them.
RIDGES = (1e-4, 1e-2, 1.0)


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """What the forecaster says at one volume."""

    next: np.ndarray  # (n,) float32 forecast of the next volume (NaN until it can forecast)
    mae: np.ndarray  # (H,) MAE of the forecasts made for this volume h = 1..H volumes ago
    baseline_mae: np.ndarray  # (H,) the mean baseline's MAE for the same volume and leads
    surprise: float  # mae[0] / its running median (NaN until there is a median)
    abs_error: np.ndarray  # (n,) float32 |1-volume-ahead forecast - this volume| (NaN: none)
    seconds: float = 0.0  # CPU seconds (this thread) the update and forecast took


@dataclass(frozen=True, slots=True)
class _Made:
    """A forecast made at one volume, kept until the volumes it forecasts arrive."""

    feats: np.ndarray  # (f, n) float32 features f_t, one row per feature
    ff: np.ndarray  # (f, f) their products over the neurons
    base: np.ndarray  # (n,) float32 mean baseline b_t
    weights: np.ndarray  # (H, f, C) float32 each lead's candidates (column 0: zero)
    chosen: np.ndarray  # (H,) the candidate each lead's forecast used


class OnlineForecaster:
    def __init__(
        self,
        n: int,
        horizon: int = 4,
        components: int = 8,
        history: int = 128,
        refit_every: int = 4,
        lags: int = 8,
        memory: int | None = None,
        ridges: tuple[float, ...] = RIDGES,
        surprise_window: int = 60,
    ) -> None:
        self.n, self.h = n, horizon
        self.w = max(history, lags + 1)
        self.k = max(1, min(components, history // 4))
        self.lags = lags
        self.refit_every = refit_every
        self.ridges = tuple(ridges)
        self.f = 2 * lags + 2  # features per neuron
        self._x = np.zeros((self.w, n), dtype=np.float32)  # ring of the last volumes
        self._r = np.zeros((lags, n), dtype=np.float32)  # ring of their projections
        self._gram = np.zeros((self.w, self.w), dtype=np.float64)  # x_i · x_j of the ring
        self._rows = 0  # volumes seen
        self._since_refit = 0
        self._u: np.ndarray | None = None  # (n, k) float32
        self._mu = np.zeros(n, dtype=np.float32)
        self._slow = np.zeros(n, dtype=np.float32)  # the running mean m
        self._slow_a = np.float32(0.5 ** (1.0 / history))
        # per lead: forgetting sums of fᵀf and fᵀ(x_{t+h} - b_t) over (neuron, volume) pairs
        self._forget = 0.5 ** (1.0 / (memory if memory is not None else 4 * history))
        self._ff = np.zeros((horizon, self.f, self.f))
        self._fy = np.zeros((horizon, self.f))
        # per lead and candidate (0: the mean baseline), the forgetting sum of its MAE
        self._err_forget = 0.5 ** (1.0 / history)
        self._err = np.zeros((horizon, 1 + len(self.ridges)))
        self._pending: dict[int, list[tuple[int, _Made]]] = {}
        self._errors: deque[float] = deque(maxlen=surprise_window)

    # -- the ring ----------------------------------------------------------------------------
    def _slot(self, age: int) -> int:
        """Ring index of the volume ``age`` volumes before the newest (0 = newest)."""
        return (self._rows - 1 - age) % self.w

    # -- one volume --------------------------------------------------------------------------
    def update(self, volume: int, x: np.ndarray) -> ForecastRow:
        """Take volume ``volume``'s traces (ΔF/F; NaN read as 0) and forecast the next H."""
        c0 = time.thread_time()
        x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        mae, base_mae, abs_error = self._score(volume, x)
        if np.isfinite(mae[0]):
            med = float(np.median(self._errors)) if len(self._errors) >= 10 else float("nan")
            surprise = mae[0] / med if med > 0 else float("nan")
            self._errors.append(float(mae[0]))
        else:
            surprise = float("nan")
        self._push(x)
        nxt = np.full(self.n, np.nan, dtype=np.float32)
        if self._rows >= CONTEXT:
            made, forecasts = self._forecast()
            for lead in range(1, self.h + 1):
                self._pending.setdefault(volume + lead, []).append((lead, made))
            nxt = forecasts[0]
        return ForecastRow(nxt, mae, base_mae, surprise, abs_error, time.thread_time() - c0)

    def _score(self, volume: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score the forecasts made for ``volume``; learn from them (weights and choice)."""
        mae = np.full(self.h, np.nan)
        base_mae = np.full(self.h, np.nan)
        abs_error = np.full(self.n, np.nan, dtype=np.float32)
        for old in [v for v in self._pending if v < volume]:
            del self._pending[old]  # its volume was skipped
        for lead, made in self._pending.pop(volume, []):
            i = lead - 1
            y = x - made.base  # what the correction should have been
            # (C, n): each candidate's error (candidate 0, no correction: the mean baseline)
            every = made.weights[i].T @ made.feats
            every -= y
            np.abs(every, out=every)
            cand = every.mean(axis=1) if self.n else np.zeros(len(every))
            c = int(made.chosen[i])
            mae[i] = float(cand[c]) if self.n else float("nan")
            base_mae[i] = float(cand[0]) if self.n else float("nan")
            if lead == 1:
                abs_error = every[c]
            self._err[i] = self._err_forget * self._err[i] + cand
            self._ff[i] = self._forget * self._ff[i] + made.ff
            self._fy[i] = self._forget * self._fy[i] + made.feats @ y
        return mae, base_mae, abs_error

    def _push(self, x: np.ndarray) -> None:
        i = self._rows % self.w
        self._x[i] = x
        # the new volume's dot products with every kept one: the Gram matrix stays current
        dots = self._x @ x
        self._gram[i, :] = dots
        self._gram[:, i] = dots
        if self._rows == 0:
            self._slow[:] = x
        else:
            self._slow *= self._slow_a
            self._slow += (1 - self._slow_a) * x
        self._rows += 1
        self._since_refit += 1
        if self._rows >= 2 * self.k + CONTEXT and (
            self._u is None or self._since_refit >= self.refit_every
        ):
            self._refit_components()
        r = x if self._u is None else self._mu + self._u @ ((x - self._mu) @ self._u)
        self._r[(self._rows - 1) % self.lags] = r

    def _refit_components(self) -> None:
        """Top-k principal components of the kept volumes, from their Gram matrix.

        The kept volumes are the ring's first ``m`` slots in whatever order the ring holds
        them (the components do not depend on it), so nothing is copied."""
        m = min(self._rows, self.w)
        g = self._gram[:m, :m]
        # centre: (x_i - μ)·(x_j - μ) from the raw products
        row = g.mean(axis=1)
        gc = g - row[:, None] - row[None, :] + g.mean()
        vals, vecs = np.linalg.eigh(gc)
        top = np.argsort(vals)[::-1][: self.k]
        vals, vecs = np.maximum(vals[top], 1e-12), vecs[:, top]
        x = self._x[:m]
        self._mu = np.full(m, 1.0 / m, dtype=np.float32) @ x
        # U = Xcᵀ V / sqrt(λ): unit-length components without an (n x n) matrix
        u = vecs.astype(np.float32).T @ x  # (k, n)
        u -= np.outer(vecs.sum(axis=0), self._mu).astype(np.float32)
        u /= np.sqrt(vals).astype(np.float32)[:, None]
        self._u = np.ascontiguousarray(u.T)
        self._since_refit = 0

    def _features(self) -> tuple[np.ndarray, np.ndarray]:
        """f_t (f, n) and the mean baseline b_t (n,) of the newest volume."""
        base = self._x[self._slot(0)].copy()
        for a in range(1, CONTEXT):
            base += self._x[self._slot(a)]
        base /= np.float32(CONTEXT)
        have = min(self._rows, self.lags)
        feats = np.zeros((self.f, self.n), dtype=np.float32)
        for j in range(have):
            np.subtract(self._x[self._slot(j)], base, out=feats[j])
            np.subtract(self._r[(self._rows - 1 - j) % self.lags], base, out=feats[self.lags + j])
        np.subtract(self._slow, base, out=feats[2 * self.lags])
        feats[-1] = 1.0
        return feats, base

    def _weights(self) -> np.ndarray:
        """(H, f, C): per lead, the zero correction and one ridge solution per penalty."""
        out = np.zeros((self.h, self.f, 1 + len(self.ridges)), dtype=np.float32)
        eye = np.eye(self.f)
        for i in range(self.h):
            ff = self._ff[i]
            scale = float(np.trace(ff)) / self.f
            if scale <= 0:
                continue
            for c, lam in enumerate(self.ridges, start=1):
                out[i, :, c] = np.linalg.solve(ff + lam * scale * eye, self._fy[i])
        return out

    def _forecast(self) -> tuple[_Made, list[np.ndarray]]:
        """The next H volumes, and what is kept to score and learn from them."""
        feats, base = self._features()
        weights = self._weights()
        # each lead: the candidate with the lowest recent MAE (ties: the mean baseline)
        chosen = np.argmin(self._err, axis=1)
        w = weights[np.arange(self.h), :, chosen]  # (H, f)
        corr = w @ feats  # (H, n)
        corr += base
        made = _Made(feats, (feats @ feats.T).astype(np.float64), base, weights, chosen)
        return made, list(corr)
