"""Gratings: closed-loop water flow, position holding, open-loop replay, turning, rotation.

All draw a square-wave grating (``Look.GRATING``) whose bars are perpendicular
to ``angle_deg`` and which moves along ``angle_deg`` by ``position_mm``.
``angle_deg = 90`` moves the bars along the fish's body axis; positive
``velocity`` moves them head-to-tail (the world as seen when swimming forward).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from stimuli.closed_loop import FlowLaw, LoopState, TurnLaw
from stimuli.library._base import DELAY_REASON, FeedbackDelay, Luminance, Stimulus, StimulusLaw
from stimuli.state import Look

__all__ = ["Flow", "Position", "Replay", "Rotation", "Turning"]

_AXIS_DEG = 270.0  # head-to-tail in the fish frame (y is forward)


class _GratingLook(Stimulus):
    spatial_freq: float = Field(0.1, gt=0.0, le=10.0, description="cycles/mm")
    #: The grating's frequency as the fish receives it; when given, the rig's
    #: ``display.projection`` sets ``spatial_freq`` from it (stimuli/geometry.py).
    cycles_per_deg: float | None = Field(None, gt=0.0, le=5.0, description="cycles/degree")
    contrast: float = Luminance(1.0)
    mean_luminance: float = Luminance(0.5)

    def _grating(self, rec: np.void, angle_deg: float, position_mm: float) -> None:
        rec["look"] = Look.GRATING
        rec["angle_deg"] = angle_deg
        rec["position_mm"] = position_mm
        rec["spatial_freq"] = self.spatial_freq
        rec["contrast"] = self.contrast
        rec["luminance"] = self.mean_luminance


class Flow(_GratingLook):
    """Water flow: a grating drifting forward that the fish's swims push back (1-D closed loop)."""

    kind: Literal["flow"] = "flow"
    drift_mm_s: float = Field(10.0, ge=0.0, le=100.0)
    gain: float = Field(1.0, ge=0.0, le=1000.0)
    closed_loop: bool = True
    #: Added delay between a swim and its feedback (ms; Portugues & Engert 2011 varied it).
    feedback_delay_ms: float = FeedbackDelay()
    PHYSICAL_TIME_FIELDS: ClassVar[dict[str, str]] = {"feedback_delay_ms": DELAY_REASON}
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "drift speed (mm/s)",
        "param4": "spatial frequency (cycles/mm)",
        "param5": "grating position (mm)",
    }
    STIM_ID: ClassVar[str] = "0 (steps tell gains apart by their own stim_id)"

    def law(self) -> StimulusLaw:
        return FlowLaw(self.drift_mm_s, self.gain) if self.closed_loop else None

    def applied_feedback_delay_ms(self) -> float:
        return self.feedback_delay_ms if self.closed_loop else 0.0

    def initial_loop(self, condition: int) -> LoopState:
        # at rest the water carries the fish backwards: the grating drifts forward
        return LoopState(velocity=-self.drift_mm_s, gain=self.gain, condition=condition)

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        if self.closed_loop:
            v, pos = loop.velocity, loop.position_mm
        else:
            v, pos = -self.drift_mm_s, -self.drift_mm_s * t
        self._grating(rec, _AXIS_DEG, pos)
        rec["velocity"] = v
        rec["gain"] = self.gain if self.closed_loop else 0.0
        rec["param3"] = self.drift_mm_s
        rec["param4"] = self.spatial_freq
        rec["param5"] = pos


class Position(_GratingLook):
    """Position holding: the fish must swim to hold its place against a drift (2-D closed loop).

    The drift runs for the first ``drift_fraction`` of each period and then stops,
    so the fish's corrective swims can be compared with and without drift.
    """

    kind: Literal["position"] = "position"
    drift_mm_s: float = Field(5.0, ge=0.0, le=100.0)
    gain: float = Field(1.0, ge=0.0, le=1000.0)
    period_s: float = Field(180.0, gt=0.0)
    drift_fraction: float = Field(2.0 / 3.0, ge=0.0, le=1.0)
    turn_gain_deg: float = Field(30.0, ge=0.0)
    feedback_delay_ms: float = FeedbackDelay()
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("period_s",)
    PHYSICAL_TIME_FIELDS: ClassVar[dict[str, str]] = {"feedback_delay_ms": DELAY_REASON}
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "drift speed now (mm/s)",
        "param4": "heading (deg)",
        "param5": "position (mm)",
    }
    STIM_ID: ClassVar[str] = "0 while drifting, 1 while the drift is off"

    def drift_at(self, t: float) -> float:
        return self.drift_mm_s if (t % self.period_s) < self.drift_fraction * self.period_s else 0.0

    def law(self) -> StimulusLaw:
        return TurnLaw(FlowLaw(self.drift_mm_s, self.gain), turn_gain_deg=self.turn_gain_deg)

    def applied_feedback_delay_ms(self) -> float:
        return self.feedback_delay_ms

    def initial_loop(self, condition: int) -> LoopState:
        return LoopState(velocity=-self.drift_at(0.0), gain=self.gain, condition=condition)

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        self._sub_stimulus(rec, 0 if self.drift_at(t) > 0 else 1)
        self._grating(rec, _AXIS_DEG - loop.heading_deg, loop.position_mm)
        rec["velocity"] = loop.velocity
        rec["gain"] = self.gain
        rec["heading_deg"] = loop.heading_deg
        rec["param3"] = self.drift_at(t)
        rec["param4"] = loop.heading_deg
        rec["param5"] = loop.position_mm


class Replay(_GratingLook):
    """Open loop: a velocity trace replayed without feedback.

    The trace comes inline (``velocities_mm_s`` at ``trace_rate_hz``), from a
    file (resolved when the protocol is loaded) or from an earlier condition of
    the same session (``from_condition``, resolved by the engine when this step
    starts). With no trace at all it drifts at ``drift_mm_s``.
    """

    kind: Literal["replay"] = "replay"
    velocities_mm_s: tuple[float, ...] = ()
    trace_rate_hz: float = Field(60.0, gt=0.0)
    trace_file: str | None = None
    from_condition: str | None = None
    drift_mm_s: float = Field(10.0, ge=0.0, le=100.0)
    #: a shortened run replays the trace faster (its velocities stay physical)
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ("trace_rate_hz",)
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "replayed trace index",
        "param4": "spatial frequency (cycles/mm)",
        "param5": "grating position (mm)",
    }
    STIM_ID: ClassVar[str] = "0"

    @model_validator(mode="after")
    def _one_source(self) -> Replay:
        sources = sum(bool(x) for x in (self.trace_file, self.from_condition))
        if sources > 1:
            raise ValueError("give trace_file or from_condition, not both")
        return self

    @cached_property
    def _positions(self) -> np.ndarray:
        """Running position at each trace sample (one cumulative sum per stimulus)."""
        vel = np.asarray(self.velocities_mm_s, dtype=np.float64)
        return np.concatenate([[0.0], np.cumsum(vel) / self.trace_rate_hz])

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        vel = self.velocities_mm_s
        if vel:
            loops, rem = divmod(t * self.trace_rate_hz, len(vel))
            idx = int(rem)
            v = vel[idx]
            pos = float(loops * self._positions[-1] + self._positions[idx])
            pos += (rem - idx) * v / self.trace_rate_hz
        else:
            idx, v, pos = -1, -self.drift_mm_s, -self.drift_mm_s * t
        self._grating(rec, _AXIS_DEG, pos)
        rec["velocity"] = v
        rec["gain"] = 0.0
        rec["param3"] = idx
        rec["param4"] = self.spatial_freq
        rec["param5"] = pos


class Turning(_GratingLook):
    """Gratings moving in several directions in turn, each ``moving_s`` moving then ``still_s`` still."""

    kind: Literal["turning"] = "turning"
    directions_deg: tuple[float, ...] = (90.0, 0.0, 270.0, 180.0)
    speed_mm_s: float = Field(10.0, ge=0.0, le=100.0)
    moving_s: float = Field(30.0, gt=0.0)
    still_s: float = Field(30.0, ge=0.0)
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("moving_s", "still_s")
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "direction (deg)",
        "param4": "1 while moving, else 0",
        "param5": "grating position (mm)",
    }
    STIM_ID: ClassVar[str] = (
        "2·i while direction i of `directions_deg` moves, 2·i + 1 while it stands still"
    )

    @model_validator(mode="after")
    def _has_directions(self) -> Turning:
        if not self.directions_deg:
            raise ValueError("directions_deg needs at least one direction")
        return self

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        seg = self.moving_s + self.still_s
        k, u = divmod(t, seg)
        i = int(k) % len(self.directions_deg)
        direction = self.directions_deg[i]
        moving = u < self.moving_s
        self._sub_stimulus(rec, 2 * i + (0 if moving else 1))
        pos = self.speed_mm_s * min(u, self.moving_s)
        self._grating(rec, direction, pos)
        rec["velocity"] = self.speed_mm_s if moving else 0.0
        rec["param3"] = direction
        rec["param4"] = 1.0 if moving else 0.0
        rec["param5"] = pos


class Rotation(_GratingLook):
    """A grating rotating about the fish at ``deg_per_s``, reversing every half period."""

    kind: Literal["rotation"] = "rotation"
    deg_per_s: float = Field(45.0, ge=0.0, le=720.0)
    period_s: float = Field(60.0, gt=0.0)
    start_angle_deg: float = 0.0
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("period_s",)
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "grating angle (deg)",
        "param4": "angular velocity (deg/s, + = counter-clockwise)",
    }
    STIM_ID: ClassVar[str] = "0 turning counter-clockwise, 1 turning back clockwise"

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        half = self.period_s / 2
        _k, u = divmod(t, self.period_s)
        # Triangle wave: out for half a period, back for the other half.
        angle = self.start_angle_deg + self.deg_per_s * (u if u < half else self.period_s - u)
        omega = self.deg_per_s if u < half else -self.deg_per_s
        self._sub_stimulus(rec, 0 if u < half else 1)
        self._grating(rec, math.remainder(angle, 360.0), 0.0)
        rec["velocity"] = 0.0
        rec["param3"] = rec["angle_deg"]
        rec["param4"] = omega
