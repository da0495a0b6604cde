"""The live view's pause and scroll-back, and a past session shown over its whole length.

The second layer of :class:`~gui.panels.live.LivePanel`, on the signal plots
(``gui.panels._live_traces``): while live the plots follow "now"; paused, they hold the last
``HISTORY_S`` seconds to pan and zoom in time (recording goes on); a past session is always
paused and draws the stretch in view from the file's overview or, zoomed in, its samples.
Split off because it is the one place the plots' time axis is the person's rather than the
clock's: everything that decides what stretch of time is drawn, and at what resolution.
"""

from __future__ import annotations

import time

import numpy as np

from gui._live_buffers import minmax_bins
from gui._past_session import ZOOM_S, PastSession
from gui._qt import QtCore, QtWidgets
from gui.panels._live_traces import HISTORY_S, WINDOW_S, TracePlots, _finite_span

#: Points per drawn trace while paused (the whole history, zoomable).
PAUSED_BINS = 6000


class PausablePlots(TracePlots):
    """The signal plots with Pause / Live, Auto y, and a past session to scroll through."""

    def _build_pause(self) -> QtWidgets.QWidget:
        """Make the pause controls and return the plots' column (status line, plots, buttons)."""
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
        return left

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
