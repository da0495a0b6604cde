"""The live forecaster: its error over time against the mean baseline, and what it predicted
beside what came (rig/forecast/_online.py; ``/live/forecast`` in the session file).

Left: per volume, the MAE of the forecast made one volume before (and the mean baseline's
for the same volume), and the surprise (that MAE over its running median) on its own
axis, with the line a surprise-triggered step would cross. Right: two rasters over the
same volumes, predicted (top) and observed (bottom) ΔF/F, neurons grouped to at most
``RASTER_ROWS`` rows as in the readout's raster.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gui._qt import QtCore, QtWidgets, pg
from rig.readout import LiveRow

__all__ = ["ForecastPanel"]

HISTORY = 300
RASTER_ROWS = 500


def _grouped(a: np.ndarray) -> np.ndarray:
    """(n, t) -> (<= RASTER_ROWS, t): neighbouring neurons averaged in groups."""
    n = a.shape[0]
    if n <= RASTER_ROWS:
        return a
    group = -(-n // RASTER_ROWS)
    starts = np.arange(0, n, group)
    counts = np.diff(np.append(starts, n)).astype(np.float32)
    return np.add.reduceat(a, starts, axis=0) / counts[:, None]


class ForecastPanel(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: deque[LiveRow] = deque(maxlen=HISTORY)
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

    def set_surprise_threshold(self, above: float | None) -> None:
        """The ``above`` of a surprise-triggered step (a dashed line), or None."""
        self.surprise_above = above
        self.surprise_line.setVisible(above is not None)
        if above is not None:
            self.surprise_line.setValue(above)

    def add_rows(self, rows: list[LiveRow]) -> None:
        rows = [r for r in rows if r.forecast is not None]
        if rows:
            self._rows.extend(rows)
            self._draw()

    def rasters(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, observed), each (rows <= RASTER_ROWS, volumes): the forecast of each
        volume made one volume before it (NaN where there was none) and what came."""
        rows = list(self._rows)
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        n = min(len(r.traces_dff) for r in rows)
        observed = np.stack([r.traces_dff[:n] for r in rows], axis=1)
        predicted = np.full_like(observed, np.nan)
        for i in range(1, len(rows)):
            prev = rows[i - 1]
            if prev.volume == rows[i].volume - 1 and prev.forecast is not None:
                predicted[:, i] = prev.forecast.next[:n]
        return _grouped(predicted).astype(np.float32), _grouped(observed).astype(np.float32)

    def _draw(self) -> None:
        rows = list(self._rows)
        v = np.array([r.volume for r in rows], dtype=float)
        model = np.array([r.forecast.mae[0] if r.forecast else np.nan for r in rows])
        base = np.array([r.forecast.baseline_mae[0] if r.forecast else np.nan for r in rows])
        surprise = np.array([r.forecast.surprise if r.forecast else np.nan for r in rows])
        ok = np.isfinite(model)
        self.model_curve.setData(v[ok], model[ok])
        self.base_curve.setData(v[ok], base[ok])
        s_ok = np.isfinite(surprise)
        self.surprise_curve.setData(v[s_ok], surprise[s_ok])
        predicted, observed = self.rasters()
        if observed.size:
            finite = observed[np.isfinite(observed)]
            hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
            levels = (0.0, max(hi, 0.05))
            self.observed_image.setImage(np.nan_to_num(observed), levels=levels)
            self.predicted_image.setImage(np.nan_to_num(predicted), levels=levels)
        if ok.any():
            m, b = float(np.nanmean(model[ok])), float(np.nanmean(base[ok]))
            self.status.setText(
                f"volume {rows[-1].volume}: 1-volume-ahead MAE {model[ok][-1]:.4f} "
                f"(mean baseline {base[ok][-1]:.4f}); over the shown volumes "
                f"{m:.4f} vs {b:.4f} ({(b - m) / b:+.1%} better); surprise "
                f"{surprise[-1]:.2f}"
            )
