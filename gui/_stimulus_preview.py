"""A small numpy picture of what the fish sees: one frame record drawn as on the projector.

The same geometry as the PsychoPy renderer (stimuli/render/_psychopy_draw.py),
re-done in numpy so the GUI neither needs an OpenGL context nor imports
PsychoPy: the fish's frame (mm, x right, y forward, origin under the head) is
mapped onto the screen by the display calibration (pixels per mm, fish position
and heading), then each :class:`~stimuli.state.Look` is evaluated per pixel.
"""

from __future__ import annotations

import math

import numpy as np

from rig.core.config import DisplayConfig
from stimuli.render.dots import dot_positions_mm
from stimuli.state import Look

__all__ = ["StimulusPreview"]


class StimulusPreview:
    """Renders frame records at ``width`` pixels wide (the screen's aspect ratio), luminance 0..1."""

    def __init__(self, display: DisplayConfig, width: int = 200, n_dots: int = 300) -> None:
        w_px, h_px = display.size_px
        self.width = int(width)
        self.height = max(1, round(width * h_px / w_px))
        self.n_dots = n_dots
        self.px_per_mm = display.px_per_mm
        self.scale = self.width / w_px  # preview px per screen px
        origin = np.asarray(display.fish_position_px, dtype=np.float64)
        rot = math.radians(display.fish_heading_deg - 90.0)
        c, s = math.cos(rot), math.sin(rot)
        self._rot = np.array([[c, -s], [s, c]])
        self._origin = origin
        # pixel centres on the screen (px from the screen centre, y up), row 0 at the top
        sx = ((np.arange(self.width) + 0.5) / self.width - 0.5) * w_px
        sy = (0.5 - (np.arange(self.height) + 0.5) / self.height) * h_px
        gx, gy = np.meshgrid(sx, sy)
        screen = np.stack([gx, gy], axis=-1)
        fish = ((screen - origin) @ self._rot) / self.px_per_mm
        self.x_mm = fish[..., 0]
        self.y_mm = fish[..., 1]
        corners = np.array([[-w_px, -h_px], [-w_px, h_px], [w_px, -h_px], [w_px, h_px]]) / 2.0
        self.reach_px = float(np.max(np.hypot(*(corners - origin).T))) + 2.0

    @property
    def fish_pixel(self) -> tuple[float, float]:
        """Where the fish's head is in the preview image (column, row)."""
        col = (self._origin[0] * self.scale) + self.width / 2.0
        row = self.height / 2.0 - self._origin[1] * self.scale
        return float(col), float(row)

    def render(self, rec: np.void) -> np.ndarray:
        """(height, width) float32 luminance for one frame record."""
        look = int(rec["look"])
        if look == Look.UNIFORM:
            return self._uniform(float(rec["luminance"]))
        if look == Look.GRATING:
            return self._grating(rec)
        if look == Look.HALVES:
            u = self._along(float(rec["angle_deg"]))
            return np.where(
                u < 0.0, _clip(rec["left_luminance"]), _clip(rec["right_luminance"])
            ).astype(np.float32)
        if look == Look.DOTS:
            return self._dots(rec)
        if look == Look.DISK:
            img = self._uniform(float(rec["luminance"]))
            r = float(rec["disk_radius_mm"])
            if r > 0.0:
                inside = np.hypot(self.x_mm - rec["disk_x_mm"], self.y_mm - rec["disk_y_mm"]) <= r
                img[inside] = _clip(rec["contrast"])
            return img
        raise ValueError(f"frame {int(rec['frame'])}: unknown look {look}")

    # -- looks --------------------------------------------------------------------------------
    def _uniform(self, luminance: float) -> np.ndarray:
        return np.full((self.height, self.width), _clip(luminance), dtype=np.float32)

    def _along(self, angle_deg: float) -> np.ndarray:
        a = math.radians(angle_deg)
        return self.x_mm * math.cos(a) + self.y_mm * math.sin(a)

    def _grating(self, rec: np.void) -> np.ndarray:
        mean, contrast = float(rec["luminance"]), float(rec["contrast"])
        low, high = _clip(mean * (1.0 - contrast)), _clip(mean * (1.0 + contrast))
        freq = float(rec["spatial_freq"])
        # the bright bar is centred position_mm along the grating normal, as on the projector
        phase = np.mod(freq * (self._along(float(rec["angle_deg"])) - rec["position_mm"]) + 0.5, 1)
        bright = (phase >= 0.25) & (phase < 0.75)
        return np.where(bright, high, low).astype(np.float32)

    def _dots(self, rec: np.void) -> np.ndarray:
        img = self._uniform(float(rec["luminance"]))
        pos = dot_positions_mm(rec, self.n_dots, 2.0 * self.reach_px / self.px_per_mm)
        # fish mm -> screen px -> preview pixel (column, row)
        screen = self._origin + self.px_per_mm * (pos @ self._rot.T)
        col = screen[:, 0] * self.scale + self.width / 2.0
        row = self.height / 2.0 - screen[:, 1] * self.scale
        r = max(0.5, float(rec["disk_radius_mm"]) * self.px_per_mm * self.scale)
        # stamp one disk stencil at every dot centre (all dots at once)
        ri = math.ceil(r)
        dy, dx = np.mgrid[-ri : ri + 1, -ri : ri + 1]
        inside = dx**2 + dy**2 <= r * r
        dy, dx = dy[inside], dx[inside]
        rows = np.floor(row).astype(np.int64)[:, None] + dy[None, :]
        cols = np.floor(col).astype(np.int64)[:, None] + dx[None, :]
        on = (rows >= 0) & (rows < self.height) & (cols >= 0) & (cols < self.width)
        img[rows[on], cols[on]] = _clip(rec["contrast"])
        return img


def _clip(x: float | np.floating) -> float:
    return min(1.0, max(0.0, float(x)))
