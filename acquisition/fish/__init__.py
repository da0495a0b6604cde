"""The virtual fish: one seeded model read by the simulated DAQ (tail) and microscope (brain)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from acquisition.fish._behaviour import Behaviour, TrueBout
from acquisition.fish._brain import DARK_LEVEL, TUNINGS, Brain
from acquisition.fish._dynamics import FEATURES
from acquisition.fish._segmentation import label_plane
from acquisition.fish._vision import Seen, see
from rig.core.simulation import FishConfig
from stimuli.state import FRAME_DTYPE, Look, empty_frame

#: Where the fields the fish needs first are in a frame record's ``item()`` tuple.
_NAMES = FRAME_DTYPE.names or ()
_FLIP, _LOOK, _ANGLE = (_NAMES.index(k) for k in ("flip_sample", "look", "angle_deg"))

__all__ = [
    "DARK_LEVEL",
    "TUNINGS",
    "Brain",
    "Seen",
    "TrueBout",
    "VirtualFish",
    "label_plane",
    "see",
]


class VirtualFish:
    """Sees frames (after a visual latency), swims, and lights up.

    Frames arrive with their flip samples through :meth:`show`; the fish acts on
    the newest frame that flipped at least ``visual_latency_s`` before now.

    The brain is sampled plane by plane: the microscope reports each plane's trigger
    (:meth:`note_planes`) and the fish keeps what it saw and did at that instant; at
    the volume's last plane :meth:`volume_fluorescence` gives every neuron its
    fluorescence at its own plane's acquisition time.
    """

    def __init__(
        self,
        cfg: FishConfig,
        sample_rate_hz: float,
        shape_zyx: tuple[int, int, int],
        seed: int,
        voxel_size_um: tuple[float, float, float] | None = None,
        change_at_s: float | None = None,
    ) -> None:
        b_seed, n_seed = np.random.SeedSequence(seed).spawn(2)
        self.cfg = cfg
        self.fs = sample_rate_hz
        self.behaviour = Behaviour(cfg, sample_rate_hz, np.random.default_rng(b_seed))
        self.brain = Brain(
            shape_zyx,
            cfg.n_neurons,
            np.random.default_rng(n_seed),
            voxel_size_um,
            indicator=cfg.indicator,
            n_assemblies=cfg.n_assemblies,
            artr_period_s=cfg.artr_period_s,
        )
        self._latency = round(cfg.visual_latency_s * sample_rate_hz)
        self._queue: list[np.void] = []
        self._flips: list[int] = []  # the queued frames' flip samples
        self._seen = see(empty_frame())
        self._prev_frame: tuple[int, float, int] | None = None  # look, angle, flip sample
        self._rotation = 0.0
        z = shape_zyx[0]
        # per plane of the volume under way: its acquisition time (s; NaN: not yet) and the
        # stimulus features then
        self._plane_t = np.full(z, np.nan)
        self._plane_f = np.zeros((z, len(FEATURES)))
        self._t_last = 0.0  # the last volume's last plane (s)
        #: [faults] brain_change_at_s: from then on every second neuron is driven fully.
        self.change_at_s = change_at_s
        #: Seconds of the fish's own work on the loop lane (the engine's cost breakdown).
        self.seconds = 0.0
        self.clock: Callable[[], float] = time.perf_counter

    def show(self, frames: np.ndarray) -> None:
        """Frames the projector displayed (FRAME_DTYPE, by flip_sample)."""
        t0 = self.clock()
        self._queue.extend(frames)
        self._flips.extend(frames["flip_sample"].tolist())
        self.seconds += self.clock() - t0

    def _catch_up(self, sample: int) -> None:
        due = sample - self._latency
        flips = self._flips
        i = 0
        while i < len(flips) and flips[i] <= due:
            i += 1
        if i:
            rec = self._queue[i - 1]
            f = rec.item()
            flip = int(f[_FLIP])
            self._rotation = self._rotation_of(int(f[_LOOK]), float(f[_ANGLE]), flip)
            self._seen = see(rec, self._rotation or 0.0)  # never -0.0: as before
            del self._queue[:i]
            del flips[:i]

    def _rotation_of(self, look: int, angle_deg: float, flip: int) -> float:
        """Whole-field angular velocity (deg/s) from this grating frame's angle and the last's.

        Jumps (a new direction, more than 10 degrees in a frame) are no rotation."""
        prev, self._prev_frame = self._prev_frame, (look, angle_deg, flip)
        if prev is None or look != Look.GRATING or prev[0] != Look.GRATING:
            return 0.0
        d_angle = math.remainder(angle_deg - prev[1], 360.0)
        gap = (flip - prev[2]) / self.fs
        if gap <= 0.0:
            return self._rotation
        if abs(d_angle) > 10.0:
            return 0.0
        return d_angle / gap

    def tail(self, s0: int, n: int) -> np.ndarray:
        """Tail electrode voltages (n, 2) for samples [s0, s0 + n)."""
        t0 = self.clock()
        self._catch_up(s0)
        out = self.behaviour.step(s0, n, self._seen)
        self.seconds += self.clock() - t0
        return out

    def features(self) -> tuple[float, ...]:
        """The stimulus and motor features now, in the order of ``FEATURES``."""
        seen = self._seen
        b = self.behaviour
        swim = min(1.5, b.vigour) if b.swimming else 0.0
        return (
            math.tanh(max(0.0, seen.forward_motion) / 8.0),
            # light on / off: 1 at full light / darkness (activity 1: a strongly driven cell)
            max(0.0, seen.luminance - 0.3) / 0.7,
            max(0.0, 0.3 - seen.luminance) / 0.3,
            min(1.0, seen.looming / 10.0 + 0.6 * seen.objects),
            swim,
            swim * max(0.0, -b.bias),
            swim * max(0.0, b.bias),
        )

    def note_planes(self, plane_index: np.ndarray, samples: np.ndarray) -> None:
        """Planes triggered in this chunk (running plane index, trigger sample): each keeps
        the features at its own acquisition time (the chunk's: 10 ms resolution)."""
        t0 = self.clock()
        z = len(self._plane_t)
        p = np.asarray(plane_index) % z
        self._plane_t[p] = np.asarray(samples) / self.fs
        self._plane_f[p] = self.features()
        self.seconds += self.clock() - t0

    @property
    def seen(self) -> Seen:
        return self._seen

    def volume_fluorescence(self, dt: float) -> np.ndarray:
        """Advance the brain by one volume (``dt`` since the last) and return each neuron's
        fluorescence at its plane's acquisition time. Planes the microscope did not report
        (a whole volume rendered without triggers: :meth:`image_volume`) are placed evenly
        over ``dt``, with the features of now. Cheap (per neuron, not per voxel): it runs on
        the loop lane at the volume's last trigger, so the brain follows the stimulus
        deterministically; the image is rendered later, on the image lane
        (:meth:`Brain.render_plane`)."""
        t0 = self.clock()
        times, feats = self._plane_t, self._plane_f
        z = len(times)
        missing = np.isnan(times)
        if missing.any():
            even = self._t_last + dt * (np.arange(1, z + 1)) / z
            times[missing] = even[missing]
            feats[missing] = self.features()
        times = np.maximum.accumulate(times)  # never backwards (a stray report)
        changed = self.change_at_s is not None and float(times[-1]) >= self.change_at_s
        f = self.brain.advance(times, feats, drive_every_second=changed)
        self._t_last = float(times[-1])
        self._plane_t = np.full(z, np.nan)
        self.seconds += self.clock() - t0
        return f

    def image_volume(self, dt: float, out: np.ndarray) -> None:
        """Advance and render a whole volume into ``out`` (uint16 z, y, x) in one call."""
        f = self.volume_fluorescence(dt)
        bg = self.brain.background_scale
        for p in range(out.shape[0]):
            self.brain.render_plane(f, p, out[p], background=float(bg[p]))

    @property
    def true_bouts(self) -> list[TrueBout]:
        return self.behaviour.bouts
