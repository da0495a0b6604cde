"""A live forecaster of every traced neuron, fitted on the session's own past, volume by volume.

The forecast of volume ``t + h`` (``h = 1..H``) made at volume ``t`` is the benchmark's
mean baseline (the mean of the last ``CONTEXT`` volumes, zapbench/models/naive.py
``MeanBaseline``) plus a correction in a low-dimensional space:

    x̂[t + h] = mean(x[t-3..t]) + U · d̂_h,   d̂_h = [z_t, z_{t-1}, 1] · B_h

where ``U`` (neurons x k) holds the top ``k`` principal components of the last
``history`` volumes, ``z = Uᵀ (x − μ)`` are the volumes in that space, and ``B_h`` is a
ridge regression from the latest latents to how far volume ``t + h`` will be from the
mean baseline, refitted on every volume. The principal components are refitted every
``refit_every`` volumes from a Gram matrix kept up to date one row per volume (one dot
product of the new volume with each kept volume), so no volume pays for a whole
decomposition at 70,000 neurons. Where the correction has nothing to learn it shrinks
to zero, and the forecast is the mean baseline.

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

__all__ = ["ForecastRow", "OnlineForecaster"]


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """What the forecaster says at one volume."""

    next: np.ndarray  # (n,) float32 forecast of the next volume (NaN until it can forecast)
    mae: np.ndarray  # (H,) MAE of the forecasts made for this volume h = 1..H volumes ago
    baseline_mae: np.ndarray  # (H,) the mean baseline's MAE for the same volume and leads
    surprise: float  # mae[0] / its running median (NaN until there is a median)
    abs_error: np.ndarray  # (n,) float32 |1-volume-ahead forecast - this volume| (NaN: none)
    seconds: float = 0.0  # CPU seconds (this thread) the update and forecast took


class OnlineForecaster:
    def __init__(
        self,
        n: int,
        horizon: int = 4,
        components: int = 8,
        history: int = 128,
        refit_every: int = 16,
        ridge: float = 10.0,
        surprise_window: int = 60,
    ) -> None:
        self.n, self.h = n, horizon
        self.k = max(1, min(components, history // 4))
        self.w = history
        self.refit_every = refit_every
        self.ridge = ridge
        self._x = np.zeros((history, n), dtype=np.float32)  # ring of the last volumes
        self._gram = np.zeros((history, history), dtype=np.float64)  # x_i · x_j of the ring
        self._z = np.zeros((history, self.k), dtype=np.float64)  # their latents (ring order)
        self._rows = 0  # volumes seen
        self._since_refit = 0
        self._u: np.ndarray | None = None  # (n, k) float32
        self._mu = np.zeros(n, dtype=np.float32)
        self._b: np.ndarray | None = None  # (2k + 1, H * k)
        #: target volume -> (lead h, model forecast, baseline forecast, last - baseline)
        self._pending: dict[int, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}
        #: per lead, how much of (newest volume - mean baseline) carries on: a least-squares
        #: gain over all neurons, forgetting with a half-life of ~``history`` volumes
        self._sxy = np.zeros(horizon)
        self._sxx = np.zeros(horizon)
        self._forget = 0.5 ** (1.0 / history)
        self._errors: deque[float] = deque(maxlen=surprise_window)

    # -- the ring ----------------------------------------------------------------------------
    def _slot(self, age: int) -> int:
        """Ring index of the volume ``age`` volumes before the newest (0 = newest)."""
        return (self._rows - 1 - age) % self.w

    def _chronological(self) -> np.ndarray:
        m = min(self._rows, self.w)
        return (self._rows - m + np.arange(m)) % self.w

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
            forecasts, base, step = self._forecast()
            for lead in range(1, self.h + 1):
                self._pending.setdefault(volume + lead, []).append(
                    (lead, forecasts[lead - 1], base, step)
                )
            nxt = forecasts[0]
        return ForecastRow(nxt, mae, base_mae, surprise, abs_error, time.thread_time() - c0)

    def _score(self, volume: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mae = np.full(self.h, np.nan)
        base_mae = np.full(self.h, np.nan)
        abs_error = np.full(self.n, np.nan, dtype=np.float32)
        for old in [v for v in self._pending if v < volume]:
            del self._pending[old]  # its volume was skipped
        for lead, forecast, base, step in self._pending.pop(volume, []):
            err = np.abs(forecast - x)
            self._sxy[lead - 1] = self._forget * self._sxy[lead - 1] + float(step @ (x - base))
            self._sxx[lead - 1] = self._forget * self._sxx[lead - 1] + float(step @ step)
            mae[lead - 1] = float(err.mean()) if self.n else float("nan")
            base_mae[lead - 1] = float(np.abs(base - x).mean()) if self.n else float("nan")
            if lead == 1:
                abs_error = err
        return mae, base_mae, abs_error

    def _push(self, x: np.ndarray) -> None:
        i = self._rows % self.w
        self._x[i] = x
        # the new volume's dot products with every kept one: the Gram matrix stays current
        dots = self._x @ x
        self._gram[i, :] = dots
        self._gram[:, i] = dots
        self._rows += 1
        self._since_refit += 1
        if self._u is not None:
            self._z[i] = (x - self._mu) @ self._u
        if self._rows >= 2 * self.k + CONTEXT and (
            self._u is None or self._since_refit >= self.refit_every
        ):
            self._refit_components()
        if self._u is not None:
            self._fit_ridge()

    def _refit_components(self) -> None:
        """Top-k principal components of the kept volumes, from their Gram matrix."""
        idx = self._chronological()
        g = self._gram[np.ix_(idx, idx)]
        # centre: (x_i - μ)·(x_j - μ) from the raw products
        row = g.mean(axis=1)
        gc = g - row[:, None] - row[None, :] + g.mean()
        vals, vecs = np.linalg.eigh(gc)
        top = np.argsort(vals)[::-1][: self.k]
        vals, vecs = np.maximum(vals[top], 1e-12), vecs[:, top]
        x = self._x[idx]
        self._mu = x.mean(axis=0)
        # U = Xcᵀ V / sqrt(λ): unit-length components without an (n x n) matrix
        u = (x.T @ vecs.astype(np.float32)) - np.outer(self._mu, vecs.sum(axis=0)).astype(
            np.float32
        )
        self._u = (u / np.sqrt(vals).astype(np.float32)).astype(np.float32)
        self._z[idx] = vecs * np.sqrt(vals)
        self._since_refit = 0

    def _fit_ridge(self) -> None:
        """B: from [z_t, z_{t-1}, 1] to z_{t+h} minus the mean of z_{t-3..t}, for h = 1..H."""
        z = self._z[self._chronological()]
        m = len(z)
        first, last = CONTEXT - 1, m - self.h  # rows with a full context and every target
        if last - first < 2 * self.k + 2:
            self._b = None
            return
        s = np.arange(first, last)
        feats = np.hstack([z[s], z[s - 1], np.ones((len(s), 1))])
        base = np.mean([z[s - j] for j in range(CONTEXT)], axis=0)
        targets = np.hstack([z[s + lead] - base for lead in range(1, self.h + 1)])
        gram = feats.T @ feats
        lam = self.ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
        reg = lam * np.eye(gram.shape[0])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        self._b = np.linalg.solve(gram + reg, feats.T @ targets)

    def _forecast(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """The next H volumes, the mean baseline they correct, and newest minus baseline."""
        rows = self._x[[self._slot(a) for a in range(CONTEXT)]]
        base = rows.mean(axis=0, dtype=np.float32)
        step = self._x[self._slot(0)] - base
        gain = np.where(self._sxx > 0, self._sxy / np.maximum(self._sxx, 1e-30), 0.0)
        gain = np.clip(gain, 0.0, 1.5)
        out = [base + np.float32(gain[lead]) * step for lead in range(self.h)]
        if self._u is None or self._b is None:
            return out, base, step
        z0, z1 = self._z[self._slot(0)], self._z[self._slot(1)]
        d = (np.concatenate([z0, z1, [1.0]]) @ self._b).reshape(self.h, self.k)
        corr = self._u @ d.T.astype(np.float32)  # (n, H)
        return [out[lead] + corr[:, lead] for lead in range(self.h)], base, step
