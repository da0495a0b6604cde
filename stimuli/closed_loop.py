"""Closed-loop feedback laws: swim power in, the visual world's motion out.

The law runs once per DAQ chunk (a few ms), not per display frame, so a swim
reaches the stimulus state as soon as its chunk is read. The Ahrens lab's rule
is written per 60 Hz frame (``v <- 0.3 v + 0.6 target``); :class:`FlowLaw` applies
the exact same recurrence for any ``dt`` (it equals the lab's rule at
``dt = 1/60 s``), so the feedback does not depend on the chunk size.

Sign convention: ``velocity`` > 0 means the pattern moves from head to tail,
which is what the world does when the fish swims forward. At rest the water
"carries the fish backwards", i.e. the pattern drifts forward: ``velocity = -drift``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["FlowLaw", "LoopState", "SwimDelay", "SwimInput", "TurnLaw"]

#: The lab's rule is per stimulus frame at this rate.
LAB_FRAME_S = 1.0 / 60.0
_KEEP = 0.3  # v <- 0.3 v + 0.6 target, per lab frame
_PUSH = 0.6


@dataclass(frozen=True, slots=True)
class SwimInput:
    """The swim detector's output for one chunk (powers are in units of threshold)."""

    swimming: bool
    power_left: float
    power_right: float


@dataclass(slots=True)
class LoopState:
    """The closed-loop state the renderer reads: newest value wins.

    ``condition`` says which protocol condition the state belongs to. The state
    starts every condition afresh (:meth:`Stimulus.initial_loop`): a frame of a
    condition drawn from a state of another one (a flip just after a condition
    starts, before the engine's next chunk) uses the new condition's start state,
    never the last one's heading or position.
    """

    velocity: float = 0.0  # mm/s, see module docstring
    position_mm: float = 0.0  # integral of velocity
    heading_deg: float = 0.0  # closed-loop heading (2-D laws), 0 = straight ahead
    gain: float = 0.0
    swimming: bool = False
    updated_sample: int = 0
    condition: int = -1
    #: A brain-triggered step's stimulus starts at this DAQ sample (-1: not triggered yet).
    trigger_sample: int = -1

    def copy(self) -> LoopState:
        return LoopState(
            self.velocity,
            self.position_mm,
            self.heading_deg,
            self.gain,
            self.swimming,
            self.updated_sample,
            self.condition,
            self.trigger_sample,
        )


@dataclass(frozen=True, slots=True)
class FlowLaw:
    """1-D water flow with gain (the lab's rule).

    While swimming the velocity is pulled towards ``-drift + gain * power``;
    otherwise it relaxes towards ``-drift`` at ``relax_mm_s2``.
    """

    drift_mm_s: float
    gain: float
    max_speed_mm_s: float = 60.0
    relax_mm_s2: float = 40.0

    def step(self, state: LoopState, swim: SwimInput, dt: float) -> None:
        rest = -self.drift_mm_s
        if swim.swimming:
            target = rest + self.gain * 0.5 * (swim.power_left + swim.power_right)
            fixed = _PUSH / (1.0 - _KEEP) * target
            keep = _KEEP ** (dt / LAB_FRAME_S)
            v = fixed + (state.velocity - fixed) * keep
        else:
            step = self.relax_mm_s2 * dt
            v = state.velocity
            v = min(v + step, rest) if v < rest else max(v - step, rest)
        v = max(-self.max_speed_mm_s, min(self.max_speed_mm_s, v))
        state.velocity = v
        state.position_mm += v * dt
        state.gain = self.gain
        state.swimming = swim.swimming


@dataclass(frozen=True, slots=True)
class TurnLaw:
    """2-D feedback: forward flow as :class:`FlowLaw`, plus turning from left/right power.

    A stronger left tail signal turns the fish left (heading increases,
    counter-clockwise), as a real fish's tail bend does.
    """

    flow: FlowLaw
    turn_gain_deg: float = 30.0  # degrees per second per unit of power difference

    def step(self, state: LoopState, swim: SwimInput, dt: float) -> None:
        self.flow.step(state, swim, dt)
        if swim.swimming:
            turn = self.turn_gain_deg * (swim.power_left - swim.power_right) * dt
            state.heading_deg = math.remainder(state.heading_deg + turn, 360.0)


_AT_REST = SwimInput(False, 0.0, 0.0)


class SwimDelay:
    """The swim detector's output held back by a feedback delay, on the DAQ clock.

    Portugues & Engert (2011) delayed the visual feedback of swims; here the delay sits
    between the detector and the law, so the world's drift keeps its own time and only
    the answer to a swim comes late. Each chunk's swim input is due ``delay`` samples
    after the chunk's end; the law at a chunk's end gets the newest input that is due
    (a delay that is a whole number of chunks adds exactly that delay). A condition
    starts with an empty line (:meth:`reset`): no swim is due before its first delay
    has passed. When a step shortens the delay, inputs keep their order, so the shorter
    delay takes over once the longer one's inputs have come out.
    """

    def __init__(self) -> None:
        self._line: deque[tuple[int, SwimInput]] = deque()
        self._due_last = -1
        self._held = _AT_REST

    def reset(self) -> None:
        self._line.clear()
        self._due_last = -1
        self._held = _AT_REST

    def __call__(self, swim: SwimInput, chunk_end: int, delay_samples: int) -> SwimInput:
        """The swim input the law should see at ``chunk_end``."""
        if delay_samples <= 0 and not self._line:
            self._held = swim
            return swim
        due = max(chunk_end + max(delay_samples, 0), self._due_last)
        self._due_last = due
        self._line.append((due, swim))
        while self._line and self._line[0][0] <= chunk_end:
            self._held = self._line.popleft()[1]
        return self._held
