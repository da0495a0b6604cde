"""Whole-field stimuli: darkness, light/dark flashes, light/dark halves (phototaxis)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stimuli.closed_loop import FlowLaw, LoopState, TurnLaw
from stimuli.library._base import DELAY_REASON, FeedbackDelay, Luminance, Stimulus, StimulusLaw
from stimuli.state import Look

__all__ = ["Dark", "Flash", "Taxis"]


class Dark(Stimulus):
    """No visual stimulus: the projector shows black (or a set dim level)."""

    kind: Literal["dark"] = "dark"
    luminance: float = Luminance(0.0)
    ROWS: ClassVar[dict[str, str]] = {"param3": "luminance"}
    STIM_ID: ClassVar[str] = "0"

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        rec["look"] = Look.UNIFORM
        rec["luminance"] = self.luminance
        rec["param3"] = self.luminance


class Flash(Stimulus):
    """Whole-field light/dark steps: ``on_s`` at ``on_luminance``, then the rest of the period off."""

    kind: Literal["flash"] = "flash"
    period_s: float = Field(60.0, gt=0.0)
    on_s: float = Field(30.0, ge=0.0)
    on_luminance: float = Luminance(1.0)
    off_luminance: float = Luminance(0.0)
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("period_s", "on_s")
    ROWS: ClassVar[dict[str, str]] = {"param3": "luminance", "param4": "1 while on, else 0"}
    STIM_ID: ClassVar[str] = "0 off (dark phase), 1 on (light phase)"

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        on = (t % self.period_s) < self.on_s
        lum = self.on_luminance if on else self.off_luminance
        self._sub_stimulus(rec, 1 if on else 0)
        rec["look"] = Look.UNIFORM
        rec["luminance"] = lum
        rec["param3"] = lum
        rec["param4"] = 1.0 if on else 0.0


class Taxis(Stimulus):
    """Light on one half of the field, dark on the other; the bright side alternates.

    With ``closed_loop`` the boundary turns with the fish's closed-loop heading,
    so the fish can steer towards (or away from) the light (2-D feedback).
    """

    kind: Literal["taxis"] = "taxis"
    period_s: float = Field(120.0, gt=0.0)
    bright_luminance: float = Luminance(1.0)
    dark_luminance: float = Luminance(0.0)
    first_bright_side: Literal["left", "right"] = "left"
    closed_loop: bool = True
    gain: float = Field(1.0, ge=0.0)
    turn_gain_deg: float = Field(30.0, ge=0.0)
    feedback_delay_ms: float = FeedbackDelay()
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("period_s",)
    PHYSICAL_TIME_FIELDS: ClassVar[dict[str, str]] = {"feedback_delay_ms": DELAY_REASON}
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "bright side (-1 left, +1 right)",
        "param4": "boundary angle (deg)",
    }
    STIM_ID: ClassVar[str] = "0 left half bright, 1 right half bright"

    def law(self) -> StimulusLaw:
        if not self.closed_loop:
            return None
        return TurnLaw(FlowLaw(drift_mm_s=0.0, gain=self.gain), turn_gain_deg=self.turn_gain_deg)

    def applied_feedback_delay_ms(self) -> float:
        return self.feedback_delay_ms if self.closed_loop else 0.0

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        first_half = (t % self.period_s) < self.period_s / 2
        left_first = self.first_bright_side == "left"
        left_bright = first_half == left_first
        self._sub_stimulus(rec, 0 if left_bright else 1)
        rec["look"] = Look.HALVES
        rec["left_luminance"] = self.bright_luminance if left_bright else self.dark_luminance
        rec["right_luminance"] = self.dark_luminance if left_bright else self.bright_luminance
        rec["luminance"] = 0.5 * (self.bright_luminance + self.dark_luminance)
        # The boundary runs along the fish's axis; turning the fish turns the world the other way.
        angle = -loop.heading_deg if self.closed_loop else 0.0
        rec["angle_deg"] = math.remainder(angle, 360.0)
        rec["heading_deg"] = loop.heading_deg
        rec["gain"] = self.gain if self.closed_loop else 0.0
        rec["param3"] = -1.0 if left_bright else 1.0
        rec["param4"] = rec["angle_deg"]
