"""The live view: tail signal, swims, the stimulus and the brain while the session records.

Left: both tail channels (in mV), swim power with detected bouts, the stimulus
velocity (mm/s) and the closed-loop gain on its own axis. Right: one plane of
the newest volume, the volume's maximum projection, and a small picture of what
the fish sees now. Everything is drawn from histories of the last few seconds
at screen resolution, so a refresh costs the same at any point of a two-hour
session.

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

import time
from collections import deque

import numpy as np

from gui._engine_process import LiveBatch
from gui._live_buffers import TimeRing, minmax_bins, peak_decimate
from gui._past_session import ZOOM_S, PastSession
from gui._qt import QtCore, QtWidgets, pg
from gui._shared_live import VolumePreview
from gui._stimulus_preview import StimulusPreview
from rig.core.config import RigConfig
from stimuli.protocol import Protocol

__all__ = ["LivePanel"]

LEFT, RIGHT = "#1f77b4", "#d62728"
BOUT, VELOCITY, GAIN = "#2fb344", "#7048e8", "#c27c00"
#: Seconds of signal on screen while live.
WINDOW_S = 5.0
#: Seconds kept for scrolling back while paused (60 s of tail: 2.9 MB).
HISTORY_S = 60.0
#: Points per drawn trace while paused (the whole history, zoomable).
PAUSED_BINS = 6000
#: Points per drawn trace (min/max pairs); about one per screen pixel.
TRACE_BINS = 800
#: The stimulus picture is redrawn at most this often.
PREVIEW_HZ = 10.0


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


class LivePanel(QtWidgets.QWidget):
    #: Emitted after every refresh of the plots (the benchmark counts these).
    refreshed = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.fs = 6000.0
        self.condition_names: list[str] = []
        self.preview: StimulusPreview | None = None
        self._preview_at = -np.inf
        self.volume_t = -1
        self._volume: VolumePreview | None = None
        self.refreshes = 0
        self.dropped_chunks = 0
        self._setting_levels = False
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

        # images: plane, max projection, stimulus
        self.images = pg.GraphicsLayoutWidget()
        # dark: a bright flash (luminance 1 = white) must stand out from the background
        self.images.setBackground("#303030")
        self.plane_title = self.images.addLabel("plane", row=0, col=0)
        self.plane_view = self.images.addViewBox(row=1, col=0, lockAspect=True, invertY=True)
        self.plane_image = pg.ImageItem(axisOrder="row-major")
        self.plane_view.addItem(self.plane_image)
        self.mip_title = self.images.addLabel("max projection", row=2, col=0)
        self.mip_view = self.images.addViewBox(row=3, col=0, lockAspect=True, invertY=True)
        self.mip_image = pg.ImageItem(axisOrder="row-major")
        self.mip_view.addItem(self.mip_image)
        self.stim_title = self.images.addLabel("stimulus", row=4, col=0)
        self.stim_view = self.images.addViewBox(row=5, col=0, lockAspect=True, invertY=True)
        self.stim_image = pg.ImageItem(axisOrder="row-major")
        self.stim_view.addItem(self.stim_image)
        self.fish_marker = pg.ScatterPlotItem(size=8, brush=pg.mkBrush("#d63939"), pen=None)
        self.stim_view.addItem(self.fish_marker)
        # contrast: one histogram for the plane and the projection (drag its levels; they
        # stay until "Auto contrast"); the images zoom and pan with the mouse
        self.histogram = pg.HistogramLUTItem(
            image=self.plane_image, orientation="horizontal", gradientPosition="bottom"
        )
        self.histogram.sigLevelsChanged.connect(self._levels_moved)
        self.histogram.sigLevelChangeFinished.connect(self._levels_by_hand)
        # under the images, as wide as they are (a narrow column at 1366 px left no room)
        self.images.addItem(self.histogram, row=6, col=0)
        self.manual_levels = False
        self.stim_view.setMouseEnabled(False, False)
        self.plane_spin = QtWidgets.QSpinBox()
        self.plane_spin.setPrefix("plane ")
        self.plane_spin.valueChanged.connect(lambda _z: self._draw_volume())

        self.auto_levels_button = QtWidgets.QPushButton("Auto contrast")
        self.auto_levels_button.clicked.connect(self.auto_levels)
        right = QtWidgets.QWidget()
        rlay = QtWidgets.QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(self.images, 1)
        irow = QtWidgets.QHBoxLayout()
        irow.addWidget(self.plane_spin, 1)
        irow.addWidget(self.auto_levels_button)
        rlay.addLayout(irow)
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip(
            f"Freeze the plots (recording goes on) to scroll back up to {HISTORY_S:.0f} s "
            "and zoom with the mouse; click again to follow live"
        )
        self.pause_button.toggled.connect(self.set_paused)
        self.auto_y_button = QtWidgets.QPushButton("Auto y")
        self.auto_y_button.setToolTip(
            "Scale every plot's y axis to its data again (the mouse wheel scales one plot)"
        )
        self.auto_y_button.clicked.connect(self.auto_y)
        left = QtWidgets.QWidget()
        llay = QtWidgets.QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.setSpacing(0)
        llay.addWidget(self.status_text)
        llay.addWidget(self.plots, 1)
        lrow = QtWidgets.QHBoxLayout()
        lrow.addWidget(self.pause_button)
        lrow.addWidget(self.auto_y_button)
        lrow.addStretch(1)
        llay.addLayout(lrow)
        self.paused = False
        #: The past session shown read-only (None: live or nothing).
        self._past: PastSession | None = None
        self._past_stim = (np.zeros(0), np.zeros((0, 2), np.float32))
        self._past_bouts = np.zeros((0, 2))
        self._past_drawn_at = -np.inf
        self._past_loader = QtCore.QTimer(self)
        self._past_loader.setInterval(0)
        self._past_loader.timeout.connect(self._load_past)
        self._past_redraw = QtCore.QTimer(self)
        self._past_redraw.setSingleShot(True)
        self._past_redraw.setInterval(50)  # a zoom or a drag redraws once it pauses
        self._past_redraw.timeout.connect(self._draw_past)
        self.gain_plot.getViewBox().sigXRangeChanged.connect(self._past_range_moved)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self._new_histories()

    # -- setup ------------------------------------------------------------------------------
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

    def set_rig(self, rig: RigConfig) -> None:
        self.fs = rig.daq.sample_rate_hz
        self.preview = StimulusPreview(rig.display, width=200)
        col, row = self.preview.fish_pixel
        self.fish_marker.setData([col], [row])
        z = rig.microscope.planes_per_volume
        self.plane_spin.setRange(0, z - 1)
        self.plane_spin.setValue(z // 2)
        self.stim_image.setImage(
            np.zeros((self.preview.height, self.preview.width), np.float32), levels=(0.0, 1.0)
        )
        self._new_histories()

    def new_session(self, protocol: Protocol) -> None:
        self._leave_past()
        self.condition_names = [c.name for c in protocol.conditions]
        self._new_histories()
        self.set_paused(False)
        self.volume_t = -1
        self._volume = None
        self.dropped_chunks = 0
        for item in (self.plane_image, self.mip_image):
            item.clear()
        self.plane_title.setText("plane")
        self.mip_title.setText("max projection")

    def set_source(self, text: str) -> None:
        """Say which file the views show (a live session's file, or a past one read-only)."""
        self.source = text

    def clear_views(self, message: str) -> None:
        """Empty every view and say why (a file that failed to open shows nothing of the last)."""
        self._leave_past()
        self._new_histories()
        self.set_paused(False)
        self.volume_t = -1
        self._volume = None
        self.dropped_chunks = 0
        for curve in (*self.tail_curves, *self.power_curves, self.bout_curve):
            curve.setData([], [])
        self.velocity_curve.setData([], [])
        self.gain_curve.setData([], [])
        for item in (self.plane_image, self.mip_image):
            item.clear()
        self.plane_title.setText("plane")
        self.mip_title.setText("max projection")
        self.source = message
        self.status_text.setText(message)

    # -- data -------------------------------------------------------------------------------
    def refresh(self, batch: LiveBatch) -> None:
        """Take in a batch from the engine and redraw (GUI timer, <= 30 Hz); no-op if empty."""
        if not batch.chunks and batch.volume is None:
            return
        fs = self.fs
        for ch in batch.chunks:
            n = len(ch.tail)
            self.tail.extend((ch.s0 + np.arange(n)) / fs, ch.tail)
            e = len(ch.power)
            if e:
                self.power.extend((ch.s0 + (np.arange(e) + 1) * (n / e)) / fs, ch.power)
            self.add_frames(ch.frames)
            self.last_chunk_t = (ch.s0 + n) / fs
        if batch.chunks:
            last = batch.chunks[-1]
            self.threshold = np.asarray(last.threshold, dtype=float)
            self.condition, self.swimming = last.condition, last.swimming
        for b in batch.bouts:
            self.bouts.append(
                (b["start_sample"] / fs, b["stop_sample"] / fs, float(b["peak_power"]))
            )
        self.bout_count += len(batch.bouts)
        self.dropped_chunks = batch.dropped_chunks
        if batch.volume is not None:
            self.show_preview(batch.volume)
        if batch.frame is not None:
            self._draw_stimulus(batch.frame)
        if self.paused:
            return  # the histories fill; the plots stay where the person is looking
        self._draw_traces()
        self.refreshes += 1
        self.refreshed.emit()

    # -- the person's controls -----------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        """Freeze the plots on the last ``HISTORY_S`` seconds (pan and zoom in time), or follow.
        A past session stays paused: there is nothing to follow."""
        paused = paused or self._past is not None
        self.paused = paused
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)
        self.pause_button.setText("Live" if paused else "Pause")
        for p in self.trace_plots:
            p.setMouseEnabled(x=paused, y=True)
        if self._past is not None:
            self._draw_past()
        elif paused:
            self._draw_traces(HISTORY_S, PAUSED_BINS)
        else:
            self.gain_plot.setXRange(-WINDOW_S, 0.0, padding=0)
            self._draw_traces()

    def auto_y(self) -> None:
        for r in self.y_ranges:
            r.automatic()
        if self._past is not None:
            self._draw_past()
        else:
            self._draw_traces(HISTORY_S if self.paused else WINDOW_S)

    def auto_levels(self) -> None:
        self.manual_levels = False
        self._draw_volume()

    def _levels_by_hand(self) -> None:
        if not self._setting_levels:
            self.manual_levels = True

    def _levels_moved(self) -> None:
        self.mip_image.setLevels(self.histogram.getLevels())

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

    def show_session(self, past: PastSession) -> None:
        """A recorded session (read-only), over its whole length: the same plots as live,
        in session time, to scroll and zoom over (the overview fills in as it is read)."""
        self._new_histories()
        self.fs = past.sample_rate_hz
        fs = self.fs
        # the whole session's frames and bouts (the live histories keep the last minute)
        f = past.frames
        self._past_stim = (
            f["flip_sample"].astype(np.float64) / fs,
            np.stack([f["velocity"], f["gain"]], axis=1).astype(np.float32),
        )
        self._past_bouts = np.stack(
            [past.bouts["start_sample"] / fs, past.bouts["stop_sample"] / fs], axis=1
        ).reshape(-1, 2)
        self.bout_count = len(past.bouts)
        self.last_chunk_t = past.duration_s
        self.condition = past.condition
        self.set_paused(True)
        self.pause_button.setEnabled(False)  # nothing to follow: the file is the whole story
        self.gain_plot.setLabel("bottom", "session time (s)")
        self.gain_plot.setXRange(0.0, max(past.duration_s, 1.0 / fs), padding=0)
        self._past = past
        self._draw_past()
        if not past.overview.done:
            self._past_loader.start()
        self.refreshes += 1
        self.refreshed.emit()

    def _leave_past(self) -> None:
        if self._past is None:
            return
        self._past = None
        self._past_loader.stop()
        self.pause_button.setEnabled(True)
        self.gain_plot.setLabel("bottom", "seconds before now")

    def _load_past(self) -> None:
        """One block of the overview (the app's timer: the window stays responsive)."""
        past = self._past
        if past is None or past.overview.done:
            self._past_loader.stop()
            return
        past.overview.step()
        now = time.monotonic()
        if past.overview.done:
            self._past_loader.stop()
        elif now - self._past_drawn_at < 0.5:
            return  # redrawn twice a second while it reads
        self._past_drawn_at = now
        self._draw_past()

    def _past_range_moved(self) -> None:
        if self._past is not None:
            self._past_redraw.start()

    def _draw_past(self) -> None:
        """The visible stretch of the past session: the file's samples when it is at most
        ``ZOOM_S`` long, else the overview's min/max stretches."""
        past = self._past
        if past is None:
            return
        fs, dur = past.sample_rate_hz, past.duration_s
        x0, x1 = self.gain_plot.viewRange()[0]
        x0, x1 = max(0.0, x0), min(dur, x1)
        ov = past.overview
        # the overview while it is fine enough for the span shown; the file's samples below
        if x1 - x0 <= ZOOM_S and (x1 - x0) * fs / ov.per < PAUSED_BINS // 2:
            ts, tail, ps, power = past.read_range(int(x0 * fs), int(np.ceil(x1 * fs)) + 1)
            t, tp = ts / fs, ps / fs
            tails = [minmax_bins(t, tail[:, i] * 1000.0, PAUSED_BINS) for i in (0, 1)]
            powers = [minmax_bins(tp, power[:, i], PAUSED_BINS) for i in (0, 1)]
            resolution = "every sample" if len(t) <= 2 * PAUSED_BINS else "min/max per pixel"
        else:
            x, tail, power = ov.between(x0, x1)
            tails = [(x, tail[:, i] * 1000.0) for i in (0, 1)]
            powers = [(x, power[:, i]) for i in (0, 1)]
            resolution = f"min/max per {ov.per / fs:.2f} s"
        for i, (curve, (x, y)) in enumerate(zip(self.tail_curves, tails, strict=True)):
            curve.setData(x, y, connect="finite")
            span = _finite_span(y)
            if span is not None:
                self.y_ranges[i].update(*span)
        for curve, (x, y) in zip(self.power_curves, powers, strict=True):
            curve.setData(x, y, connect="finite")
        span = _finite_span(*(y for _, y in powers))
        if span is not None:
            self.y_ranges[2].update(*span)
        bouts = self._past_bouts
        shown = bouts[(bouts[:, 1] >= x0) & (bouts[:, 0] <= x1)]
        if len(shown):
            xs = np.stack([shown[:, 0], np.maximum(shown[:, 1], shown[:, 0] + 0.01)], axis=1)
            self.bout_curve.setData(xs.ravel(), np.full(xs.size, -0.3))
        else:
            self.bout_curve.setData([], [])
        t, st = self._past_stim
        if len(t):
            i0 = max(0, int(np.searchsorted(t, x0, side="right")) - 1)  # the frame in force
            i1 = int(np.searchsorted(t, x1, side="right"))
            t, st = t[i0:i1], st[i0:i1]
            for k, curve in enumerate((self.velocity_curve, self.gain_curve)):
                x, y = minmax_bins(t, st[:, k], PAUSED_BINS)
                curve.setData(x, y, connect="finite")
                span = _finite_span(y)
                if span is not None:
                    self.y_ranges[3 + k].update(*span)
        loading = (
            ""
            if ov.done
            else f" · <span style='color:#c27c00'>reading the session: {ov.fraction:.0%}</span>"
        )
        c = self.condition
        name = self.condition_names[c] if 0 <= c < len(self.condition_names) else "lead-in"
        self.status_text.setText(
            f"<b>{self.source}</b><br>the whole session: {dur:.1f} s · shown {x0:.1f}–{x1:.1f} s "
            f"({resolution}) · last condition <b>{c if c >= 0 else '-'} {name}</b> · bouts "
            f"{self.bout_count}{loading}"
        )

    def show_volume(self, t: int, volume: np.ndarray) -> None:
        """A whole volume (z, y, x) held here (a file's) to show; older ones are ignored."""
        if t <= self.volume_t:
            return
        self.show_preview(VolumePreview.of(t, volume, self.plane_spin.value()))

    def show_preview(self, preview: VolumePreview) -> None:
        """A volume's max projection and one plane, made where the volume is (the engine
        process): the window uploads two small images. Older ones than shown are ignored."""
        if preview.t <= self.volume_t:
            return
        self.volume_t = preview.t
        self._volume = preview
        self._draw_volume()

    def _draw_volume(self) -> None:
        pv = self._volume
        if pv is None:
            return
        z = min(self.plane_spin.value(), pv.n_planes - 1)
        if z != pv.z:
            plane = pv.read_plane(z)  # None: that volume is gone, the next one comes soon
            if plane is None:
                return
            pv = VolumePreview(pv.t, pv.n_planes, pv.mip, pv.levels, z, plane, pv.read_plane)
            self._volume = pv
        if self.manual_levels:
            lo, hi = self.histogram.getLevels()
        else:
            lo, hi = pv.levels
        levels = (float(lo), float(max(hi, lo + 1)))
        self._setting_levels = True
        try:
            self.plane_image.setImage(pv.plane, levels=levels)
            self.mip_image.setImage(pv.mip, levels=levels)
            self.histogram.setLevels(*levels)
        finally:
            self._setting_levels = False
        self.plane_title.setText(f"volume {self.volume_t}, plane {z}")
        self.mip_title.setText(f"volume {self.volume_t}, max projection")

    def _draw_stimulus(self, rec: np.void) -> None:
        now = time.monotonic()
        if self.preview is None or now - self._preview_at < 1.0 / PREVIEW_HZ:
            return
        self._preview_at = now
        self.stim_image.setImage(self.preview.render(rec), levels=(0.0, 1.0))
        v = float(rec["velocity"])
        self.stim_title.setText(f"stimulus: frame {int(rec['frame'])}, {v:+.1f} mm/s")

    @property
    def has_data(self) -> bool:
        """The plots hold signal (for tests and the benchmark)."""
        x, _ = self.tail_curves[0].getData()
        return x is not None and len(x) > 0
