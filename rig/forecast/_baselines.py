"""The benchmark's mean and linear baselines and its MAE, in numpy.

* **mean** (zapbench/models/naive.py ``MeanBaseline``, configs/mean.py): the mean of the
  ``context`` input timesteps, repeated for every predicted timestep. No parameters.
* **linear** (zapbench/models/nlinear.py ``Nlinear`` with ``normalization=False``,
  configs/linear.py): one dense map from the ``context`` inputs to the ``horizon``
  outputs plus a bias, shared by every neuron, trained on the train split of the train
  conditions (configs/common.py ``train_specs``) with the MAE loss (heads.py
  ``create_head``: ``deterministic_mae``). The benchmark fits it with AdamW and early
  stopping; here the same model and loss are minimised directly, by iteratively
  reweighted least squares (an L1 fit), which needs no learning rate and no jax.
* **MAE** (heads.py ``common_metrics`` ``mae`` and ``mae_step``, infer.py ``inference``):
  per scored set, the mean absolute error over its windows, timesteps and neurons
  (``mae``), and the same per predicted timestep (``mae_step``, one value per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rig.forecast._benchmark import (
    CONDITIONS_TRAIN,
    CONTEXT,
    HORIZON,
    InferSet,
    condition_bounds,
    num_windows,
    split_bounds,
)

__all__ = ["LinearModel", "fit_linear", "score", "valid_windows"]

#: Rows (window x neuron) the L1 fit uses at most: a fixed random sample beyond that.
_FIT_ROWS = 200_000
_IRLS_ITERATIONS = 30


def valid_windows(values: np.ndarray, start: int, n: int, context: int, horizon: int) -> np.ndarray:
    """Which of ``n`` windows from ``start`` have every input and target value (no NaN)."""
    if n <= 0:
        return np.zeros(0, dtype=bool)
    span = context + horizon
    rows = np.isfinite(values[start : start + n + span - 1]).all(axis=1)
    bad = np.concatenate([[0], np.cumsum(~rows)])
    result: np.ndarray = (bad[span:] - bad[:-span]) == 0
    return result


@dataclass(frozen=True)
class LinearModel:
    """``prediction[k] = sum_j weights[j, k] * input[j] + bias[k]`` for every neuron."""

    weights: np.ndarray  # (context, horizon)
    bias: np.ndarray  # (horizon,)
    rows: int  # (window, neuron) pairs it was fitted on


def _stack_windows(
    values: np.ndarray, start: int, n: int, context: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (windows*neurons, context) and targets (windows*neurons, horizon) of valid windows."""
    ok = np.flatnonzero(valid_windows(values, start, n, context, horizon))
    x = np.stack([values[start + ok + j] for j in range(context)], axis=-1)  # (w, f, context)
    y = np.stack([values[start + ok + context + k] for k in range(horizon)], axis=-1)
    return x.reshape(-1, context), y.reshape(-1, horizon)


def fit_linear(
    values: np.ndarray,
    offsets: tuple[int, ...] | list[int],
    context: int = CONTEXT,
    horizon: int = HORIZON,
    seed: int = 0,
) -> LinearModel:
    """Fit the linear baseline on the train split of every train condition (L1 loss)."""
    xs, ys = [], []
    for c in [c for c in CONDITIONS_TRAIN if c < len(offsets) - 1]:
        try:
            a, b = split_bounds("train", *condition_bounds(offsets, c), context)
        except ValueError:
            continue
        n = num_windows(a, b, context, horizon)
        if n > 0:
            x, y = _stack_windows(values, a, n, context, horizon)
            xs.append(x)
            ys.append(y)
    if not xs or not sum(len(x) for x in xs):
        raise ValueError("no train windows: every train condition is too short")
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys).astype(np.float64)
    if len(x) > _FIT_ROWS:
        pick = np.random.default_rng(seed).choice(len(x), _FIT_ROWS, replace=False)
        x, y = x[pick], y[pick]
    design = np.hstack([x, np.ones((len(x), 1))])  # (rows, context + 1)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]  # (context + 1, horizon): the L2 start
    eps = 1e-6 * max(1e-12, float(np.median(np.abs(y - y.mean(axis=0)))))
    p = design.shape[1]
    ridge = 1e-9 * np.eye(p)
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), p * p)  # (rows, p * p)
    for _ in range(_IRLS_ITERATIONS):
        w = 1.0 / np.maximum(np.abs(y - design @ coef), eps)  # (rows, horizon)
        # every output step's weighted normal equations at once: (horizon, p, p), (horizon, p)
        gram = (w.T @ outer).reshape(horizon, p, p) + ridge
        rhs = (w * y).T @ design
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0].T
    return LinearModel(coef[:context].copy(), coef[context].copy(), len(x))


def score(
    values: np.ndarray,
    s: InferSet,
    model: LinearModel | None = None,
    context: int = CONTEXT,
    horizon: int = HORIZON,
) -> dict[str, object]:
    """MAE (``mae``) and MAE per predicted step (``mae_step``) of the mean baseline, or of
    ``model``, over the set's valid windows; ``windows_scored`` says how many."""
    n = s.windows
    ok = np.flatnonzero(valid_windows(values, s.start, n, context, horizon))
    if not len(ok):
        return {"mae": None, "mae_step": [], "windows_scored": 0}
    base = s.start + ok
    if model is None:
        pred = np.mean([values[base + j] for j in range(context)], axis=0, dtype=np.float64)
    steps = []
    for k in range(horizon):
        if model is not None:
            pred = sum(
                (model.weights[j, k] * values[base + j].astype(np.float64) for j in range(context)),
                start=np.full((len(base), values.shape[1]), model.bias[k]),
            )
        steps.append(float(np.mean(np.abs(pred - values[base + context + k]))))
    return {"mae": float(np.mean(steps)), "mae_step": steps, "windows_scored": len(ok)}
