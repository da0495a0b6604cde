"""Every volume, plane and condition of a run as a DAQ sample: the rig's clockwork.

The DAQ generates the camera triggers, so the trigger times are known before
the run starts: volume ``t``'s first plane trigger is at
``lead_in + round(t * period * fs)`` (no drift over two hours), its planes follow
evenly over the period less the flyback, and a volume-start marker pulse comes
``marker_lead`` before plane 0 (the dataset's layout: an extra pulse, not plane 0's).
This one table drives the simulated and the real DAQ alike, and ``zaprig plan``
prints it before any hardware moves.

Condition onsets follow the dataset's own decoder (DATASET.md): a timestep
begins at its first plane peak, so a condition starts inside its first volume's
first plane, right after plane 0's trigger pulse has ended (``onset_delay``).
Starting on the marker, or on plane 0's rising edge, would put it one timestep early.

This is the floor's half of the timeline: numbers only, from the rig config and each
condition's length in volumes, so the devices (which need the triggers) do not depend on
the stimuli. :class:`stimuli.schedule.Schedule` adds the protocol's steps on top.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rig.core.config import RigConfig

__all__ = ["Timeline"]


@dataclass(frozen=True)
class Timeline:
    sample_rate_hz: float
    volume_period_s: float
    planes_per_volume: int
    lead_in_samples: int
    #: Samples from one plane trigger to the next (planes fill the period less the flyback).
    plane_step_samples: float
    #: The volume-start marker comes this many samples before plane 0.
    marker_lead_samples: int
    #: A condition starts this many samples after its first plane trigger (the pulse width).
    onset_delay_samples: int
    #: Condition boundaries in volumes: condition c spans [bounds[c], bounds[c+1]).
    condition_bounds: tuple[int, ...]

    @classmethod
    def for_volumes(cls, rig: RigConfig, volumes_per_condition: Sequence[int]) -> Timeline:
        """The timeline of conditions with these lengths (in volumes) on ``rig``."""
        period = rig.microscope.volume_period_s
        bounds = tuple(int(x) for x in np.concatenate([[0], np.cumsum(volumes_per_condition)]))
        fs = rig.daq.sample_rate_hz
        z = rig.microscope.planes_per_volume
        flyback = rig.microscope.flyback_ms * 1e-3 * fs
        return Timeline(
            sample_rate_hz=fs,
            volume_period_s=period,
            planes_per_volume=z,
            lead_in_samples=round(rig.microscope.lead_in_s * fs),
            plane_step_samples=(period * fs - flyback) / z,
            marker_lead_samples=round(rig.daq.marker_lead_ms * 1e-3 * fs),
            onset_delay_samples=max(1, round(rig.daq.trigger_pulse_ms * 1e-3 * fs)),
            condition_bounds=bounds,
        )

    @property
    def n_volumes(self) -> int:
        return self.condition_bounds[-1]

    @property
    def n_conditions(self) -> int:
        return len(self.condition_bounds) - 1

    def volume_start(self, t: int | np.ndarray) -> np.ndarray:
        """Sample of volume ``t``'s first plane trigger (also valid for t = n_volumes)."""
        t = np.asarray(t, dtype=np.int64)
        spv = self.volume_period_s * self.sample_rate_hz
        return self.lead_in_samples + np.rint(t * spv).astype(np.int64)

    @cached_property
    def volume_starts(self) -> np.ndarray:
        return self.volume_start(np.arange(self.n_volumes))

    @cached_property
    def plane_samples(self) -> np.ndarray:
        """(n_volumes, planes) trigger samples; planes evenly spaced, then the flyback."""
        z = self.planes_per_volume
        offsets = np.rint(np.arange(z) * self.plane_step_samples).astype(np.int64)
        planes: np.ndarray = self.volume_starts[:, None] + offsets[None, :]
        return planes

    @cached_property
    def marker_samples(self) -> np.ndarray:
        """(n_volumes + 1,) volume-start marker pulses: one before each volume's plane 0,
        and one closing the last volume, so the dataset's decoder (which reads a timestep
        as the planes between two markers) decodes every volume, the last one included."""
        return self.volume_start(np.arange(self.n_volumes + 1)) - self.marker_lead_samples

    @cached_property
    def all_plane_samples(self) -> np.ndarray:
        return self.plane_samples.ravel()

    @cached_property
    def end_sample(self) -> int:
        """The run ends where a next volume would start."""
        return int(self.volume_start(self.n_volumes))

    @property
    def duration_s(self) -> float:
        return self.end_sample / self.sample_rate_hz

    @cached_property
    def condition_start_samples(self) -> np.ndarray:
        """(n_conditions + 1,) start samples; the last entry is the end of the run.

        Each condition starts right after its first plane trigger pulse (module docstring).
        """
        starts = self.volume_start(np.asarray(self.condition_bounds)) + self.onset_delay_samples
        starts[-1] = self.end_sample
        return starts

    @cached_property
    def _condition_starts(self) -> list[int]:
        # a Python list: bisect on it costs a fraction of a numpy call, and the engine asks
        # once per chunk and per frame (720,000 chunks in the full protocol)
        return [int(x) for x in self.condition_start_samples]

    def condition_at(self, sample: int) -> int:
        """Index of the condition on at ``sample``; -1 before the first, n after the last."""
        starts = self._condition_starts
        if sample < starts[0]:
            return -1
        return min(bisect.bisect_right(starts, sample) - 1, len(starts) - 1)
