"""The brain readout: drift, brightness, an activity raster and chosen neurons, per volume.

Fed by the live readout's rows (rig/readout, one per volume, ~1 Hz) through the
same :class:`~gui._engine_process.LiveBatch` as the other live views. Left: the
drift's components and its length against the config's warning threshold (a
dashed line), and each plane's brightness relative to the start (mean, and the
dimmest and brightest plane). Right: the raster of every traced neuron's ΔF/F
over the last volumes, and a max projection of the newest volume: a click on it
picks the traced neuron nearest the click, whose ΔF/F joins the traces below
(the newest few picks).

The raster shows at most ``RASTER_ROWS`` rows: with ~70,000 neurons, neighbouring
trace columns are averaged in groups, so it stays one small image whatever the
brain's size (a column per volume, a few hundred volumes). The grouping, the
levels and the max projection are made in the engine process
(``gui._readout_rows``, ``gui._shared_live``): per volume the window only stacks
small columns and uploads small images.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gui._qt import QtCore, QtWidgets, pg
from gui._readout_rows import (
    RASTER_ROWS,
    ShownRow,
    finite_or_zero,
    group,
    shown_row,
    stable_span,
)
from gui._shared_live import projection_levels
from gui.panels.forecast import ForecastPanel
from rig.readout import LiveRow

__all__ = ["RASTER_ROWS", "ReadoutPanel"]

#: Volumes kept on screen.
HISTORY = 300
#: Neurons whose traces are drawn (the newest picks).
PICKS = 4
PICK_COLOURS = ("#1f77b4", "#d62728", "#2fb344", "#7048e8")
AXIS_COLOURS = {"z": "#c27c00", "y": "#1f77b4", "x": "#d62728"}


class ReadoutPanel(QtWidgets.QWidget):
    #: A neuron was picked on the max projection (its trace column).
    picked = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.threshold_um = 5.0
        self.volume_period_s = 1.0
        self.shape_zyx: tuple[int, int, int] | None = None
        self.positions_zyx = np.zeros((0, 3))
        self.label_ids = np.zeros(0, dtype=np.int64)
        self.picks: deque[int] = deque(maxlen=PICKS)
        self._rows: deque[ShownRow] = deque(maxlen=HISTORY)
        self._mip: np.ndarray | None = None
        self._stride = 1

        self.plots = pg.GraphicsLayoutWidget()
        self.drift_plot = self.plots.addPlot(row=0, col=0, title="drift (µm): z y x, |drift|")
        self.drift_curves = {
            k: self.drift_plot.plot(pen=pg.mkPen(c, width=1)) for k, c in AXIS_COLOURS.items()
        }
        self.drift_norm = self.drift_plot.plot(pen=pg.mkPen("#000000", width=2))
        self.threshold_line = pg.InfiniteLine(
            pos=self.threshold_um,
            angle=0,
            pen=pg.mkPen("#d63939", width=1, style=QtCore.Qt.PenStyle.DashLine),
        )
        self.drift_plot.addItem(self.threshold_line)
        self.bright_plot = self.plots.addPlot(
            row=1, col=0, title="brightness vs start: mean, dimmest, brightest plane"
        )
        self.bright_mean = self.bright_plot.plot(pen=pg.mkPen("#000000", width=2))
        self.bright_lo = self.bright_plot.plot(pen=pg.mkPen("#868e96", width=1))
        self.bright_hi = self.bright_plot.plot(pen=pg.mkPen("#868e96", width=1))
        self.traces_plot = self.plots.addPlot(row=2, col=0, title="chosen neurons (ΔF/F)")
        self.pick_curves = [self.traces_plot.plot(pen=pg.mkPen(c, width=1)) for c in PICK_COLOURS]
        self._x_span: tuple[float, float] | None = None
        for p in (self.drift_plot, self.bright_plot):
            p.setXLink(self.traces_plot)
        for p in (self.drift_plot, self.bright_plot, self.traces_plot):
            p.setLabel("bottom", "volume")
            p.showGrid(x=True, y=True, alpha=0.2)

        self.images = pg.GraphicsLayoutWidget()
        self.images.setBackground("#303030")
        self.raster_title = self.images.addLabel("activity (ΔF/F)", row=0, col=0)
        self.raster_view = self.images.addViewBox(row=1, col=0, invertY=True)
        self.raster_image = pg.ImageItem(axisOrder="row-major")
        self.raster_view.addItem(self.raster_image)
        self.mip_title = self.images.addLabel("max projection: click a neuron", row=2, col=0)
        self.mip_view = self.images.addViewBox(row=3, col=0, lockAspect=True, invertY=True)
        self.mip_image = pg.ImageItem(axisOrder="row-major")
        self.mip_view.addItem(self.mip_image)
        self.pick_marks = pg.ScatterPlotItem(size=10, pen=pg.mkPen("#ffffff"), brush=None)
        self.mip_view.addItem(self.pick_marks)
        for v in (self.raster_view, self.mip_view):
            v.setMouseEnabled(False, False)
        self.images.scene().sigMouseClicked.connect(self._scene_clicked)

        self.status = QtWidgets.QLabel(
            "no readout yet ([readout] enabled = true in the rig config)"
        )
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.plots)
        split.addWidget(self.images)
        #: The live forecaster's error and predicted vs observed rasters (gui/panels/forecast.py).
        self.forecast = ForecastPanel()
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.forecast, 1)
        lay.addWidget(self.status)

    # -- set-up ------------------------------------------------------------------------------
    def new_session(
        self, threshold_um: float, volume_period_s: float, shape_zyx: tuple[int, int, int]
    ) -> None:
        self.threshold_um = float(threshold_um)
        self.threshold_line.setValue(self.threshold_um)
        self.volume_period_s = volume_period_s
        self.shape_zyx = shape_zyx
        self._rows.clear()
        self._x_span = None
        self.forecast.clear()
        self.picks.clear()
        self._mip = None
        self.positions_zyx = np.zeros((0, 3))
        self.label_ids = np.zeros(0, dtype=np.int64)

    def set_labels(self, ids: np.ndarray, positions_zyx: np.ndarray) -> None:
        """The traced neurons (trace column order), for picking on the max projection."""
        self.label_ids = np.asarray(ids)
        self.positions_zyx = np.asarray(positions_zyx, dtype=np.float64).reshape(-1, 3)

    # -- data --------------------------------------------------------------------------------
    def add_rows(self, rows: list[ShownRow] | list[LiveRow]) -> None:
        """Readout rows as the engine process sends them (a raw ``LiveRow`` is reduced here)."""
        if not rows:
            return
        shown = [shown_row(r) for r in rows]
        self._rows.extend(shown)
        self._draw()
        self.forecast.add_rows(shown)

    def show_volume(self, volume: np.ndarray) -> None:
        """The newest volume (z, y, x), possibly subsampled in y and x."""
        mip = np.asarray(volume).max(axis=0)
        self.show_projection(mip, projection_levels(mip))

    def show_projection(self, mip: np.ndarray, levels: tuple[float, float]) -> None:
        """The newest volume's max projection (possibly subsampled in y and x), made by the
        engine process, and its display levels."""
        self._mip = mip
        if self.shape_zyx is not None:
            self._stride = max(1, round(self.shape_zyx[2] / max(1, mip.shape[1])))
        self.mip_image.setImage(mip, levels=levels)
        self._draw_marks()

    @property
    def rows(self) -> int:
        return len(self._rows)

    def raster(self) -> np.ndarray:
        """(rows <= RASTER_ROWS, volumes) ΔF/F of the traced neurons, grouped if many.

        Each volume's column is grouped once, in the engine process (``ShownRow.raster``):
        with 70,000 neurons, stacking every row at each redraw cost the window ~0.1 s a volume.
        """
        if not self._rows:
            return np.zeros((0, 0), dtype=np.float32)
        n = min(len(r.raster) for r in self._rows)
        return np.stack([r.raster[:n] for r in self._rows], axis=1)

    @staticmethod
    def _group(dff: np.ndarray) -> np.ndarray:
        """One volume's ΔF/F, neighbouring columns averaged in groups (at most RASTER_ROWS)."""
        return group(dff, RASTER_ROWS)

    def _draw(self) -> None:
        rows = list(self._rows)
        v = np.array([r.volume for r in rows], dtype=float)
        span = stable_span(v[0], v[-1])
        if span != self._x_span:
            self._x_span = span
            self.traces_plot.setXRange(*span, padding=0)  # the three share it (x-linked)
        drift = np.stack([r.drift_um for r in rows])
        for k, (name, curve) in enumerate(self.drift_curves.items()):
            curve.setData(v, drift[:, k])
            del name
        self.drift_norm.setData(v, np.linalg.norm(drift, axis=1))
        bright = np.stack([r.brightness for r in rows])
        self.bright_mean.setData(v, np.nanmean(bright, axis=1))
        self.bright_lo.setData(v, np.nanmin(bright, axis=1))
        self.bright_hi.setData(v, np.nanmax(bright, axis=1))
        image = self.raster()
        if image.size:
            # each column's 99.5th percentile came with it: their median, not a percentile
            # over the whole image at every volume
            his = np.array([r.raster_hi for r in rows])
            hi = float(np.nanmedian(his)) if np.isfinite(his).any() else 1.0
            self.raster_image.setImage(finite_or_zero(image), levels=(0.0, max(hi, 0.05)))
        for curve, k in zip(self.pick_curves, list(self.picks) + [-1] * PICKS, strict=False):
            if k < 0:
                curve.setData([], [])
            else:
                curve.setData(v, np.array([r.traces_dff[k] if k < len(r.traces_dff) else np.nan
                                           for r in rows]))  # fmt: skip
        last = rows[-1]
        d = float(np.linalg.norm(last.drift_um))
        warn = " — above the warning threshold" if d > self.threshold_um else ""
        self.status.setText(
            f"volume {last.volume}: drift {d:.1f} µm{warn}; brightness "
            f"{float(np.nanmean(last.brightness)):.1%} of the start; "
            f"{last.n_traced} neurons traced; readout {last.seconds * 1e3:.0f} ms/volume"
        )

    # -- picking -----------------------------------------------------------------------------
    def pick_at(self, y: float, x: float) -> int | None:
        """Pick the traced neuron nearest (y, x) in full-resolution voxels; its column."""
        if not len(self.positions_zyx):
            return None
        d = np.hypot(self.positions_zyx[:, 1] - y, self.positions_zyx[:, 2] - x)
        k = int(np.argmin(d))
        if k in self.picks:
            self.picks.remove(k)
        self.picks.append(k)
        self._draw_marks()
        if self._rows:
            self._draw()
        self.picked.emit(k)
        return k

    def _scene_clicked(self, ev: object) -> None:
        """A click anywhere in the images: a pick when it lands on the max projection."""
        scene_pos = ev.scenePos()  # type: ignore[attr-defined]
        if self._mip is None or not self.mip_view.sceneBoundingRect().contains(scene_pos):
            return
        pos = self.mip_view.mapSceneToView(scene_pos)  # image pixels (x, y)
        s = self._stride
        self.pick_at(float(pos.y()) * s, float(pos.x()) * s)

    def _draw_marks(self) -> None:
        if not self.picks or not len(self.positions_zyx):
            self.pick_marks.setData([], [])
            return
        p = self.positions_zyx[list(self.picks)]
        s = self._stride
        self.pick_marks.setData(
            p[:, 2] / s, p[:, 1] / s, pen=[pg.mkPen(c) for c in PICK_COLOURS[: len(p)]]
        )

    def clear(self, message: str) -> None:
        """Empty the readout views and say why (another file, or none, is shown now)."""
        self._rows.clear()
        self._x_span = None
        self.picks.clear()
        self._mip = None
        for curve in (*self.drift_curves.values(), self.drift_norm, *self.pick_curves):
            curve.setData([], [])
        for curve in (self.bright_mean, self.bright_lo, self.bright_hi):
            curve.setData([], [])
        self.raster_image.clear()
        self.mip_image.clear()
        self.pick_marks.setData([], [])
        self.status.setText(message)
