"""The live view's images: a plane and the maximum projection of the newest volume, with
their contrast (one histogram for both), and a small picture of what the fish sees now.

Beside the signal plots in :class:`~gui.panels.live.LivePanel`, and independent of them:
volumes come at the microscope's rate and the stimulus picture at most ``PREVIEW_HZ``,
neither with the plots' per-tick histories, and the contrast the person sets stays until
"Auto contrast" whatever the plots do. A mixin (no Qt base of its own) so the panel keeps
one widget and every name the app, the tests and the benchmarks use on it.
"""

from __future__ import annotations

import time

import numpy as np

from gui._qt import QtWidgets, pg
from gui._shared_live import VolumePreview
from gui._stimulus_preview import StimulusPreview

#: The stimulus picture is redrawn at most this often.
PREVIEW_HZ = 10.0


class ImageViews:
    """Plane, projection and stimulus images, their histogram and the plane chooser."""

    def _build_images(self) -> QtWidgets.QWidget:
        """Make the images and return their column (the plane chooser and contrast under it)."""
        self.preview: StimulusPreview | None = None
        self._preview_at = -np.inf
        self.volume_t = -1
        self._volume: VolumePreview | None = None
        self._setting_levels = False

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
        return right

    def auto_levels(self) -> None:
        self.manual_levels = False
        self._draw_volume()

    def _levels_by_hand(self) -> None:
        if not self._setting_levels:
            self.manual_levels = True

    def _levels_moved(self) -> None:
        self.mip_image.setLevels(self.histogram.getLevels())

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
