"""The shape every stimulus shares: parameters in physical units, a pure ``fill``.

A stimulus never holds run-time state: ``fill(rec, t, loop)`` writes the frame
record for time ``t`` (seconds since its step began) from its parameters and the
closed-loop state alone. That makes frames reproducible, testable one by one,
and safe to evaluate in the engine and in the renderer process alike.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stimuli.closed_loop import FlowLaw, LoopState, TurnLaw

__all__ = ["Luminance", "Stimulus", "StimulusLaw"]

StimulusLaw = FlowLaw | TurnLaw | None


def Luminance(default: float) -> float:
    """A luminance field (0 = black, 1 = full projector brightness)."""
    return Field(default, ge=0.0, le=1.0)  # type: ignore[no-any-return]


class Stimulus(BaseModel):
    """Base class: subclasses set ``kind`` and implement :meth:`fill`."""

    # NaN and infinity are never a physical parameter
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    #: The first ``stimID`` (row 7) of this step: the frame's sub-stimulus code
    #: (:attr:`STIM_ID`) is added to it, so steps of one condition can be told apart too.
    stim_id: int = Field(0, ge=0, le=32000)
    #: Documents which dataset row each parameter lands in (docs/stimulus-rows.md).
    ROWS: ClassVar[dict[str, str]] = {}
    #: What the sub-stimulus code added to ``stim_id`` in row 7 means (docs/stimulus-rows.md).
    STIM_ID: ClassVar[str] = "0"

    def law(self) -> StimulusLaw:
        """The feedback law this stimulus needs, or None for open loop."""
        return None

    def initial_loop(self, condition: int) -> LoopState:
        """The closed-loop state a condition starting with this stimulus begins in.

        Every condition starts from rest: the world still (or drifting at the
        stimulus's own rest speed), at position 0 and heading 0, whatever the
        previous condition left behind. Steps within a condition carry the state
        on, so a gain change does not make the world jump.
        """
        return LoopState(condition=condition)

    def _sub_stimulus(self, rec: np.void, code: int) -> None:
        """Row 7: this step's ``stim_id`` plus the frame's sub-stimulus code."""
        rec["stim_id"] = self.stim_id + code

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        """Write this stimulus's frame for ``t`` seconds into its step."""
        raise NotImplementedError
