"""The virtual fish: one seeded model read by the simulated DAQ (tail) and microscope (brain)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from acquisition.fish._behaviour import Behaviour, TrueBout
from acquisition.fish._brain import TUNINGS, Brain
from acquisition.fish._vision import Seen, see
from rig.config import FishConfig
from stimuli.state import empty_frame

__all__ = ["TUNINGS", "Brain", "Seen", "TrueBout", "VirtualFish", "see"]


class VirtualFish:
    """Sees frames (after a visual latency), swims, and lights up.

    Frames arrive with their flip samples through :meth:`show`; the fish acts on
    the newest frame that flipped at least ``visual_latency_s`` before now.
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
        self.brain = Brain(shape_zyx, cfg.n_neurons, np.random.default_rng(n_seed), voxel_size_um)
        self._latency = round(cfg.visual_latency_s * sample_rate_hz)
        self._queue: list[np.void] = []
        self._seen = see(empty_frame())
        self._swim_since_volume = 0.0
        self._turn_since_volume = 0.0
        #: [faults] brain_change_at_s: from then on every second neuron is driven fully.
        self.change_at_s = change_at_s
        self._brain_s = 0.0
        #: Seconds of the fish's own work on the loop lane (the engine's cost breakdown).
        self.seconds = 0.0
        self.clock: Callable[[], float] = time.perf_counter

    def show(self, frames: np.ndarray) -> None:
        """Frames the projector displayed (FRAME_DTYPE, by flip_sample)."""
        t0 = self.clock()
        self._queue.extend(frames)
        self.seconds += self.clock() - t0

    def _catch_up(self, sample: int) -> None:
        due = sample - self._latency
        i = 0
        while i < len(self._queue) and int(self._queue[i]["flip_sample"]) <= due:
            i += 1
        if i:
            self._seen = see(self._queue[i - 1])
            del self._queue[:i]

    def tail(self, s0: int, n: int) -> np.ndarray:
        """Tail electrode voltages (n, 2) for samples [s0, s0 + n)."""
        t0 = self.clock()
        self._catch_up(s0)
        out = self.behaviour.step(s0, n, self._seen)
        if self.behaviour.swimming:
            self._swim_since_volume += n / self.fs
            self._turn_since_volume += self.behaviour.bias * n / self.fs
        self.seconds += self.clock() - t0
        return out

    @property
    def seen(self) -> Seen:
        return self._seen

    def volume_fluorescence(self, dt: float) -> np.ndarray:
        """Advance the brain by one volume (``dt`` since the last) and return each neuron's
        fluorescence. Cheap (per neuron, not per voxel): it runs on the loop lane at the
        volume's last trigger, so the brain follows the stimulus deterministically; the
        image is rendered later, on the image lane (:meth:`Brain.render_plane`)."""
        t0 = self.clock()
        swim = min(1.0, self._swim_since_volume / max(dt, 1e-3) * 3.0)
        turn = float(np.clip(self._turn_since_volume / max(dt, 1e-3) * 3.0, -1.0, 1.0))
        self._swim_since_volume = 0.0
        self._turn_since_volume = 0.0
        drive = self.brain.drive(self._seen, swim, turn)
        self._brain_s += dt
        if self.change_at_s is not None and self._brain_s >= self.change_at_s:
            drive[::2] = 1.0
        f = self.brain.advance(dt, drive)
        self.seconds += self.clock() - t0
        return f

    def image_volume(self, dt: float, out: np.ndarray) -> None:
        """Advance and render a whole volume into ``out`` (uint16 z, y, x) in one call."""
        f = self.volume_fluorescence(dt)
        for p in range(out.shape[0]):
            self.brain.render_plane(f, p, out[p])

    @property
    def true_bouts(self) -> list[TrueBout]:
        return self.behaviour.bouts
