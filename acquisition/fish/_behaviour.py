"""The virtual fish's behaviour: fictive swim bouts on two tail electrodes, driven by what it sees.

A bout starts as a Poisson event whose rate rises with forward visual motion
(optomotor response), with rotating whole-field motion (optokinetic turning, the
turn toward the rotation: Portugues et al. 2014, Neuron 81:1328; Naumann et al.
2016, Cell 167:947), with a brighter side (phototaxis, turning toward the light: Burgess, Schoch & Granato
2010, Curr. Biol. 20:381), with luminance steps (flash responses) and with a looming
shadow; a shadow that looms past ``_ESCAPE_RADIUS_MM`` triggers an escape at once
(a fast, strong bout away from it: Temizer et al. 2015, Curr. Biol. 25:1823; Dunn
et al. 2016, Neuron 89:613). Once started, the fish swims until the visual
feedback it feels (``velocity`` above its pre-bout value, integrated over the
bout) reaches the distance it meant to travel, or until its bout runs out: so
with higher closed-loop gain bouts end sooner (motor adaptation), and in open
loop they run their natural length. Lateral motion, rotation and a brighter side
bias the left/right tail power.

The tail signal is the electrodes' background (acquisition/fish/_tail.py: noise
at a per-fish level, mains hum, heartbeat, drift), a deflection at each light
step (the photoelectric effect on the electrodes, rising in ``_ARTEFACT_RISE_S`` and
decaying in ``_ARTEFACT_TAU_S``),
and, during a bout, bursts alternating between the left and right channels at
the tail-beat frequency. That frequency differs between bouts, drawn from
``fish.burst_hz`` (20-40 Hz for routine fictive swims: Masino & Fetcho 2005,
J. Neurophysiol. 93:3177; Severi et al. 2014, Neuron 83:692, slow swims ~20-30 Hz;
freely swimming larvae 20-60 Hz: Budick & O'Malley 2000, J. Exp. Biol. 203:2565),
and falls within a bout (from 1.15x to 0.85x of the bout's frequency: bursts slow
down towards a bout's end, Severi et al. 2014); escapes beat at 40-60 Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from acquisition.fish._tail import TailBackground
from acquisition.fish._vision import Seen
from rig.core.simulation import FishConfig

__all__ = ["Behaviour", "TrueBout"]

#: A looming shadow this large (radius, mm, under the fish) triggers an escape.
_ESCAPE_RADIUS_MM = 6.0
_ARTEFACT_TAU_S = 0.03
_ARTEFACT_RISE_S = 0.008
#: Bout rate a light/dark boundary adds (turns toward the light: Burgess, Schoch & Granato
#: 2010, Curr. Biol. 20:381).
_PHOTOTAXIS_RATE_HZ = 0.6


@dataclass(frozen=True, slots=True)
class TrueBout:
    """Ground truth for one bout (kept for tests and exports)."""

    start_sample: int
    stop_sample: int
    vigour: float
    bias: float  # -1 all left ... +1 all right
    burst_hz: float = 30.0  # the bout's tail-beat frequency at its middle


class Behaviour:
    def __init__(self, cfg: FishConfig, sample_rate_hz: float, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.fs = sample_rate_hz
        self.rng = rng
        # the electrodes' background draws from a stream of its own (seeded from this one)
        self.background = TailBackground(
            cfg, sample_rate_hz, np.random.default_rng(rng.integers(2**63))
        )
        self.bouts: list[TrueBout] = []
        self._in_bout = False
        self._bout_start = 0
        self._bout_max = 0
        self._vigour = 1.0
        self._bias = 0.0
        self._burst_hz = 30.0
        self._target_mm = 0.0
        self._felt_mm = 0.0
        self._rest_velocity = 0.0
        self._last_end = -(10**9)
        self._prev_lum: float | None = None
        self._flash_drive = 0.0
        self._prev_loom = 0.0
        self._escaped = False  # one escape per loom
        self._loom_rising = False
        self._fatigue = 0.0  # grows with strong feedback, lowers vigour (long-term adaptation)
        self._artefact = np.zeros(2)  # the light step's deflection now (V, per channel)
        self._art_fast = np.zeros(2)  # its rising part (subtracted, decays faster)
        self._artefact_on = False
        self._artefact_gain = rng.uniform(0.5, 1.5, size=2)

    @property
    def swimming(self) -> bool:
        return self._in_bout

    @property
    def bias(self) -> float:
        """Left/right bias of the current bout (-1 left ... +1 right)."""
        return self._bias

    @property
    def vigour(self) -> float:
        return self._vigour

    def drive_rate(self, seen: Seen) -> float:
        """Bout rate (Hz) for what the fish sees now."""
        c = self.cfg
        omr = c.omr_bout_rate_hz * math.tanh(max(0.0, seen.forward_motion) / 8.0)
        okr = c.okr_bout_rate_hz * math.tanh(abs(seen.rotation_deg_s) / 30.0)
        light = 0.4 + 0.6 * min(1.0, seen.luminance)
        # a brighter side draws turning bouts toward it (phototaxis)
        taxis = _PHOTOTAXIS_RATE_HZ * min(1.0, abs(seen.brightness_bias))
        return c.spontaneous_bout_rate_hz + (omr + okr) * light + taxis + self._flash_drive

    def step(self, s0: int, n: int, seen: Seen) -> np.ndarray:
        """Advance by ``n`` samples from ``s0``; return the tail signal (n, 2) in volts."""
        dt = n / self.fs
        self._update_transients(seen, dt, s0, n)
        if self._in_bout:
            self._felt_mm += max(0.0, seen.velocity - self._rest_velocity) * dt
        out = self.background.take(n)
        if self._artefact_on:
            # a difference of exponentials: the deflection rises over a few ms (the
            # amplifier's band limit), not in one sample, then decays
            k = np.arange(n)
            slow = np.exp(-k / (_ARTEFACT_TAU_S * self.fs))
            fast = np.exp(-k / (_ARTEFACT_RISE_S * self.fs))
            out += slow[:, None] * self._artefact[None, :] - fast[:, None] * self._art_fast[None, :]
            self._artefact *= math.exp(-n / (_ARTEFACT_TAU_S * self.fs))
            self._art_fast *= math.exp(-n / (_ARTEFACT_RISE_S * self.fs))
            self._artefact_on = bool(np.abs(self._artefact).max() >= 1e-6)
            if not self._artefact_on:
                self._artefact[:] = 0.0
                self._art_fast[:] = 0.0
        if not self._in_bout and s0 - self._last_end > 0.3 * self.fs:
            if self._escape_due(seen):
                self._begin(s0 + int(self.rng.integers(0, n)), seen, escape=True)
            else:
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

    def _escape_due(self, seen: Seen) -> bool:
        if seen.looming < _ESCAPE_RADIUS_MM:
            self._escaped = False
            return False
        if self._escaped or not self._loom_rising:
            return False
        self._escaped = True
        return True

    def _update_transients(self, seen: Seen, dt: float, s0: int, n: int) -> None:
        if self._prev_lum is not None and abs(seen.luminance - self._prev_lum) > 0.2:
            step = seen.luminance - self._prev_lum
            self._flash_drive += 3.0 * abs(step)
            # the light step reaches the electrodes as a deflection (photoelectric effect)
            self._artefact += self.cfg.stim_artefact_v * step * self._artefact_gain
            self._art_fast += self.cfg.stim_artefact_v * step * self._artefact_gain
            self._artefact_on = self.cfg.stim_artefact_v > 0.0
        self._prev_lum = seen.luminance
        if seen.looming > self._prev_loom + 1e-6 and seen.looming > 4.0:
            self._flash_drive += 0.5
        self._loom_rising = seen.looming > self._prev_loom + 1e-6
        self._prev_loom = seen.looming
        self._flash_drive *= math.exp(-dt / 0.5)
        self._fatigue *= math.exp(-dt / 30.0)

    def _begin(self, s0: int, seen: Seen, escape: bool = False) -> None:
        c = self.cfg
        self._in_bout = True
        self._bout_start = s0
        lo, hi = c.burst_hz
        if escape:
            natural = c.bout_duration_s * self.rng.uniform(0.6, 0.9)
            self._vigour = self.rng.uniform(1.6, 2.2)
            self._burst_hz = float(self.rng.uniform(max(hi, 40.0), max(hi, 40.0) + 20.0))
            side = -1.0 if self.rng.random() < 0.5 else 1.0
            self._bias = 0.8 * side
        else:
            natural = c.bout_duration_s * self.rng.uniform(0.8, 1.25)
            self._vigour = max(0.3, self.rng.normal(1.0, 0.15)) / (1.0 + self._fatigue)
            self._burst_hz = float(self.rng.uniform(lo, hi))
            lateral = math.tanh(seen.lateral_motion / 5.0) + 0.8 * seen.brightness_bias
            # counter-clockwise rotation (seen from above) turns the fish left
            lateral -= 0.7 * math.tanh(seen.rotation_deg_s / 30.0)
            self._bias = float(np.clip(lateral + self.rng.normal(0.0, 0.15), -0.9, 0.9))
        self._bout_max = s0 + round(natural * self.fs)
        # How far the fish "means" to go: low-gain feedback reaches it near the natural end.
        self._target_mm = 1.2 * self._vigour
        self._felt_mm = 0.0
        self._rest_velocity = seen.velocity

    def _end(self, stop: int) -> None:
        self.bouts.append(
            TrueBout(self._bout_start, stop, self._vigour, self._bias, self._burst_hz)
        )
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
        # the frequency falls from 1.15x to 0.85x over the bout: phase = 2 pi integral of f
        tt = t - 0.002
        f0 = self._burst_hz
        phase = 2.0 * np.pi * f0 * (1.15 * tt - 0.15 * tt * tt / dur)
        burst_l = np.maximum(0.0, np.cos(phase)) ** 8
        burst_r = np.maximum(0.0, np.cos(phase + np.pi)) ** 8
        amp = c.spike_v * self._vigour * env
        spikes = self.rng.normal(0.0, 1.0, size=(n, 2))
        out[:, 0] += amp * (1.0 - self._bias) * burst_l * spikes[:, 0]
        out[:, 1] += amp * (1.0 + self._bias) * burst_r * spikes[:, 1]
