"""The live view's signal plots: tail, swim power with bouts, stimulus velocity and gain.

The first layer of :class:`~gui.panels.live.LivePanel` (the pause and scroll-back layer,
``gui.panels._live_pause``, sits on it; the images, ``gui.panels._live_images``, are beside
it): the plots, the histories behind them, and drawing the last seconds of them. Split off
because it is the part that runs on every tick and whose cost the benchmarks measure
(``_draw_traces``): what it draws and how it keeps its axes still belong together.

Velocity and gain are drawn from the displayed stimulus frames (``flip_sample``,
``velocity``, ``gain``): exactly what the file's rows 8–9 hold, and what the
fish saw. The closed-loop state would be stale outside closed-loop blocks.
The raw tail traces carry no threshold lines: the detector thresholds a sliding
variance, not the raw voltage, so lines on the raw trace would be crossed by
resting noise; its threshold is the zero of the swim-power plot (power is the
supra-threshold part), where a bout is drawn.

Axes are the slowest thing to repaint (their text), so they are kept still:
time runs from -5 s to "now" at 0 (the session time is in the status line),
and a y range changes only when the data leave it or shrink well inside it.
Titles name the curves by colour instead of legends, which covered the newest
data at the "now" edge.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gui._live_buffers import TimeRing, peak_decimate
from gui._qt import QtCore, QtWidgets, pg

LEFT, RIGHT = "#1f77b4", "#d62728"
BOUT, VELOCITY, GAIN = "#2fb344", "#7048e8", "#c27c00"
#: Seconds of signal on screen while live.
WINDOW_S = 5.0
#: Seconds kept for scrolling back while paused (60 s of tail: 2.9 MB).
HISTORY_S = 60.0
#: Points per drawn trace (min/max pairs); about one per screen pixel.
TRACE_BINS = 800


class StableYRange:
    """A plot's y range that moves only when it must, so its axis is rarely redrawn.

    Once the person scales the plot's y axis (mouse wheel or drag on it), that scale
    is theirs until they ask for automatic scaling again (:meth:`automatic`).
    """

    def __init__(self, plot: pg.PlotItem, floor: tuple[float, float]) -> None:
        self.plot = plot
        self.floor = floor
        self.range: tuple[float, float] | None = None
        self.manual = False
        plot.disableAutoRange(axis="y")
        plot.getViewBox().sigRangeChangedManually.connect(self._by_hand)

    def _by_hand(self, mask: object) -> None:
        if isinstance(mask, list | tuple) and len(mask) > 1 and not mask[1]:
            return  # only x moved (scrolling back in time)
        self.manual = True

    def automatic(self) -> None:
        self.manual = False
        self.range = None

    def reset(self) -> None:
        self.range = None

    def update(self, lo: float, hi: float) -> None:
        if self.manual:
            return
        lo, hi = min(lo, self.floor[0]), max(hi, self.floor[1])
        cur = self.range
        if cur is not None and cur[0] <= lo and hi <= cur[1] and hi - lo > 0.4 * (cur[1] - cur[0]):
            return
        pad = 0.1 * (hi - lo)
        self.range = (lo - pad, hi + pad)
        self.plot.setYRange(*self.range, padding=0)


def _finite_span(*arrays: np.ndarray) -> tuple[float, float] | None:
    vals = [a[np.isfinite(a)] for a in arrays]
    vals = [v for v in vals if len(v)]
    if not vals:
        return None
    return float(min(v.min() for v in vals)), float(max(v.max() for v in vals))


class TracePlots(QtWidgets.QWidget):
    """The signal plots and their histories (the first layer of the live view)."""

    #: Emitted after every refresh of the plots (the benchmark counts these).
    refreshed = QtCore.pyqtSignal()

    def _build_traces(self) -> None:
        self.fs = 6000.0
        self.condition_names: list[str] = []
        self.refreshes = 0
        self.dropped_chunks = 0
        #: Which file (or live session) the views show; every status line starts with it.
        self.source = "nothing shown"

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        # a widget, not text in the plots' scene: there, every new text re-laid out every plot
        # and their axes at each tick (most of a tick's repaint)
        self.status_text = QtWidgets.QLabel()
        self.status_text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.status_text.setStyleSheet("font-size: 9pt; background: white; padding: 2px;")
        self.status_text.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.status_text.setMinimumHeight(2 * self.status_text.fontMetrics().height() + 6)
        self.tail_plots: list[pg.PlotItem] = []
        self.tail_curves: list[pg.PlotDataItem] = []
        # short axis titles: at 768 px of screen each plot is ~70 px tall
        for i, (name, colour) in enumerate((("tail L", LEFT), ("tail R", RIGHT))):
            p = self.plots.addPlot(row=i, col=0)
            # one fixed unit for both channels (auto SI prefixes gave V on one and mV on the other)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.setLabel("left", f"<span style='color:{colour}'>{name}</span> mV")
            curve = p.plot(pen=pg.mkPen(colour, width=1))
            self.tail_plots.append(p)
            self.tail_curves.append(curve)

        self.power_plot = self.plots.addPlot(row=2, col=0)
        self.power_plot.setLabel(
            "left",
            f"swim <span style='color:{LEFT}'>L</span> <span style='color:{RIGHT}'>R</span>"
            f" <span style='color:{BOUT}'>bout</span>",
        )
        self.power_plot.setToolTip(
            "Supra-threshold swim power in units of the detector's threshold: 0 is the "
            "threshold, above it the channel is swimming; green bars are detected bouts"
        )
        self.power_curves = [
            self.power_plot.plot(pen=pg.mkPen(LEFT, width=1)),
            self.power_plot.plot(pen=pg.mkPen(RIGHT, width=1)),
        ]
        self.bout_curve = self.power_plot.plot(pen=pg.mkPen(BOUT, width=6), connect="pairs")
        self.velocity_plot = self.plots.addPlot(row=3, col=0)
        self.velocity_plot.getAxis("left").enableAutoSIPrefix(False)
        self.velocity_plot.setLabel("left", f"<span style='color:{VELOCITY}'>vel.</span> mm/s")
        self.velocity_curve = self.velocity_plot.plot(pen=pg.mkPen(VELOCITY, width=2))
        self.gain_plot = self.plots.addPlot(row=4, col=0)
        self.gain_plot.getAxis("left").enableAutoSIPrefix(False)
        self.gain_plot.setLabel("left", f"<span style='color:{GAIN}'>gain</span>")
        self.gain_plot.setLabel("bottom", "seconds before now")
        self.gain_curve = self.gain_plot.plot(pen=pg.mkPen(GAIN, width=2))
        self.plots.ci.layout.setRowStretchFactor(4, 1)
        for p in (*self.tail_plots, self.power_plot, self.velocity_plot):
            p.setXLink(self.gain_plot)
            p.hideAxis("bottom")
        self.trace_plots = (
            *self.tail_plots,
            self.power_plot,
            self.velocity_plot,
            self.gain_plot,
        )
        for p in self.trace_plots:
            # the wheel scales one plot's y axis; time moves only while paused
            p.setMouseEnabled(x=False, y=True)
            p.hideButtons()
            p.getAxis("left").setWidth(60)  # equal widths keep the time axes aligned
        self.gain_plot.setXRange(-WINDOW_S, 0.0, padding=0)
        self.y_ranges = [
            *(StableYRange(p, (-10.0, 10.0)) for p in self.tail_plots),
            StableYRange(self.power_plot, (-0.6, 3.0)),
            StableYRange(self.velocity_plot, (-1.0, 1.0)),
            StableYRange(self.gain_plot, (0.0, 1.0)),
        ]

    def _new_histories(self) -> None:
        gap = 0.05  # a jump in time longer than this (chunks the GUI never saw) breaks the line
        n = int(self.fs * (HISTORY_S + 1))
        self.tail = TimeRing(n, 2, gap)
        self.power = TimeRing(n // 5, 2, gap)
        # velocity, gain per displayed frame (at flip_sample); frames come at the display's rate
        self.stimulus = TimeRing(max(64, n // 20), 2, 0.25)
        self.bouts: deque[tuple[float, float, float]] = deque(maxlen=500)
        self.bout_count = 0
        self.threshold = np.array([np.inf, np.inf])
        self.last_chunk_t = 0.0
        self.condition = -1
        self.swimming = False
        self.velocity = 0.0
        self.gain = 0.0
        for r in self.y_ranges:
            r.reset()

    def add_frames(self, frames: np.ndarray) -> None:
        """Displayed stimulus frames (FRAME_DTYPE): the velocity and gain the file's rows 8–9 get."""
        if not len(frames):
            return
        t = frames["flip_sample"].astype(np.float64) / self.fs
        keep = t > self.stimulus.last_t  # the renderer reports each frame once; be safe anyway
        if not keep.any():
            return
        f = frames[keep]
        self.stimulus.extend(t[keep], np.stack([f["velocity"], f["gain"]], axis=1))
        self.velocity, self.gain = float(f["velocity"][-1]), float(f["gain"][-1])

    def _draw_traces(self, window_s: float = WINDOW_S, bins: int = TRACE_BINS) -> None:
        t_end = self.last_chunk_t
        since = t_end - window_s
        t, v = self.tail.view(since)
        for i, curve in enumerate(self.tail_curves):
            if len(t):
                x, y = peak_decimate(t, v[:, i] * 1000.0, bins)  # V -> mV
                curve.setData(x - t_end, y, connect="finite")
                span = _finite_span(y)
                if span is not None:
                    self.y_ranges[i].update(*span)
        t, p = self.power.view(since)
        if len(t):
            spans = []
            for i, curve in enumerate(self.power_curves):
                x, y = peak_decimate(t, p[:, i], bins)
                curve.setData(x - t_end, y, connect="finite")
                spans.append(y)
            span = _finite_span(*spans)
            if span is not None:
                self.y_ranges[2].update(*span)
        shown = [b for b in self.bouts if b[1] >= since]
        if shown:
            xs = np.array([[a, max(b, a + 0.01)] for a, b, _ in shown]).ravel() - t_end
            self.bout_curve.setData(xs, np.full(len(xs), -0.3))
        else:
            self.bout_curve.setData([], [])
        t, s = self.stimulus.view(since)
        if len(t):
            self.velocity_curve.setData(t - t_end, s[:, 0], connect="finite")
            self.gain_curve.setData(t - t_end, s[:, 1], connect="finite")
            for k in (0, 1):
                span = _finite_span(s[:, k])
                if span is not None:
                    self.y_ranges[3 + k].update(*span)
        c = self.condition
        name = self.condition_names[c] if 0 <= c < len(self.condition_names) else "lead-in"
        swim = f"<b style='color:{BOUT}'>swimming</b>" if self.swimming else "resting"
        dropped = (
            f" · <span style='color:#c27c00'>live view skipped {self.dropped_chunks} chunks</span>"
            if self.dropped_chunks
            else ""
        )
        self.status_text.setText(
            f"<b>{self.source}</b><br>t = {t_end:.1f} s · condition <b>{c if c >= 0 else '-'} "
            f"{name}</b> · velocity {self.velocity:+.2f} mm/s · gain {self.gain:g} · {swim} · "
            f"bouts {self.bout_count}{dropped}"
        )

    @property
    def has_data(self) -> bool:
        """The plots hold signal (for tests and the benchmark)."""
        x, _ = self.tail_curves[0].getData()
        return x is not None and len(x) > 0
