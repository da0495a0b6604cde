"""Camera-trigger, volume-marker and scan waveforms on the DAQ clock, shared by every DAQ.

The dataset's TTL layout (DATASET.md), as its own notebook decodes it: per
volume one *volume-start marker* (peak above 3.55 V) and then one pulse per
plane (peaks between 1 and 3.55 V). The marker is an extra pulse on a line of
its own, so the camera, on the camera-trigger line, sees exactly z triggers per
volume. Both lines reach the trigger read-back input through a diode-OR
(docs/hardware.md), so row 2 of the stream is the larger of the two: what
:func:`ttl_readback` models for the simulated DAQ and the NI tests.
"""

from __future__ import annotations

import numpy as np

from rig.core.config import DaqConfig
from rig.core.timeline import Timeline

__all__ = [
    "camera_trigger_waveform",
    "galvo_waveform",
    "piezo_waveform",
    "pulse_width_samples",
    "ttl_readback",
    "volume_marker_waveform",
]


def pulse_width_samples(cfg: DaqConfig) -> int:
    return max(1, round(cfg.trigger_pulse_ms * 1e-3 * cfg.sample_rate_hz))


def _pulses(at: np.ndarray, level: float, width: int, s0: int, n: int, droop: float) -> np.ndarray:
    """Rectangular pulses of ``level`` V starting at the sorted samples ``at``, for [s0, s0+n).

    ``droop`` > 0 makes each pulse sag by that fraction over its width, as a real
    read-back does, so each pulse has its peak on its first sample (``find_peaks``
    then reports the trigger sample itself, not a plateau's middle).
    """
    out = np.zeros(n, dtype=np.float64)
    lo = int(np.searchsorted(at, s0 - width + 1, side="left"))
    hi = int(np.searchsorted(at, s0 + n, side="left"))
    shape = level * (1.0 - droop * np.arange(width) / width)
    for s in at[lo:hi].tolist():
        a, b = max(s, s0), min(s + width, s0 + n)
        out[a - s0 : b - s0] = shape[a - s : b - s]
    return out


def camera_trigger_waveform(
    timeline: Timeline, cfg: DaqConfig, s0: int, n: int, droop: float = 0.0
) -> np.ndarray:
    """The camera-trigger line for samples ``[s0, s0 + n)``: one pulse per plane, nothing else."""
    return _pulses(
        timeline.all_plane_samples, cfg.plane_trigger_v, pulse_width_samples(cfg), s0, n, droop
    )


def volume_marker_waveform(
    timeline: Timeline, cfg: DaqConfig, s0: int, n: int, droop: float = 0.0
) -> np.ndarray:
    """The volume-marker line: one pulse ``marker_lead`` before each volume's plane 0."""
    return _pulses(
        timeline.marker_samples, cfg.volume_start_v, pulse_width_samples(cfg), s0, n, droop
    )


def ttl_readback(
    timeline: Timeline, cfg: DaqConfig, s0: int, n: int, droop: float = 0.0
) -> np.ndarray:
    """What the read-back input sees of both lines through the diode-OR: the larger of the two."""
    result: np.ndarray = np.maximum(
        camera_trigger_waveform(timeline, cfg, s0, n, droop),
        volume_marker_waveform(timeline, cfg, s0, n, droop),
    )
    return result


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
