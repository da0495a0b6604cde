"""The PsychoPy renderer, checked on real pixels under a virtual X display (Xvfb).

Frames come from the real stimulus models; the drawer paints them into a small
PsychoPy window and the tests read the back buffer back: luminance, grating
period, motion, orientation, the shadow's place and size, the taxis sides, the
dots. The renderer process runs for a second against a real timeline while the
test publishes closed-loop states, as the engine does; its frames are checked
both as reported and as read from the X server's screen.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from rig.core.config import DisplayConfig, RigConfig
from rig.core.errors import DeviceError
from stimuli.builtin import dataset_protocol
from stimuli.closed_loop import LoopState
from stimuli.library import Dots, Flash, Flow, Rotation, Shadow, Stimulus, Taxis, Turning
from stimuli.render._psychopy import LoopStateBlock, PsychopyRenderer, SampleClock, xvfb_display
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE, Look, blank_frame

pytestmark = pytest.mark.xvfb

W, H = 400, 300
PPM = 10.0
SCREEN = DisplayConfig(backend="psychopy", size_px=(W, H), px_per_mm=PPM)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A private 24-bit Xvfb for this module, else the display already set.

    The pixel checks need 8 bits per channel, and a display someone else started
    (pytest-xvfb's default is 16-bit) may not have them.
    """
    if shutil.which("Xvfb") is not None:
        with xvfb_display("1024x768x24") as xvfb:
            yield xvfb.name
        return
    current = os.environ.get("DISPLAY")
    if not current:
        pytest.skip("Xvfb is not installed and DISPLAY is unset: no X server for PsychoPy")
    yield current


@pytest.fixture(scope="module")
def draw_module(x_display: str) -> ModuleType:
    # Importing psychopy.visual connects to the X display, so only after it exists.
    import stimuli.render._psychopy_draw as mod

    return mod


@pytest.fixture(scope="module")
def window(draw_module: ModuleType) -> Iterator[Any]:
    win = draw_module.open_window(SCREEN)
    yield win
    win.close()


@pytest.fixture
def drawer(draw_module: ModuleType, window: Any) -> Callable[..., Any]:
    """Make a FrameDrawer on the shared window, with display calibration overrides."""

    def make(n_dots: int = 300, **display: Any) -> Any:
        return draw_module.FrameDrawer(window, SCREEN.model_copy(update=display), n_dots=n_dots)

    return make


# -- helpers ----------------------------------------------------------------------------------


def frame_of(stim: Stimulus, t: float, loop: LoopState | None = None) -> np.void:
    rec = blank_frame()
    stim.fill(rec, t, loop or LoopState())
    return rec


def lum(px: np.ndarray) -> np.ndarray:
    """Luminance 0..1 per pixel (rows from the top of the screen)."""
    assert np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2])
    return px[..., 0].astype(np.float64) / 255.0


def screen_xy(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres -> screen px from the centre, y up (PsychoPy's pix units)."""
    return cols + 0.5 - W / 2, H / 2 - rows - 0.5


def shift_1d(a: np.ndarray, b: np.ndarray, max_shift: int) -> int:
    """The index shift s with b[i] = a[i - s] (best match over the overlap)."""
    errs = {}
    for s in range(-max_shift, max_shift + 1):
        if s >= 0:
            errs[s] = np.mean(np.abs(b[s:] - a[: len(a) - s]))
        else:
            errs[s] = np.mean(np.abs(b[:s] - a[-s:]))
    return min(errs, key=errs.__getitem__)


def shift_2d(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(drow, dcol) with b[r, c] = a[r - drow, c - dcol], by circular cross-correlation."""
    xc = np.fft.ifft2(np.conj(np.fft.fft2(a - a.mean())) * np.fft.fft2(b - b.mean())).real
    r, c = np.unravel_index(int(np.argmax(xc)), xc.shape)
    h, w = a.shape
    return (int(r) + h // 2) % h - h // 2, (int(c) + w // 2) % w - w // 2


def period_px(profile: np.ndarray) -> float:
    """A square wave's period from the spacing of its rising edges."""
    high = profile > 0.5 * (profile.max() + profile.min())
    rising = np.flatnonzero(~high[:-1] & high[1:])
    assert len(rising) >= 3, "fewer than three periods in view"
    return float(rising[-1] - rising[0]) / (len(rising) - 1)


def orientation_deg(image: np.ndarray) -> float:
    """Direction (deg ccw from screen +x, mod 180) in which the pattern varies: the 2-D FFT peak."""
    n = min(image.shape)
    sq = image[(image.shape[0] - n) // 2 :, (image.shape[1] - n) // 2 :][:n, :n]
    hann = np.hanning(n)
    spec = np.abs(np.fft.fft2((sq - sq.mean()) * np.outer(hann, hann), s=(2048, 2048)))
    spec[0, 0] = 0.0
    ky, kx = np.unravel_index(int(np.argmax(spec)), spec.shape)
    fy, fx = np.fft.fftfreq(2048)[ky], np.fft.fftfreq(2048)[kx]
    # Rows run down the screen, so the screen's y frequency is minus the row frequency.
    return math.degrees(math.atan2(-fy, fx)) % 180.0


def axis_diff(a_deg: float, b_deg: float) -> float:
    """Difference between two axes (mod 180), in -90..90."""
    return (a_deg - b_deg + 90.0) % 180.0 - 90.0


# -- geometry -----------------------------------------------------------------------------------


def test_fish_frame_maps_mm_to_screen_px(draw_module: ModuleType) -> None:
    up = draw_module.FishFrame(SCREEN)
    # Heading 90 (fish faces screen up): fish-right is screen-right, forward is up.
    np.testing.assert_allclose(up.to_screen((1.0, 0.0)), (10.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(up.to_screen((0.0, 2.0)), (0.0, 20.0), atol=1e-9)

    east = draw_module.FishFrame(
        SCREEN.model_copy(update={"fish_heading_deg": 0.0, "fish_position_px": (40.0, -20.0)})
    )
    # Facing screen right: forward is +x, the fish's right is screen down.
    np.testing.assert_allclose(east.to_screen((0.0, 1.0)), (50.0, -20.0), atol=1e-9)
    np.testing.assert_allclose(east.to_screen((1.0, 0.0)), (40.0, -30.0), atol=1e-9)
    np.testing.assert_allclose(east.to_screen((0.0, 0.0)), (40.0, -20.0), atol=1e-9)
    assert east.screen_angle(90.0) == pytest.approx(0.0)

    pts = np.random.default_rng(0).normal(size=(20, 2)) * 30
    np.testing.assert_allclose(east.to_fish(east.to_screen(pts)), pts, atol=1e-9)
    # Covers the farthest corner (-200, 150) from the fish at (40, -20).
    assert east.reach_px >= math.hypot(240.0, 170.0)


# -- looks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("luminance", [0.0, 0.25, 0.7, 1.0])
def test_flash_fills_the_screen_at_its_luminance(drawer: Any, luminance: float) -> None:
    d = drawer()
    flash = Flash(period_s=2.0, on_s=1.0, on_luminance=luminance, off_luminance=1.0 - luminance)
    on = lum(d.snapshot(frame_of(flash, 0.5)))
    off = lum(d.snapshot(frame_of(flash, 1.5)))
    assert on.shape == (H, W)
    assert np.abs(on - luminance).max() <= 1.0 / 255
    assert np.abs(off - (1.0 - luminance)).max() <= 1.0 / 255


@pytest.mark.parametrize("spatial_freq", [0.25, 0.5])
def test_grating_period_levels_and_phase(drawer: Any, spatial_freq: float) -> None:
    d = drawer()
    flow = Flow(spatial_freq=spatial_freq, contrast=0.5, mean_luminance=0.4, closed_loop=False)
    rec = frame_of(flow, 0.0)
    image = lum(d.snapshot(rec))
    # Flow moves along the fish's axis: with heading 90 the bars are horizontal on screen.
    assert np.abs(image - image[:, :1]).max() <= 1.0 / 255
    profile = image[:, W // 2]
    assert period_px(profile) == pytest.approx(PPM / spatial_freq, abs=0.5)
    # Michelson contrast 0.5 about 0.4: bars at 0.6 and 0.2.
    assert set(np.round(np.unique(profile) * 255).astype(int)) <= {51, 153}
    # At position 0 a bright bar is centred on the fish; half a period away it is dark.
    half = round(PPM / spatial_freq / 2)
    assert profile[H // 2 - 1] == profile[H // 2] == pytest.approx(0.6, abs=1 / 255)
    assert profile[H // 2 - half - 2] == pytest.approx(0.2, abs=1 / 255)


@pytest.mark.parametrize(
    ("heading", "expect_screen"),
    [(90.0, (0.0, 1.0)), (0.0, (1.0, 0.0)), (180.0, (-1.0, 0.0))],
)
def test_grating_moves_by_velocity_times_dt(
    drawer: Any, heading: float, expect_screen: tuple[float, float]
) -> None:
    """Drift without swimming carries the pattern forward (towards the fish's head)."""
    d = drawer(fish_heading_deg=heading)
    flow = Flow(spatial_freq=0.1, drift_mm_s=30.0, closed_loop=False)
    dt = 0.1
    a, b = frame_of(flow, 1.0), frame_of(flow, 1.0 + dt)
    assert float(b["position_mm"] - a["position_mm"]) == pytest.approx(a["velocity"] * dt)
    img_a, img_b = lum(d.snapshot(a)), lum(d.snapshot(b))
    moved = -float(a["velocity"]) * dt * PPM  # px towards the head: 30
    if expect_screen[0] == 0.0:
        s = -shift_1d(img_a[:, W // 2], img_b[:, W // 2], 45)  # rows run down the screen
        assert s == pytest.approx(expect_screen[1] * moved, abs=1)
    else:
        s = shift_1d(img_a[H // 2], img_b[H // 2], 45)
        assert s == pytest.approx(expect_screen[0] * moved, abs=1)


def test_closed_loop_grating_follows_published_position(drawer: Any) -> None:
    d = drawer()
    flow = Flow(spatial_freq=0.1, gain=1.0)
    a = lum(d.snapshot(frame_of(flow, 0.0, LoopState(velocity=12.0, position_mm=3.0))))
    b = lum(d.snapshot(frame_of(flow, 0.0, LoopState(velocity=12.0, position_mm=3.0 + 12.0 / 6))))
    # Positive velocity moves the world head-to-tail: down the screen by 2 mm = 20 px.
    assert -shift_1d(a[:, W // 2], b[:, W // 2], 45) == -20


@pytest.mark.parametrize(("t", "heading"), [(0.0, 90.0), (0.5, 90.0), (1.0, 90.0), (1.5, 0.0)])
def test_rotation_turns_the_grating(drawer: Any, t: float, heading: float) -> None:
    d = drawer(fish_heading_deg=heading)
    rot = Rotation(spatial_freq=0.5, deg_per_s=40.0, period_s=20.0, start_angle_deg=10.0)
    rec = frame_of(rot, t)
    expected = (10.0 + 40.0 * t) + (heading - 90.0)
    assert float(rec["angle_deg"]) == pytest.approx(10.0 + 40.0 * t)
    measured = orientation_deg(lum(d.snapshot(rec)))
    assert abs(axis_diff(measured, expected)) < 1.0, (
        f"grating normal at {measured:.1f} deg, expected {expected % 180:.1f}"
    )


def test_turning_directions_on_screen(drawer: Any) -> None:
    d = drawer()
    turning = Turning(spatial_freq=0.5, directions_deg=(0.0, 90.0), moving_s=1.0, still_s=0.0)
    assert abs(axis_diff(orientation_deg(lum(d.snapshot(frame_of(turning, 0.5)))), 0.0)) < 1.0
    assert abs(axis_diff(orientation_deg(lum(d.snapshot(frame_of(turning, 1.5)))), 90.0)) < 1.0


@pytest.mark.parametrize(
    ("heading", "position", "t"),
    [(90.0, (0.0, 0.0), 0.5), (0.0, (40.0, -20.0), 0.5), (135.0, (-30.0, 10.0), 1.5)],
)
def test_shadow_disk_is_where_and_as_large_as_its_state(
    drawer: Any, heading: float, position: tuple[float, float], t: float
) -> None:
    d = drawer(fish_heading_deg=heading, fish_position_px=position)
    shadow = Shadow(mode="cross", radius_mm=3.0, start_mm=(-10.0, 5.0), end_mm=(10.0, 5.0),
                    speed_mm_s=10.0, period_s=10.0, background=0.8, shadow_luminance=0.1)  # fmt: skip
    rec = frame_of(shadow, t)
    x_mm, y_mm = float(rec["disk_x_mm"]), float(rec["disk_y_mm"])
    image = lum(d.snapshot(rec))
    dark = image < 0.45
    rows, cols = np.nonzero(dark)
    x, y = screen_xy(rows, cols)
    # Fish frame -> screen, by hand: rotate by heading - 90, scale, shift to the fish.
    a = math.radians(heading - 90.0)
    ex = position[0] + PPM * (x_mm * math.cos(a) - y_mm * math.sin(a))
    ey = position[1] + PPM * (x_mm * math.sin(a) + y_mm * math.cos(a))
    assert (x.mean(), y.mean()) == (pytest.approx(ex, abs=0.3), pytest.approx(ey, abs=0.3))
    assert dark.sum() == pytest.approx(math.pi * (3.0 * PPM) ** 2, rel=0.02)
    assert np.abs(image[dark] - 0.1).max() <= 1 / 255
    assert np.abs(image[~dark] - 0.8).max() <= 1 / 255


def test_shadow_loom_grows_and_vanishes_between_events(drawer: Any) -> None:
    d = drawer()
    loom = Shadow(mode="loom", radius_mm=2.0, final_radius_mm=6.0, loom_s=2.0, period_s=5.0,
                  start_mm=(0.0, 0.0))  # fmt: skip
    areas = [float((lum(d.snapshot(frame_of(loom, t))) < 0.5).sum()) for t in (0.0, 1.0, 1.99)]
    expected = [math.pi * (PPM * r) ** 2 for r in (2.0, 4.0, 2.0 + 4.0 * 1.99 / 2.0)]
    np.testing.assert_allclose(areas, expected, rtol=0.03)
    between = lum(d.snapshot(frame_of(loom, 3.0)))
    assert between.min() == pytest.approx(1.0, abs=1 / 255)


def test_taxis_halves_on_the_fish_sides(drawer: Any) -> None:
    d = drawer()
    taxis = Taxis(period_s=10.0, first_bright_side="left", bright_luminance=1.0,
                  dark_luminance=0.2)  # fmt: skip
    first = lum(d.snapshot(frame_of(taxis, 1.0)))
    # Heading 90: the fish's left is the screen's left.
    assert np.allclose(first[:, : W // 2], 1.0, atol=1 / 255)
    assert np.allclose(first[:, W // 2 :], 0.2, atol=1 / 255)
    second = lum(d.snapshot(frame_of(taxis, 6.0)))
    assert np.allclose(second[:, : W // 2], 0.2, atol=1 / 255)
    assert np.allclose(second[:, W // 2 :], 1.0, atol=1 / 255)


def test_taxis_turns_with_the_closed_loop_heading(drawer: Any) -> None:
    d = drawer()
    taxis = Taxis(period_s=10.0, first_bright_side="left", dark_luminance=0.0)
    # The fish turned 90 deg left (towards the light): the bright half is now ahead of it.
    image = lum(d.snapshot(frame_of(taxis, 1.0, LoopState(heading_deg=90.0))))
    assert np.allclose(image[: H // 2], 1.0, atol=1 / 255)
    assert np.allclose(image[H // 2 :], 0.0, atol=1 / 255)
    # Facing screen right (heading 0) with no turn, the fish's left is screen up.
    d_east = drawer(fish_heading_deg=0.0)
    image = lum(d_east.snapshot(frame_of(taxis, 1.0)))
    assert np.allclose(image[: H // 2], 1.0, atol=1 / 255)
    assert np.allclose(image[H // 2 :], 0.0, atol=1 / 255)


def test_dots_are_drawn_where_the_field_puts_them(drawer: Any) -> None:
    n, radius = 40, 0.8
    d = drawer(n_dots=n)
    dots = Dots(n_dots=n, dot_radius_mm=radius, coherences=(0.5,), directions_deg=(0.0,),
                speed_mm_s=5.0, seed=7, dot_luminance=0.8, background=0.2)  # fmt: skip
    rec = frame_of(dots, 2.0)
    assert rec["look"] == Look.DOTS
    image = lum(d.snapshot(rec))
    centres = d.frame.to_screen(d.dot_positions_mm(rec))
    inside = (np.abs(centres[:, 0]) < W / 2 - 1) & (np.abs(centres[:, 1]) < H / 2 - 1)
    assert inside.sum() >= 10
    lit = image > 0.5
    assert set(np.round(np.unique(image) * 255).astype(int)) <= {51, 204}
    # Every dot in view is lit at its centre ...
    cols = np.floor(centres[inside, 0] + W / 2).astype(int)
    rows = np.floor(H / 2 - centres[inside, 1]).astype(int)
    assert lit[rows, cols].all()
    # ... and every lit pixel belongs to a dot of the stated radius.
    lr, lc = np.nonzero(lit)
    x, y = screen_xy(lr, lc)
    dist = np.hypot(x[:, None] - centres[None, :, 0], y[:, None] - centres[None, :, 1]).min(axis=1)
    assert dist.max() <= radius * PPM + 1.0
    assert lit.sum() >= 0.9 * inside.sum() * math.pi * (radius * PPM) ** 2 * 0.5


def test_coherent_dots_shift_together(drawer: Any) -> None:
    n = 60
    d = drawer(n_dots=n)
    dots = Dots(n_dots=n, dot_radius_mm=0.6, coherences=(1.0,), directions_deg=(90.0,),
                speed_mm_s=4.0, seed=3)  # fmt: skip
    a, b = frame_of(dots, 1.0), frame_of(dots, 2.0)
    drow, dcol = shift_2d(lum(d.snapshot(a)), lum(d.snapshot(b)))
    assert (drow, dcol) == (-40, 0)  # 4 mm forward = 40 px up the screen

    half = Dots(n_dots=n, coherences=(0.5,), directions_deg=(180.0,), speed_mm_s=4.0, seed=3)
    p0 = d.dot_positions_mm(frame_of(half, 0.0))
    p1 = d.dot_positions_mm(frame_of(half, 1.0))
    # Steps modulo the wrap at the field's edge.
    side = 2 * d.frame.reach_px / PPM
    step = np.mod(p1 - p0 + side / 2, side) - side / 2
    coherent = np.isclose(step[:, 0], -4.0, atol=1e-9) & np.isclose(step[:, 1], 0.0, atol=1e-9)
    assert coherent[:30].all() and coherent.sum() == 30
    # The others move 4 mm too, each its own way.
    np.testing.assert_allclose(np.hypot(*step.T), 4.0, atol=1e-9)
    assert np.std(np.arctan2(step[30:, 1], step[30:, 0])) > 1.0


def test_unknown_look_is_an_error(drawer: Any) -> None:
    rec = blank_frame()
    rec["look"] = 9
    with pytest.raises(ValueError, match="unknown look 9"):
        drawer().draw(rec)


# -- shared state and clock -------------------------------------------------------------------


def test_loop_state_block_newest_value_wins() -> None:
    import multiprocessing as mp

    block = LoopStateBlock(mp.get_context("spawn"))
    assert block.read() is None
    block.write(LoopState(velocity=1.0), 10, 1.0)
    block.write(LoopState(velocity=-2.5, position_mm=7.0, heading_deg=12.0, gain=8.0,
                          swimming=True, updated_sample=99), 120, 2.5)  # fmt: skip
    got = block.read()
    assert got is not None
    seq, loop, sample, stamp = got
    assert seq == 2 and sample == 120 and stamp == 2.5
    assert loop == LoopState(-2.5, 7.0, 12.0, 8.0, True, 99)


def test_sample_clock_takes_the_tightest_recent_bound() -> None:
    clock = SampleClock(6000.0, window_s=1.0)
    clock.add(600, 10.1)  # published late: a loose bound
    clock.add(600, 10.05)  # the tighter bound for the same sample
    assert clock.sample_at(10.2) == 600 + 900
    clock.add(1200, 10.3)  # consistent with the tight bound: no change
    assert clock.sample_at(11.0) == 600 + round(0.95 * 6000)
    # Once the tight bound is older than the window, newer pairs take over.
    clock.add(12000, 12.2)
    assert clock.sample_at(12.2) == 12000


# -- the renderer process -----------------------------------------------------------------------


def grab_screen() -> np.ndarray:
    """The whole X screen as (height, width) grey levels, read from the X server itself."""
    from pyglet.libs.x11 import xlib

    dpy = xlib.XOpenDisplay(None)
    assert dpy, "cannot connect to the X display"
    try:
        w, h = xlib.XDisplayWidth(dpy, 0), xlib.XDisplayHeight(dpy, 0)
        image = xlib.XGetImage(
            dpy, xlib.XDefaultRootWindow(dpy), 0, 0, w, h, 0xFFFFFFFF, xlib.ZPixmap
        )
        im = image.contents
        assert im.bits_per_pixel == 32
        # The data field is declared as a C string; read it as raw bytes from its address.
        data = ctypes.c_void_p.from_buffer(im, xlib.XImage.data.offset).value
        assert data is not None
        raw = ctypes.string_at(data, im.bytes_per_line * im.height)
        pixels = np.frombuffer(raw, np.uint8).reshape(h, im.bytes_per_line // 4, 4)[:, :w, :3]
        grey = pixels[..., 0].copy()
        assert np.array_equal(pixels[..., 0], pixels[..., 2])
        libx11 = ctypes.CDLL("libX11.so.6")
        libx11.XDestroyImage.argtypes = [ctypes.c_void_p]
        libx11.XDestroyImage(ctypes.cast(image, ctypes.c_void_p))
        return grey
    finally:
        xlib.XCloseDisplay(dpy)


def runs(mask: np.ndarray) -> list[tuple[bool, int]]:
    """(value, length) of each run of equal values, the first and last (cut by the edge) left out."""
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    bounds = np.concatenate([[0], edges, [len(mask)]])
    return [(bool(mask[a]), int(b - a)) for a, b in itertools.pairwise(bounds[1:-1])]


def _wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def timeline() -> Schedule:
    return Schedule.build(dataset_protocol().scaled(0.01), RigConfig())


def test_renderer_process_reports_frames_at_refresh_rate(
    x_display: str, timeline: Schedule
) -> None:
    fs = timeline.sample_rate_hz
    w, h = 320, 240
    display = SCREEN.model_copy(update={"size_px": (w, h), "refresh_hz": 60.0})
    renderer = PsychopyRenderer(display)
    renderer.start(timeline, fs)
    try:
        assert renderer.vsync is False  # Xvfb: the renderer paces itself
        assert renderer.check() is None
        t0 = time.monotonic()
        published: list[tuple[int, float]] = []
        frames = []
        shown = None
        while (now := time.monotonic()) < t0 + 1.0:
            sample = round((now - t0) * fs)
            pos = 5.0 * (now - t0)
            # the engine's state of the gain block (condition 0), as it publishes it
            loop = LoopState(velocity=5.0, position_mm=pos, gain=2.0, condition=0)
            renderer.publish(loop, sample, 60)
            published.append((sample, pos))
            time.sleep(0.01)
            if len(published) % 20 == 0:
                frames.append(renderer.collect())
            if shown is None and now > t0 + 0.7:
                shown = grab_screen()
        assert renderer.check() is None
    finally:
        renderer.stop()
    # The process put the gain block's grating on screen: PsychoPy centres the window;
    # 0.1 cycles/mm at 10 px/mm is a 100 px period, bars across the fish's axis.
    assert shown is not None
    sh, sw = shown.shape
    window = shown[(sh - h) // 2 : (sh + h) // 2, (sw - w) // 2 : (sw + w) // 2]
    assert set(np.unique(window).tolist()) == {0, 255}
    assert (window == window[:, :1]).all()
    assert all(length == 50 for _, length in runs(window[:, 0] > 127))
    assert len(runs(window[:, 0] > 127)) >= 2
    # Stopping closed the window: the screen is black again.
    assert grab_screen().max() == 0

    frames.append(renderer.collect())
    got = np.concatenate(frames)
    assert got.dtype == FRAME_DTYPE
    # One second of 60 Hz slots, each shown or counted as dropped (a loaded CI machine
    # may drop a few; benchmarks/render_frame_drops.py measures the real rate).
    dropped = renderer.dropped_frames
    assert 56 <= len(got) + dropped <= 66, f"{len(got)} frames + {dropped} dropped in 1 s"
    assert dropped <= 6
    assert renderer.frames_shown == len(got) + renderer.lost_records
    assert renderer.lost_records == 0
    np.testing.assert_array_equal(got["frame"], np.arange(len(got)))
    intervals = np.diff(got["flip_sample"])
    assert (intervals > 0).all()
    assert np.median(intervals) == pytest.approx(fs / 60.0, abs=3)
    # The drop counter agrees with the gaps between the logged flips.
    gaps = np.rint(intervals / (fs / 60.0)).astype(int) - 1
    assert abs(int(gaps[gaps > 0].sum()) - dropped) <= 2
    # Before the lead-in ends no condition is on; then the gain block's flow grating.
    lead_in = timeline.lead_in_samples
    before, after = got[got["flip_sample"] < lead_in], got[got["flip_sample"] >= lead_in + 60]
    assert len(before) >= 3, f"first flips at samples {got['flip_sample'][:8]}"
    assert (before["condition"] == -1).all()
    assert len(after) >= 40 and (after["condition"] == 0).all()
    assert (after["look"] == Look.GRATING).all()
    # Its low- and high-gain steps alternate every 0.3 s (protocol scaled to 1%).
    assert set(after["stim_id"].tolist()) == {0, 1}
    np.testing.assert_array_equal(after["gain"], np.where(after["stim_id"] == 0, 2.0, 8.0))
    # Each frame drew a recently published position (closed loop: position_mm = loop state).
    pub_samples = np.array([s for s, _ in published])
    pub_pos = np.array([p for _, p in published])
    expect = np.interp(after["flip_sample"], pub_samples, pub_pos)
    assert np.abs(after["position_mm"] - expect).max() < 5.0 * 0.05


def test_renderer_death_is_reported_by_check(x_display: str, timeline: Schedule) -> None:
    renderer = PsychopyRenderer(SCREEN)
    renderer.start(timeline, timeline.sample_rate_hz)
    try:
        assert renderer.check() is None
        pid = renderer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert _wait_for(lambda: renderer.check() is not None, 10.0)
        message = renderer.check()
        assert message is not None and "renderer process died" in message
    finally:
        renderer.stop()
    assert renderer.check() is None


def test_renderer_without_a_display_fails_to_start_with_a_clear_error(
    x_display: str, timeline: Schedule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":9999")
    renderer = PsychopyRenderer(SCREEN, start_timeout_s=60.0)
    with pytest.raises(DeviceError, match="PsychoPy renderer did not start"):
        renderer.start(timeline, timeline.sample_rate_hz)
    assert renderer.check() is None


def test_renderer_on_a_16_bit_screen_fails_to_start_instead_of_hanging(
    x_display: str, timeline: Schedule
) -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb to make a 16-bit screen")
    with xvfb_display("640x480x16"):
        renderer = PsychopyRenderer(SCREEN, start_timeout_s=60.0)
        with pytest.raises(DeviceError, match="16-bit colour"):
            renderer.start(timeline, timeline.sample_rate_hz)


# -- sync patch, gamma and geometry (issue 16) --------------------------------------------------


def test_sync_patch_shows_each_frames_code_in_its_corner(drawer: Any) -> None:
    from rig.core.config import SyncPatchConfig
    from stimuli.render.sync_patch import SYNC_LEVELS, sync_level

    d = drawer(sync_patch=SyncPatchConfig(corner="bottom-left", size_px=20))
    seen = []
    for k in range(5):
        rec = frame_of(Flash(period_s=2.0, on_s=1.0, on_luminance=0.5), 0.5)
        rec["frame"] = k
        rec["sync_level"] = sync_level(k)
        image = lum(d.snapshot(rec))
        patch = image[H - 20 :, :20]
        assert np.abs(patch - sync_level(k)).max() <= 1.0 / 255
        # the rest of the screen is the stimulus, untouched by the patch
        assert np.abs(image[: H - 20, :] - 0.5).max() <= 1.0 / 255
        assert np.abs(image[:, 20:] - 0.5).max() <= 1.0 / 255
        seen.append(float(np.median(patch)))
    # consecutive frames always differ; the code repeats every four frames
    assert all(abs(a - b) > 0.3 for a, b in itertools.pairwise(seen))
    assert seen[4] == pytest.approx(seen[0]) and len(SYNC_LEVELS) == 4


def test_gamma_correction_draws_luminance_to_one_over_gamma(drawer: Any) -> None:
    d = drawer(gamma=2.2)
    image = lum(d.snapshot(frame_of(Flash(period_s=2.0, on_s=1.0, on_luminance=0.5), 0.5)))
    assert np.abs(image - 0.5 ** (1 / 2.2)).max() <= 1.0 / 255


@pytest.mark.parametrize(
    ("eye_mm", "gap_mm", "cycles_per_deg"),
    [(3.0, 0.5, 0.02), (5.0, 20.0, 0.1)],
)
def test_grating_in_cycles_per_degree_has_the_projected_pixel_period(
    drawer: Any, eye_mm: float, gap_mm: float, cycles_per_deg: float
) -> None:
    """Under the fish one degree is (eye height + 1.333 x air gap) x pi / 180 mm of screen."""
    from rig.core.config import ProjectionConfig
    from stimuli.geometry import resolve_angles
    from stimuli.protocol import Protocol, condition, step

    proj = ProjectionConfig(eye_height_mm=eye_mm, air_gap_mm=gap_mm)
    flow = Flow(cycles_per_deg=cycles_per_deg, contrast=1.0, closed_loop=False)
    proto = resolve_angles(
        Protocol(name="cpd", conditions=[condition("c", step(flow, 10.0), seconds=10.0)]), proj
    )
    rec = frame_of(proto.conditions[0].steps[0].stimulus, 0.0)
    d = drawer(projection=proj)
    profile = lum(d.snapshot(rec))[:, W // 2]
    mm_per_deg = (eye_mm + 1.333 * gap_mm) * math.pi / 180.0
    assert period_px(profile) == pytest.approx(PPM * mm_per_deg / cycles_per_deg, abs=0.5)
