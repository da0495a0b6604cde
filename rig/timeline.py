"""A protocol placed on a rig's clock: every volume, plane and condition as a DAQ sample.

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
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rig.config import RigConfig
from stimuli.closed_loop import LoopState
from stimuli.library import Stimulus
from stimuli.protocol import Protocol, Step

__all__ = ["StepAt", "Timeline"]


@dataclass(frozen=True, slots=True)
class StepAt:
    """Which step is on at a sample, and for how long it has been on."""

    condition: int
    step: int
    stimulus: Stimulus
    t_in_step: float
    step_start_sample: int


@dataclass(frozen=True)
class Timeline:
    protocol: Protocol
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
    def build(cls, protocol: Protocol, rig: RigConfig) -> Timeline:
        from stimuli.geometry import resolve_angles

        # gratings in cycles/degree get their screen frequency from the rig's projection
        protocol = resolve_angles(protocol, rig.display.projection)
        period = rig.microscope.volume_period_s
        counts = [c.n_volumes(period) for c in protocol.conditions]
        bounds = tuple(int(x) for x in np.concatenate([[0], np.cumsum(counts)]))
        fs = rig.daq.sample_rate_hz
        z = rig.microscope.planes_per_volume
        flyback = rig.microscope.flyback_ms * 1e-3 * fs
        return cls(
            protocol=protocol,
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
        return len(self.protocol.conditions)

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
        return self.volume_starts[:, None] + offsets[None, :]

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

    @cached_property
    def _step_plans(self) -> list[tuple[int, float, tuple[tuple[float, float, Stimulus], ...]]]:
        """Per condition: its start sample, cycle and (start, end, stimulus) of each step in
        the cycle, summed in the order :meth:`step_at` used to sum them on every call."""
        plans: list[tuple[int, float, tuple[tuple[float, float, Stimulus], ...]]] = []
        for c, cond in enumerate(self.protocol.conditions):
            acc = 0.0
            steps: list[tuple[float, float, Stimulus]] = []
            for st in cond.steps:
                steps.append((acc, acc + st.duration_s, st.stimulus))
                acc += st.duration_s
            plans.append((self._condition_starts[c], cond.cycle_s, tuple(steps)))
        return plans

    def step_at(self, sample: int) -> StepAt | None:
        """The step on at ``sample`` (None outside the protocol).

        Asked once per chunk and once per frame (~1 million times in the full protocol),
        so the steps' bounds are worked out once (:attr:`_step_plans`).
        """
        c = self.condition_at(sample)
        if c < 0 or c >= self.n_conditions:
            return None
        c0, cycle, steps = self._step_plans[c]
        t = (sample - c0) / self.sample_rate_hz
        k, u = divmod(t, cycle)
        last = len(steps) - 1
        for j, (acc, end, stimulus) in enumerate(steps):
            if u < end or j == last:
                start = c0 + round((k * cycle + acc) * self.sample_rate_hz)
                return StepAt(c, j, stimulus, u - acc, start)
        raise AssertionError("unreachable")

    def steps_of(self, c: int) -> tuple[Step, ...]:
        return self.protocol.conditions[c].steps

    def initial_loop(self, c: int) -> LoopState:
        """The closed-loop state condition ``c`` starts in (its first stimulus says which)."""
        return self.protocol.conditions[c].steps[0].stimulus.initial_loop(c)

    def summary_rows(self) -> list[tuple[int, str, int, int, int, float, int]]:
        """(index, name, start_volume, stop_volume, volumes, seconds, steps) per condition."""
        rows = []
        for i, c in enumerate(self.protocol.conditions):
            a, b = self.condition_bounds[i], self.condition_bounds[i + 1]
            rows.append((i, c.name, a, b, b - a, (b - a) * self.volume_period_s, len(c.steps)))
        return rows
