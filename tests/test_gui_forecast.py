"""The forecast panel in the readout tab, offscreen with real Qt widgets, fed by the real
live forecaster (rig/forecast/_online.py) on traces with a known rhythm."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

import numpy as np

from gui.panels.forecast import RASTER_ROWS
from gui.panels.readout import ReadoutPanel
from rig.forecast._online import OnlineForecaster
from rig.readout import LiveRow


def _rows(n: int, volumes: int) -> list[LiveRow]:
    """Neurons following two slow rhythms plus noise: a forecaster has something to learn."""
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(2, n))
    fc = OnlineForecaster(n, horizon=4, components=4, history=64)
    rows = []
    for t in range(volumes):
        latent = np.array([np.sin(t / 5.0), np.cos(t / 7.0)])
        dff = (latent @ mix * 0.3 + rng.normal(scale=0.05, size=n)).astype(np.float32)
        rows.append(
            LiveRow(
                volume=t,
                drift_um=np.zeros(3),
                brightness=np.ones(2, np.float32),
                traces_raw=np.full(n, 100.0, np.float32),
                traces_dff=dff,
                seconds=0.01,
                forecast=fc.update(t, dff),
            )
        )
    return rows


def test_forecast_panel_shows_error_over_time_and_predicted_vs_observed(qtbot) -> None:
    panel = ReadoutPanel()
    qtbot.addWidget(panel)
    panel.new_session(5.0, 0.9, (2, 32, 32))
    panel.show()
    n = 1200  # more neurons than the forecast raster's rows: grouped
    rows = _rows(n, 150)
    panel.add_rows(rows[:100])
    panel.add_rows(rows[100:])
    fp = panel.forecast
    x, model = fp.model_curve.getData()
    _, base = fp.base_curve.getData()
    assert x[0] == 4 and x[-1] == 149  # scored from the first volume after 4 of context
    # the rhythm is learnt: over the last 50 volumes the forecaster beats the mean baseline
    assert model[-50:].mean() < 0.8 * base[-50:].mean()
    predicted, observed = fp.rasters()
    assert predicted.shape == observed.shape == (-(-n // -(-n // RASTER_ROWS)), 150)
    assert np.isnan(predicted[:, 0]).all()
    # column t of "predicted" is the forecast made at volume t - 1, grouped like "observed"
    group = -(-n // RASTER_ROWS)
    assert np.allclose(predicted[0, 120], rows[119].forecast.next[:group].mean(), atol=1e-5)
    assert np.allclose(observed[0, 120], rows[120].traces_dff[:group].mean(), atol=1e-5)
    assert fp.predicted_image.image is not None and fp.observed_image.image is not None
    assert "mean baseline" in fp.status.text() and "better" in fp.status.text()
    panel.new_session(5.0, 0.9, (2, 32, 32))  # a new session starts empty
    assert fp.rasters()[0].size == 0
