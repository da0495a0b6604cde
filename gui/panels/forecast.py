"""The live forecaster: its error over time against the mean baseline, and what it predicted
beside what came (rig/forecast/_online.py; ``/live/forecast`` in the session file).

Left: per volume, the MAE of the forecast made one volume before (and the mean baseline's
for the same volume), and the surprise (that MAE over its running median) on its own
axis, with the line a surprise-triggered step would cross. Right: two rasters over the
same volumes, predicted (top) and observed (bottom) ΔF/F, neurons grouped to at most
``RASTER_ROWS`` rows as in the readout's raster. The grouping is done in the engine
process (``gui._readout_rows``): the window stacks small columns only.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gui._qt import QtCore, QtWidgets, pg
from gui._readout_rows import FORECAST_ROWS, ShownRow, finite_or_zero, shown_row, stable_span
from rig.readout import LiveRow

__all__ = ["RASTER_ROWS", "ForecastPanel"]

HISTORY = 300
RASTER_ROWS = FORECAST_ROWS


class ForecastPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: deque[ShownRow] = deque(maxlen=HISTORY)
        self.surprise_above: float | None = None
        self.plots = pg.GraphicsLayoutWidget()
        self.error_plot = self.plots.addPlot(
            row=0, col=0, title="forecast error, 1 volume ahead (MAE): forecaster, mean baseline"
        )
        self.model_curve = self.error_plot.plot(pen=pg.mkPen("#1f77b4", width=2))
        self.base_curve = self.error_plot.plot(pen=pg.mkPen("#868e96", width=1))
        self.surprise_plot = self.plots.addPlot(row=1, col=0, title="surprise")
        self.surprise_curve = self.surprise_plot.plot(pen=pg.mkPen("#d63939", width=1))
        self.surprise_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#d63939", width=1, style=QtCore.Qt.PenStyle.DashLine)
        )
        self.surprise_line.setVisible(False)
        self.surprise_plot.addItem(self.surprise_line)
        self._x_span: tuple[float, float] | None = None
        self.error_plot.setXLink(self.surprise_plot)
        for p in (self.error_plot, self.surprise_plot):
            p.setLabel("bottom", "volume")
            p.showGrid(x=True, y=True, alpha=0.2)
        self.images = pg.GraphicsLayoutWidget()
        self.images.setBackground("#303030")
        self.images.addLabel("predicted (ΔF/F)", row=0, col=0)
        self.predicted_view = self.images.addViewBox(row=1, col=0, invertY=True)
        self.predicted_image = pg.ImageItem(axisOrder="row-major")
        self.predicted_view.addItem(self.predicted_image)
        self.images.addLabel("observed (ΔF/F)", row=2, col=0)
        self.observed_view = self.images.addViewBox(row=3, col=0, invertY=True)
        self.observed_image = pg.ImageItem(axisOrder="row-major")
        self.observed_view.addItem(self.observed_image)
        self.predicted_view.setXLink(self.observed_view)
        self.status = QtWidgets.QLabel("no forecast yet ([readout] forecast_horizon > 0)")
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.plots)
        split.addWidget(self.images)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

    def clear(self) -> None:
        self._rows.clear()
        self._x_span = None

    def set_surprise_threshold(self, above: float | None) -> None:
        """The ``above`` of a surprise-triggered step (a dashed line), or None."""
        self.surprise_above = above
        self.surprise_line.setVisible(above is not None)
        if above is not None:
            self.surprise_line.setValue(above)

    def add_rows(self, rows: list[ShownRow] | list[LiveRow]) -> None:
        shown = [shown_row(r) for r in rows if r.forecast is not None]
        if shown:
            self._rows.extend(shown)
            self._draw()

    def rasters(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, observed), each (rows <= RASTER_ROWS, volumes): the forecast of each
        volume made one volume before it (NaN where there was none) and what came."""
        rows = list(self._rows)
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        fc = [r.forecast for r in rows]
        n = min(len(f.observed) for f in fc if f is not None)
        observed = np.stack([f.observed[:n] for f in fc if f is not None], axis=1)
        predicted = np.full_like(observed, np.nan)
        for i in range(1, len(rows)):
            prev = fc[i - 1]
            if rows[i - 1].volume == rows[i].volume - 1 and prev is not None:
                predicted[:, i] = prev.next[:n]
        return predicted, observed

    def _draw(self) -> None:
        rows = list(self._rows)
        v = np.array([r.volume for r in rows], dtype=float)
        span = stable_span(v[0], v[-1])
        if span != self._x_span:
            self._x_span = span
            self.surprise_plot.setXRange(*span, padding=0)  # the error plot shares it
        model = np.array([r.forecast.mae if r.forecast else np.nan for r in rows])
        base = np.array([r.forecast.baseline_mae if r.forecast else np.nan for r in rows])
        surprise = np.array([r.forecast.surprise if r.forecast else np.nan for r in rows])
        ok = np.isfinite(model)
        self.model_curve.setData(v[ok], model[ok])
        self.base_curve.setData(v[ok], base[ok])
        s_ok = np.isfinite(surprise)
        self.surprise_curve.setData(v[s_ok], surprise[s_ok])
        predicted, observed = self.rasters()
        if observed.size:
            # each column's 99.5th percentile came with it (gui._readout_rows): their median
            his = np.array([r.forecast.observed_hi if r.forecast else np.nan for r in rows])
            hi = float(np.nanmedian(his)) if np.isfinite(his).any() else 1.0
            levels = (0.0, max(hi, 0.05))
            self.observed_image.setImage(finite_or_zero(observed), levels=levels)
            self.predicted_image.setImage(finite_or_zero(predicted), levels=levels)
        if ok.any():
            m, b = float(np.nanmean(model[ok])), float(np.nanmean(base[ok]))
            self.status.setText(
                f"volume {rows[-1].volume}: 1-volume-ahead MAE {model[ok][-1]:.4f} "
                f"(mean baseline {base[ok][-1]:.4f}); over the shown volumes "
                f"{m:.4f} vs {b:.4f} ({(b - m) / b:+.1%} better); surprise "
                f"{surprise[-1]:.2f}"
            )
