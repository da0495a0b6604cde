"""Forecasting the brain: the ZAPBench benchmark's splits, baselines and metric on a session.

``zaprig forecast SESSION`` lands in :func:`cli_forecast`. numpy and scipy only: the
benchmark's own code (google-research/zapbench) needs jax, flax and tensorstore, so its
definitions are followed here, each citing the line it follows, and never imported.
"""

from __future__ import annotations

from rig.forecast._baselines import LinearModel, fit_linear, score, valid_windows
from rig.forecast._benchmark import (
    CONTEXT,
    HORIZON,
    InferSet,
    condition_bounds,
    infer_sets,
    min_length,
    num_windows,
    smallest_scale,
    split_bounds,
    too_short,
)
from rig.forecast._online import ForecastRow, OnlineForecaster
from rig.forecast._run import cli_forecast, forecast_session, protocol_scale, scale_advice
from rig.forecast._series import Series, load_series

__all__ = [
    "CONTEXT",
    "HORIZON",
    "ForecastRow",
    "InferSet",
    "LinearModel",
    "OnlineForecaster",
    "Series",
    "cli_forecast",
    "condition_bounds",
    "fit_linear",
    "forecast_session",
    "infer_sets",
    "load_series",
    "min_length",
    "num_windows",
    "protocol_scale",
    "scale_advice",
    "score",
    "smallest_scale",
    "split_bounds",
    "too_short",
    "valid_windows",
]
