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

    #: The dataset's ``stimID`` for this stimulus within its condition (row 7).
    stim_id: int = Field(0, ge=0, le=32767)
    #: Documents which dataset row each parameter lands in (docs/stimulus-rows.md).
    ROWS: ClassVar[dict[str, str]] = {}

    def law(self) -> StimulusLaw:
        """The feedback law this stimulus needs, or None for open loop."""
        return None

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        """Write this stimulus's frame for ``t`` seconds into its step."""
        raise NotImplementedError
