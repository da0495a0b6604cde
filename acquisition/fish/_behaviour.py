"""The virtual fish's behaviour: fictive swim bouts on two tail electrodes, driven by what it sees.

A bout starts as a Poisson event whose rate rises with forward visual motion
(optomotor response), with luminance steps (flash responses) and with a looming
shadow. Once started, the fish swims until the visual feedback it feels
(``velocity`` above its pre-bout value, integrated over the bout) reaches the
distance it meant to travel, or until its bout runs out: so with higher
closed-loop gain bouts end sooner (motor adaptation), and in open loop they
run their natural length. Lateral motion and a brighter side bias the left/right
tail power.

The tail signal is electrode noise plus, during a bout, bursts of spikes at the
tail-beat frequency alternating between the left and right channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from acquisition.fish._vision import Seen
from rig.config import FishConfig

__all__ = ["Behaviour", "TrueBout"]


@dataclass(frozen=True, slots=True)
class TrueBout:
    """Ground truth for one bout (kept for tests and exports)."""

    start_sample: int
    stop_sample: int
    vigour: float
    bias: float  # -1 all left ... +1 all right


class Behaviour:
    def __init__(self, cfg: FishConfig, sample_rate_hz: float, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.fs = sample_rate_hz
        self.rng = rng
        self.bouts: list[TrueBout] = []
        self._in_bout = False
        self._bout_start = 0
        self._bout_max = 0
        self._vigour = 1.0
        self._bias = 0.0
        self._target_mm = 0.0
        self._felt_mm = 0.0
        self._rest_velocity = 0.0
        self._last_end = -(10**9)
        self._prev_lum: float | None = None
        self._flash_drive = 0.0
        self._prev_loom = 0.0
        self._fatigue = 0.0  # grows with strong feedback, lowers vigour (long-term adaptation)

    @property
    def swimming(self) -> bool:
        return self._in_bout

    @property
    def bias(self) -> float:
        """Left/right bias of the current bout (-1 left ... +1 right)."""
        return self._bias

    def drive_rate(self, seen: Seen) -> float:
        """Bout rate (Hz) for what the fish sees now."""
        c = self.cfg
        omr = c.omr_bout_rate_hz * math.tanh(max(0.0, seen.forward_motion) / 8.0)
        light = 0.4 + 0.6 * min(1.0, seen.luminance)
        return c.spontaneous_bout_rate_hz + omr * light + self._flash_drive

    def step(self, s0: int, n: int, seen: Seen) -> np.ndarray:
        """Advance by ``n`` samples from ``s0``; return the tail signal (n, 2) in volts."""
        dt = n / self.fs
        self._update_transients(seen, dt)
        if self._in_bout:
            self._felt_mm += max(0.0, seen.velocity - self._rest_velocity) * dt
        out = self.rng.normal(0.0, self.cfg.noise_v, size=(n, 2))
        if not self._in_bout and s0 - self._last_end > 0.3 * self.fs:
            rate = self.drive_rate(seen)
            if self.rng.random() < 1.0 - math.exp(-rate * dt):
                # onsets fall anywhere in the chunk, as real ones do, not on its first sample
                self._begin(s0 + int(self.rng.integers(0, n)), seen)
        if self._in_bout:
            self._add_bursts(out, s0, n)
            done_target = self._felt_mm >= self._target_mm
            if done_target or s0 + n >= self._bout_max:
                self._end(s0 + n)
        return out.astype(np.float32)

    def _update_transients(self, seen: Seen, dt: float) -> None:
        if self._prev_lum is not None and abs(seen.luminance - self._prev_lum) > 0.2:
            self._flash_drive += 3.0 * abs(seen.luminance - self._prev_lum)
        self._prev_lum = seen.luminance
        if seen.looming > self._prev_loom + 1e-6 and seen.looming > 4.0:
            self._flash_drive += 0.5
        self._prev_loom = seen.looming
        self._flash_drive *= math.exp(-dt / 0.5)
        self._fatigue *= math.exp(-dt / 30.0)

    def _begin(self, s0: int, seen: Seen) -> None:
        c = self.cfg
        self._in_bout = True
        self._bout_start = s0
        natural = c.bout_duration_s * self.rng.uniform(0.8, 1.25)
        self._bout_max = s0 + round(natural * self.fs)
        self._vigour = max(0.3, self.rng.normal(1.0, 0.15)) / (1.0 + self._fatigue)
        lateral = math.tanh(seen.lateral_motion / 5.0) + 0.8 * seen.brightness_bias
        self._bias = float(np.clip(lateral + self.rng.normal(0.0, 0.15), -0.9, 0.9))
        # How far the fish "means" to go: low-gain feedback reaches it near the natural end.
        self._target_mm = 1.2 * self._vigour
        self._felt_mm = 0.0
        self._rest_velocity = seen.velocity

    def _end(self, stop: int) -> None:
        self.bouts.append(TrueBout(self._bout_start, stop, self._vigour, self._bias))
        # strong feedback (target reached early) tires the fish a little: weaker next bouts
        if self._felt_mm >= self._target_mm:
            self._fatigue += 0.05
        self._in_bout = False
        self._last_end = stop

    def _add_bursts(self, out: np.ndarray, s0: int, n: int) -> None:
        c = self.cfg
        t = (np.arange(s0, s0 + n) - self._bout_start) / self.fs
        dur = (self._bout_max - self._bout_start) / self.fs
        # a bout starts with a full first burst (fictive bouts begin abruptly), then fades
        env = np.where(t >= 0.0, np.clip(1.0 - t / (dur * 1.1), 0.0, 1.0), 0.0)
        phase = 2.0 * np.pi * c.tail_beat_hz * (t - 0.002)
        burst_l = np.maximum(0.0, np.cos(phase)) ** 8
        burst_r = np.maximum(0.0, np.cos(phase + np.pi)) ** 8
        amp = c.spike_v * self._vigour * env
        spikes = self.rng.normal(0.0, 1.0, size=(n, 2))
        out[:, 0] += amp * (1.0 - self._bias) * burst_l * spikes[:, 0]
        out[:, 1] += amp * (1.0 + self._bias) * burst_r * spikes[:, 1]
