"""What the tail electrodes pick up besides the swim bursts: noise, mains hum, heartbeat, drift.

Extracellular recordings of fictive swimming from the tail of a paralysed larva
(Masino & Fetcho 2005, J. Neurophysiol. 93:3177; Ahrens et al. 2012, Nature
485:471) carry, besides the motor-nerve bursts:

* **electrode noise**, whose level relative to the bursts depends on the
  electrode's seal and placement and so differs from fish to fish: modelled as
  ``noise_v`` times a per-fish log-normal factor (sd ``snr_spread`` in log units),
  so the signal-to-noise ratio varies across fish (seeded);
* **mains hum** at ``mains_hz`` (50 or 60 Hz) with its third harmonic, a fixed
  amplitude and phase per channel;
* a **heartbeat** artefact: a brief biphasic deflection at the larval heart rate,
  ~2-3 Hz at 5-7 dpf and 28 °C (about 120-180 beats/min: Barrionuevo & Burggren 1999,
  Am. J. Physiol. 276:R505; De Luca et al. 2014, Sci. Rep. 4:4668), with a few per
  cent beat-to-beat jitter;
* a **slow baseline drift** (electrode polarisation: an Ornstein-Uhlenbeck process,
  tens of seconds).

All of it is generated ``block`` samples at a time (vectorised, phases carried
across blocks) and handed out chunk by chunk, so a chunk costs one slice copy.
Stimulus-locked artefacts (light steps on the electrodes) and the bursts are
added by :class:`~acquisition.fish._behaviour.Behaviour`, which knows when they happen.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from rig.core.simulation import FishConfig

__all__ = ["TailBackground"]

_BEAT_WIDTH_S = 0.008  # sd of the heartbeat's biphasic deflection (a QRS-like ~20 ms event)
_DRIFT_TAU_S = 20.0
_DRIFT_STEP = 60  # samples (10 ms at 6 kHz): the drift is drawn at this step and held


class TailBackground:
    """The electrodes' signal without bursts, for two channels, in order, ``take(n)`` at a time."""

    def __init__(
        self, cfg: FishConfig, fs: float, rng: np.random.Generator, block: int = 30_000
    ) -> None:
        self.fs = fs
        self.rng = rng
        self.block = block
        #: This fish's electrode noise (V, sd): the configured level times its own factor.
        self.noise_v = cfg.noise_v * float(math.exp(rng.normal(0.0, cfg.snr_spread)))
        self.mains_hz = cfg.mains_hz
        self.mains_v = cfg.mains_v * rng.uniform(0.6, 1.4, size=2)
        self._mains_phase = rng.uniform(0.0, 2.0 * math.pi, size=2)
        lo, hi = cfg.heart_rate_hz
        #: This fish's heart rate (Hz).
        self.heart_hz = float(rng.uniform(lo, hi))
        self.heart_v = cfg.heartbeat_v * rng.uniform(0.6, 1.4, size=2)
        self.drift_v = cfg.drift_v
        self._next_beat = float(rng.uniform(0.0, 1.0 / self.heart_hz))
        self._carry: list[float] = []
        a = math.exp(-_DRIFT_STEP / (_DRIFT_TAU_S * fs))
        self._drift_ab = (np.array([math.sqrt(1.0 - a * a)]), np.array([1.0, -a]))
        self._drift_zi = (rng.normal(0.0, 1.0, 2) * a)[None, :]  # start in the stationary law
        period = fs / self.mains_hz if self.mains_hz > 0.0 else 0.0
        self._hum: np.ndarray | None = None
        if period and abs(period - round(period)) < 1e-9:
            w = 2.0 * math.pi * np.arange(round(period))[:, None] / period + self._mains_phase
            self._hum = self.mains_v[None, :] * (np.sin(w) + 0.3 * np.sin(3.0 * w))
        self._t0 = 0  # first sample of the buffer
        self._buf = np.zeros((0, 2))
        self._i = 0

    def _make(self, s0: int, n: int) -> np.ndarray:
        fs = self.fs
        t = (s0 + np.arange(n)) / fs
        out = self.rng.normal(0.0, self.noise_v, size=(n, 2))
        if self.mains_hz > 0.0:
            if self._hum is not None:  # a whole number of samples per cycle: one table
                out += self._hum[(s0 + np.arange(n)) % len(self._hum)]
            else:
                w = 2.0 * math.pi * self.mains_hz * t[:, None] + self._mains_phase[None, :]
                out += self.mains_v[None, :] * (np.sin(w) + 0.3 * np.sin(3.0 * w))
        if self.heart_hz > 0.0 and np.any(self.heart_v):
            w4 = 4 * _BEAT_WIDTH_S
            beats = self._carry
            b = self._next_beat
            while b - w4 <= float(t[-1]):
                beats.append(b)
                b += (1.0 / self.heart_hz) * (1.0 + float(self.rng.normal(0.0, 0.03)))
            self._next_beat = b
            # a beat at the block's end goes on into the next block
            self._carry = [beat for beat in beats if beat + w4 > float(t[-1])]
            for beat in beats:  # a few per block: each touches ~50 ms of samples
                i0 = max(0, int((beat - 4 * _BEAT_WIDTH_S - t[0]) * fs))
                i1 = min(n, int((beat + 4 * _BEAT_WIDTH_S - t[0]) * fs) + 1)
                if i1 <= i0:
                    continue
                u = (t[i0:i1] - beat) / _BEAT_WIDTH_S
                out[i0:i1] += self.heart_v[None, :] * (-u * np.exp(0.5 - 0.5 * u * u))[:, None]
        if self.drift_v > 0.0:
            # the drift moves over seconds: drawn every _DRIFT_STEP samples and held between
            b_, a_ = self._drift_ab
            steps = -(-n // _DRIFT_STEP)
            d, self._drift_zi = signal.lfilter(
                b_, a_, self.rng.standard_normal((steps, 2)), axis=0, zi=self._drift_zi
            )
            out += self.drift_v * np.repeat(d, _DRIFT_STEP, axis=0)[:n]
        return out

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (n, 2), a fresh array the caller may add to."""
        i = self._i
        if i + n > len(self._buf):
            rest = self._buf[i:]
            start = self._t0 + len(self._buf)
            new = self._make(start, max(self.block, n))
            self._t0 = start - len(rest)
            self._buf = np.concatenate([rest, new])
            i = 0
        self._i = i + n
        return self._buf[i : i + n].copy()
