"""A protocol placed on the rig's clock: which step of which condition is on at a sample.

The floor's :class:`rig.core.timeline.Timeline` knows the triggers and the conditions'
bounds in samples; a :class:`Schedule` is that timeline with the protocol's steps on it.
The renderer, the engine's loop and ``zaprig plan`` ask it which stimulus is on; the devices
need only the triggers, so they take the floor's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

from rig.core.config import RigConfig
from rig.core.timeline import Timeline
from stimuli.closed_loop import LoopState
from stimuli.library import Stimulus
from stimuli.protocol import Protocol, Step

__all__ = ["Schedule", "StepAt"]


@dataclass(frozen=True, slots=True)
class StepAt:
    """Which step is on at a sample, and for how long it has been on."""

    condition: int
    step: int
    stimulus: Stimulus
    t_in_step: float
    step_start_sample: int


@dataclass(frozen=True)
class Schedule(Timeline):
    protocol: Protocol

    @classmethod
    def build(cls, protocol: Protocol, rig: RigConfig) -> Schedule:
        from stimuli.geometry import resolve_angles

        # gratings in cycles/degree get their screen frequency from the rig's projection
        protocol = resolve_angles(protocol, rig.display.projection)
        counts = [c.n_volumes(rig.microscope.volume_period_s) for c in protocol.conditions]
        clock = Timeline.for_volumes(rig, counts)
        return cls(protocol=protocol, **{f.name: getattr(clock, f.name) for f in fields(Timeline)})

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
