"""The live view: tail signal, swims, the stimulus and the brain while the session records.

Left: both tail channels (in mV), swim power with detected bouts, the stimulus
velocity (mm/s) and the closed-loop gain on its own axis. Right: one plane of
the newest volume, the volume's maximum projection, and a small picture of what
the fish sees now. Everything is drawn from histories of the last few seconds
at screen resolution, so a refresh costs the same at any point of a two-hour
session.

:class:`LivePanel` is one widget assembled from three parts, one module per job:

- ``gui.panels._live_traces``: the signal plots, their histories, and drawing the last
  seconds of them each tick (why the axes stay still is there);
- ``gui.panels._live_pause``: on those plots, Pause / Live, scrolling back, and a past
  session over its whole length (everything that decides what stretch of time is drawn);
- ``gui.panels._live_images``: beside them, the volume's plane and projection with their
  histogram, and the stimulus picture.

This module keeps what joins them: the layout, a new rig or session or file resetting every
part at once, and taking in the engine's batches.
"""

from __future__ import annotations

import numpy as np

from gui._engine_process import LiveBatch
from gui._qt import QtCore, QtWidgets
from gui._stimulus_preview import StimulusPreview
from gui.panels._live_images import ImageViews
from gui.panels._live_pause import PausablePlots
from rig.core.config import RigConfig
from stimuli.protocol import Protocol

__all__ = ["LivePanel"]


class LivePanel(ImageViews, PausablePlots):
    """The live view (see the module): signal plots on the left, images on the right."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_traces()
        right = self._build_images()
        left = self._build_pause()
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
