"""Camera-trigger and scan waveforms on the DAQ clock, shared by the simulated and NI DAQs.

The dataset's decoder finds volume starts as peaks above 3.55 V and planes as
peaks above 1 V (``scipy.signal.find_peaks``). We command a rectangular pulse
per plane: ``volume_start_v`` for a volume's first plane, ``plane_trigger_v``
for the others.
"""

from __future__ import annotations

import numpy as np

from rig.config import DaqConfig
from rig.timeline import Timeline

__all__ = ["galvo_waveform", "piezo_waveform", "pulse_width_samples", "trigger_waveform"]


def pulse_width_samples(cfg: DaqConfig) -> int:
    return max(1, round(cfg.trigger_pulse_ms * 1e-3 * cfg.sample_rate_hz))


def trigger_waveform(
    timeline: Timeline, cfg: DaqConfig, s0: int, n: int, droop: float = 0.0
) -> np.ndarray:
    """The camera-trigger output for samples ``[s0, s0 + n)`` (float64 volts).

    ``droop`` > 0 makes each pulse sag by that fraction over its width, as the
    simulated read-back does, so each pulse has its peak on its first sample
    (``find_peaks`` then reports the trigger sample itself, not a plateau's middle).
    """
    out = np.zeros(n, dtype=np.float64)
    width = pulse_width_samples(cfg)
    triggers = timeline.all_plane_samples
    lo = int(np.searchsorted(triggers, s0 - width + 1, side="left"))
    hi = int(np.searchsorted(triggers, s0 + n, side="left"))
    if lo >= hi:
        return out
    z = timeline.planes_per_volume
    shape = 1.0 - droop * np.arange(width) / width
    for k in range(lo, hi):
        s = int(triggers[k])
        level = cfg.volume_start_v if k % z == 0 else cfg.plane_trigger_v
        a, b = max(s, s0), min(s + width, s0 + n)
        out[a - s0 : b - s0] = level * shape[a - s : b - s]
    return out


def galvo_waveform(timeline: Timeline, cfg: DaqConfig, s0: int, n: int) -> np.ndarray:
    """Sheet-scanning galvo: a staircase, one level per plane, from -A to +A across the volume."""
    return _staircase(timeline, s0, n)[0] * cfg.galvo_amplitude_v


def piezo_waveform(timeline: Timeline, cfg: DaqConfig, s0: int, n: int) -> np.ndarray:
    """Objective piezo: follows the galvo so the detection focus stays on the sheet (0..A V)."""
    level, active = _staircase(timeline, s0, n)
    return np.where(active, (level + 1.0) * 0.5 * cfg.piezo_amplitude_v, 0.0)


def _staircase(timeline: Timeline, s0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """-1..+1 by plane index of the plane imaged at each sample, and where the run is on."""
    samples = np.arange(s0, s0 + n, dtype=np.int64)
    triggers = timeline.all_plane_samples
    k = np.searchsorted(triggers, samples, side="right") - 1
    z = timeline.planes_per_volume
    active = (k >= 0) & (samples < timeline.end_sample)
    level = np.where(active, -1.0 + 2.0 * (np.maximum(k, 0) % z) / max(1, z - 1), 0.0)
    return level, active
