"""The simulated projector as the photodiode over its sync patch sees it.

Real projectors add their own delay between the renderer's flip and the light:
input lag (the projector's frame buffer and processing), scan-out (the image is
sent top to bottom over most of a frame period, so a patch near the bottom
lights up later than one near the top), a rise time (the light modulator and the
photodiode's own response), and a non-linear light output (gamma). This model
has each of them, set in ``[sim_projector]`` of the rig config, so the
photodiode pipeline has real delays and a real curve to measure.

A frame flipped at DAQ sample ``f`` starts to light the patch at
``f + input_lag + row * scanout`` (``row``: the patch's centre row, 0 top .. 1
bottom); the photodiode voltage then relaxes towards the frame's light with a
first-order response whose 10-90 % time is ``rise_time``. The 50 % point of a
step, which is where the decoder places a frame's light, is
:attr:`SimProjector.expected_latency_samples` after the flip.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from acquisition.daq._noise import NormalStream
from rig.core.config import DisplayConfig
from rig.core.simulation import SimProjectorConfig
from stimuli.render.gamma import drive_level
from stimuli.render.sync_patch import patch_row_fraction

__all__ = ["SimProjector"]


class SimProjector:
    """Turns displayed frames into the photodiode's voltage, sample by sample."""

    def __init__(
        self,
        display: DisplayConfig,
        model: SimProjectorConfig,
        sample_rate_hz: float,
        rng: np.random.Generator,
        drops_frames_at_s: tuple[float, ...] = (),
    ) -> None:
        self.model = model
        self.display = display
        self.fs = sample_rate_hz
        self.rng = rng
        self._noise = NormalStream(rng, model.noise_v)
        self._ramp = np.zeros(0)  # 0, 1, 2, ... as float64: a chunk's sample times less s0
        row = (
            patch_row_fraction(display, display.sync_patch)
            if display.sync_patch is not None
            else 0.5
        )
        ms = 1e-3 * sample_rate_hz
        #: Samples from a flip to the first light of the patch.
        self.onset_delay_samples = (model.input_lag_ms + row * model.scanout_ms) * ms
        # first order: 10-90 % rise = tau ln 9
        self._tau = model.rise_time_ms * ms / math.log(9.0)
        self._drops = deque(sorted(round(t * sample_rate_hz) for t in drops_frames_at_s))
        self._onsets: deque[tuple[float, float]] = deque()
        self._level = self.light_v(0.0)  # dark before the first frame
        self._y = self._level
        self._t = 0.0
        #: Frames the projector skipped on purpose (fault injection), by frame number.
        self.skipped: list[int] = []

    @property
    def expected_latency_samples(self) -> float:
        """Flip to the 50 % point of the patch's light step (what the decoder measures)."""
        return self.onset_delay_samples + self._tau * math.log(2.0)

    def light_v(self, drawn: float) -> float:
        """Photodiode volts for a drawn level 0..1 (settled)."""
        m = self.model
        result: float = m.full_scale_v * (m.black + (1.0 - m.black) * float(drawn) ** m.gamma)
        return result

    def show(self, frames: np.ndarray) -> None:
        """Frames the renderer flipped (FRAME_DTYPE, by flip_sample)."""
        for rec in frames:
            flip = int(rec["flip_sample"])
            if self._drops and flip >= self._drops[0]:
                self._drops.popleft()
                self.skipped.append(int(rec["frame"]))
                continue
            drawn = drive_level(float(rec["sync_level"]), self.display.gamma)
            self._onsets.append((flip + self.onset_delay_samples, self.light_v(drawn)))

    def read(self, s0: int, n: int) -> np.ndarray:
        """Photodiode volts at samples ``s0 .. s0 + n - 1`` (call in order, chunk after chunk)."""
        if len(self._ramp) != n:
            self._ramp = np.arange(n, dtype=np.float64)
        t = self._ramp + s0  # exact integers: the same values as np.arange(s0, s0 + n)
        end = s0 + n
        if not self._onsets or self._onsets[0][0] >= end:
            out = self._relax(t)
        elif self._tau > 0.0:
            out = self._respond(t, s0, end)
        else:  # an instant rise: segment by segment, each at its level
            out = np.empty(n, dtype=np.float64)
            i = 0
            while self._onsets and self._onsets[0][0] < end:
                te, level = self._onsets.popleft()
                j = min(n, max(0, math.ceil(te) - s0))
                if j > i:
                    out[i:j] = self._relax(t[i:j])
                self._y = float(self._relax(np.array([te]))[0])
                self._t, self._level = te, level
                i = j
            out[i:] = self._relax(t[i:])
        out += self._noise.take(n)
        return out.astype(np.float32)

    def _respond(self, t: np.ndarray, s0: int, end: int) -> np.ndarray:
        """The response at times ``t`` (samples ``s0 .. end - 1``) to the onsets before ``end``:
        one vectorised expression for all of them (a batch of chunks in virtual time holds
        ~40), the same floats as relaxing segment by segment. Segment k (from onset k's
        first sample on, 0: before the first) relaxes from ``y[k]`` at ``t0[k]`` towards
        ``level[k]``; ``y[k + 1]`` is segment k's value at onset k + 1."""
        t0 = [self._t]
        level = [self._level]
        first = []  # first sample index of each onset's segment (as np.searchsorted "left")
        while self._onsets and self._onsets[0][0] < end:
            te, lv = self._onsets.popleft()
            t0.append(te)
            level.append(lv)
            first.append(min(len(t), max(0, math.ceil(te) - s0)))
        t0_a = np.array(t0)
        decay = np.exp(-np.maximum(t0_a[1:] - t0_a[:-1], 0.0) / self._tau).tolist()
        y = [self._y]
        for k, d in enumerate(decay):  # in Python floats: the same IEEE operations
            y.append(level[k] + (y[k] - level[k]) * d)
        self._y, self._t, self._level = y[-1], t0[-1], level[-1]
        seg = np.searchsorted(np.array(first), self._ramp[: len(t)], side="right")
        lv_a = np.array(level)[seg]
        result: np.ndarray = lv_a + (np.array(y)[seg] - lv_a) * np.exp(
            -np.maximum(t - t0_a[seg], 0.0) / self._tau
        )
        return result

    def _relax(self, t: np.ndarray) -> np.ndarray:
        """The first-order response towards the current level at times ``t`` (>= its start)."""
        if self._tau <= 0.0:
            return np.full(len(t), self._level)
        return self._level + (self._y - self._level) * np.exp(
            -np.maximum(t - self._t, 0.0) / self._tau
        )
