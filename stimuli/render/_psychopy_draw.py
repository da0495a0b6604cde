"""Drawing one frame record on a PsychoPy window calibrated in millimetres under the fish.

A frame record (:data:`stimuli.state.FRAME_DTYPE`) describes what the fish sees
in its own frame (mm; x to its right, y forward, origin under its head; angles
counter-clockwise from +x). :class:`FishFrame` maps that frame onto the screen
from the display calibration, and :class:`FrameDrawer` has one routine per
:class:`~stimuli.state.Look`. Every routine paints the whole window, so a frame
never shows leftovers of the previous one.

Importing this module opens a connection to the X display (pyglet does so when
``psychopy.visual`` is imported), so only the renderer process and the pixel
tests import it; the engine never does.
"""

from __future__ import annotations

import math
import sys
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike
from psychopy import logging as psychopy_logging
from psychopy import visual
from pyglet import gl as pyglet_gl

from rig.core.config import DisplayConfig
from rig.core.errors import DeviceError
from stimuli.render.dots import dot_positions_mm
from stimuli.render.gamma import drive_level
from stimuli.render.sync_patch import patch_centre_px
from stimuli.state import Look, blank_frame

__all__ = ["FishFrame", "FrameDrawer", "luminance_to_rgb", "open_window", "x_colour_depth"]

# PsychoPy logs every attribute change and monitor-calibration fallback to the
# console; the rig has its own event log.
psychopy_logging.console.setLevel(psychopy_logging.CRITICAL)

#: Samples across one grating period in the grating's texture; nearest-neighbour
#: sampling keeps the square wave's edges sharp at any spatial frequency.
_GRATING_TEX_RES = 256


def luminance_to_rgb(luminance: float, gamma: float = 1.0) -> float:
    """PsychoPy's signed rgb (-1 black .. +1 white) for a relative luminance 0..1.

    ``gamma`` is the display's measured gamma (``display.gamma``): the drawn level is
    corrected so that the light, not the pixel value, is linear in ``luminance``.
    """
    return 2.0 * drive_level(luminance, gamma) - 1.0


class FishFrame:
    """Maps the fish's frame (mm) onto screen pixels (from the screen centre, y up).

    The fish's head sits at ``fish_position_px`` and it faces ``fish_heading_deg``
    (counter-clockwise from screen +x, 90 = screen up). The fish frame is
    right-handed like the screen, so the mapping is a rotation by
    ``heading - 90`` and a scale: with heading 90, fish-right is screen-right.
    """

    def __init__(self, display: DisplayConfig) -> None:
        self.px_per_mm = display.px_per_mm
        self.origin_px = np.asarray(display.fish_position_px, dtype=np.float64)
        self.rotation_deg = display.fish_heading_deg - 90.0
        self.size_px = display.size_px
        a = math.radians(self.rotation_deg)
        self._rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    def to_screen(self, xy_mm: ArrayLike) -> np.ndarray:
        """Fish-frame points (..., 2) in mm -> screen points (..., 2) in px."""
        p = np.asarray(xy_mm, dtype=np.float64)
        result: np.ndarray = self.origin_px + self.px_per_mm * (p @ self._rot.T)
        return result

    def to_fish(self, xy_px: ArrayLike) -> np.ndarray:
        """Screen points (..., 2) in px -> fish-frame points (..., 2) in mm."""
        p = np.asarray(xy_px, dtype=np.float64) - self.origin_px
        result: np.ndarray = (p @ self._rot) / self.px_per_mm
        return result

    def screen_angle(self, angle_deg: float) -> float:
        """A direction in the fish frame -> the same direction on screen (deg ccw from +x)."""
        return float(angle_deg) + self.rotation_deg

    @cached_property
    def reach_px(self) -> float:
        """Distance from the fish's head to the farthest window corner: what must be covered."""
        w, h = self.size_px
        corners = np.array([[-w, -h], [-w, h], [w, -h], [w, h]], dtype=np.float64) / 2.0
        return float(np.max(np.hypot(*(corners - self.origin_px).T))) + 2.0


def x_colour_depth() -> int | None:
    """Bits per pixel of the X screen pyglet draws on (None where there is no X11)."""
    if not sys.platform.startswith("linux"):
        return None
    import pyglet
    from pyglet.libs.x11 import xlib

    shown = pyglet.canvas.get_display()
    handle = getattr(shown, "_display", None)
    if handle is None:
        return None
    return int(xlib.XDefaultDepth(handle, getattr(shown, "x_screen", 0)))


def open_window(display: DisplayConfig) -> visual.Window:
    """The stimulus window: pixel units, black, signed rgb colours, no mouse cursor."""
    depth = x_colour_depth()
    if depth is not None and depth < 24:
        # pyglet finds no 8-bit-per-channel visual there and waits forever for the window.
        raise DeviceError(
            f"display: the X screen has {depth}-bit colour; the stimulus needs 24-bit "
            "(8 bits per channel): set the screen's depth to 24 (Xvfb: -screen 0 WxHx24)"
        )
    try:
        return visual.Window(
            size=display.size_px,
            screen=display.screen,
            fullscr=display.fullscreen,
            units="pix",
            color=(-1.0, -1.0, -1.0),
            colorSpace="rgb",
            allowGUI=False,
            winType="pyglet",
            waitBlanking=True,
            checkTiming=False,
            useFBO=False,
        )
    except Exception as err:
        raise DeviceError(
            f"display: PsychoPy could not open a {display.size_px[0]}x{display.size_px[1]} "
            f"window on screen {display.screen} ({type(err).__name__}: {err}); check that the "
            "projector is connected and DISPLAY is set, or use display.backend = 'headless'"
        ) from err


class FrameDrawer:
    """Draws frame records onto a window's back buffer (the caller flips).

    ``n_dots`` is the size of a random-dot field: the frame record does not carry
    it, so it is a drawing setting that must match the protocol's ``Dots``.
    """

    def __init__(self, win: visual.Window, display: DisplayConfig, n_dots: int = 300) -> None:
        self.win = win
        self.frame = FishFrame(display)
        self.n_dots = n_dots
        self.gamma = display.gamma
        self._patch: visual.Rect | None = None
        if display.sync_patch is not None:
            side = display.sync_patch.size_px
            self._patch = visual.Rect(
                win,
                width=side,
                height=side,
                pos=patch_centre_px(display, display.sync_patch),
                lineColor=None,
                fillColor=(-1, -1, -1),
            )
        reach = self.frame.reach_px
        w, h = display.size_px
        self._field = visual.Rect(
            win, width=w + 4, height=h + 4, pos=(0, 0), lineColor=None, fillColor=(-1, -1, -1)
        )
        self._half = visual.Rect(
            win, width=reach, height=2 * reach, lineColor=None, fillColor=(-1, -1, -1)
        )
        # A unit-diameter circle scaled by `size`: resizing it needs no new vertices.
        self._disk = visual.Circle(
            win, radius=0.5, edges=256, size=1.0, lineColor=None, fillColor=(-1, -1, -1)
        )
        self._grating = visual.GratingStim(
            win,
            tex=self._grating_texture(0.0, 1.0),
            mask=None,
            size=(2 * reach, 2 * reach),
            pos=self.frame.origin_px,
            interpolate=False,
            color=(1.0, 1.0, 1.0),
            colorSpace="rgb",
        )
        self._grating_levels = (0.0, 1.0)
        self._dots: visual.ElementArrayStim | None = None

    # -- public -------------------------------------------------------------------------------

    def draw(self, rec: np.void) -> None:
        """Draw ``rec`` into the back buffer."""
        look = int(rec["look"])
        if look == Look.UNIFORM:
            self._fill(float(rec["luminance"]))
        elif look == Look.GRATING:
            self._draw_grating(rec)
        elif look == Look.HALVES:
            self._draw_halves(rec)
        elif look == Look.DOTS:
            self._draw_dots(rec)
        elif look == Look.DISK:
            self._draw_disk(rec)
        else:
            raise ValueError(f"frame {int(rec['frame'])}: unknown look {look}")
        if self._patch is not None:
            # last, on top of the stimulus: the photodiode must see only the code
            rgb = self._rgb(float(rec["sync_level"]))
            self._patch.fillColor = (rgb, rgb, rgb)
            self._patch.draw()

    def warm_up(self) -> None:
        """Draw every look once, so shader and texture set-up happens before the first slot."""
        rec = blank_frame()
        rec["spatial_freq"], rec["contrast"], rec["luminance"] = 0.1, 1.0, 0.5
        rec["disk_radius_mm"] = 1.0
        for look in Look:
            rec["look"] = look
            self.draw(rec)
        self._fill(0.0)

    def finish(self) -> None:
        """Wait until the GPU (or the software rasteriser) has drawn everything issued so far.

        Without vsync the renderer calls this before sleeping to its frame slot,
        so that only the buffer swap is left for the slot itself.
        """
        pyglet_gl.glFinish()

    def pixels(self) -> np.ndarray:
        """The back buffer as an (height, width, 3) uint8 array, row 0 at the top of the screen."""
        img = self.win.getMovieFrame(buffer="back")
        # getMovieFrame also keeps every capture for saveMovieFrames; we only want this one.
        self.win.movieFrames.clear()
        return np.asarray(img.convert("RGB"))

    def snapshot(self, rec: np.void) -> np.ndarray:
        """Draw ``rec`` and return its pixels (for tests and previews; does not flip)."""
        self.draw(rec)
        return self.pixels()

    def dot_positions_mm(self, rec: np.void) -> np.ndarray:
        """The dot centres of a DOTS record in the fish frame (mm), shape (n_dots, 2)."""
        side_mm = 2.0 * self.frame.reach_px / self.frame.px_per_mm
        return dot_positions_mm(rec, self.n_dots, side_mm)

    # -- looks --------------------------------------------------------------------------------

    def _rgb(self, luminance: float) -> float:
        return luminance_to_rgb(luminance, self.gamma)

    def _fill(self, luminance: float) -> None:
        rgb = self._rgb(luminance)
        self._field.fillColor = (rgb, rgb, rgb)
        self._field.draw()

    def _draw_grating(self, rec: np.void) -> None:
        mean = float(rec["luminance"])
        contrast = float(rec["contrast"])
        # Michelson contrast about the mean luminance.
        levels = (
            min(1.0, max(0.0, mean * (1.0 - contrast))),
            min(1.0, max(0.0, mean * (1.0 + contrast))),
        )
        if levels != self._grating_levels:
            self._grating.tex = self._grating_texture(
                drive_level(levels[0], self.gamma), drive_level(levels[1], self.gamma)
            )
            self._grating_levels = levels
        freq = float(rec["spatial_freq"])
        g = self._grating
        g.sf = (freq / self.frame.px_per_mm, 0.0)
        # PsychoPy's ori turns clockwise; our angles turn counter-clockwise.
        g.ori = -self.frame.screen_angle(float(rec["angle_deg"]))
        # Texture coordinate at x px along the grating normal is sf*x - phase + 1/2, and
        # the bright bar is centred on coordinate 1/2: the bar centre sits at
        # phase/sf px = position_mm mm from the fish. Only the fraction matters.
        g.phase = (math.fmod(freq * float(rec["position_mm"]), 1.0), 0.0)
        g.draw()

    def _draw_halves(self, rec: np.void) -> None:
        self._fill(float(rec["right_luminance"]))
        psi = self.frame.screen_angle(float(rec["angle_deg"]))
        # The left half-plane: centred half its width to the fish's left of the boundary.
        centre = self.frame.to_screen(
            self._rotate_mm((-self.frame.reach_px / 2.0 / self.frame.px_per_mm, 0.0), rec)
        )
        rgb = self._rgb(float(rec["left_luminance"]))
        self._half.pos = centre
        self._half.ori = -psi
        self._half.fillColor = (rgb, rgb, rgb)
        self._half.draw()

    def _draw_disk(self, rec: np.void) -> None:
        self._fill(float(rec["luminance"]))
        radius_px = float(rec["disk_radius_mm"]) * self.frame.px_per_mm
        if radius_px <= 0.0:
            return
        rgb = self._rgb(float(rec["contrast"]))
        self._disk.pos = self.frame.to_screen((float(rec["disk_x_mm"]), float(rec["disk_y_mm"])))
        self._disk.size = (2.0 * radius_px, 2.0 * radius_px)
        self._disk.fillColor = (rgb, rgb, rgb)
        self._disk.draw()

    def _draw_dots(self, rec: np.void) -> None:
        self._fill(float(rec["luminance"]))
        if self._dots is None:
            self._dots = visual.ElementArrayStim(
                self.win,
                units="pix",
                nElements=self.n_dots,
                elementTex=None,
                elementMask="circle",
                texRes=128,
                interpolate=False,
                sizes=1.0,
                xys=np.zeros((self.n_dots, 2)),
                colors=(1.0, 1.0, 1.0),
                colorSpace="rgb",
            )
        rgb = self._rgb(float(rec["contrast"]))
        self._dots.xys = self.frame.to_screen(self.dot_positions_mm(rec))
        self._dots.sizes = 2.0 * float(rec["disk_radius_mm"]) * self.frame.px_per_mm
        self._dots.colors = (rgb, rgb, rgb)
        self._dots.draw()

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _rotate_mm(xy_mm: tuple[float, float], rec: np.void) -> np.ndarray:
        a = math.radians(float(rec["angle_deg"]))
        x, y = xy_mm
        return np.array([x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)])

    @staticmethod
    def _grating_texture(low: float, high: float) -> np.ndarray:
        """One period of the square wave in PsychoPy's signed units, bright in the middle half.

        ``low`` and ``high`` are drawn levels (gamma-corrected already).
        """
        u = (np.arange(_GRATING_TEX_RES) + 0.5) / _GRATING_TEX_RES
        lum = np.where((u >= 0.25) & (u < 0.75), high, low)
        return (2.0 * lum - 1.0).reshape(1, -1)
