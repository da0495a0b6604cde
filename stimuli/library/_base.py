"""The shape every stimulus shares: parameters in physical units, a pure ``fill``.

A stimulus never holds run-time state: ``fill(rec, t, loop)`` writes the frame
record for time ``t`` (seconds since its step began) from its parameters and the
closed-loop state alone. That makes frames reproducible, testable one by one,
and safe to evaluate in the engine and in the renderer process alike.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stimuli.closed_loop import FlowLaw, LoopState, TurnLaw

__all__ = [
    "DELAY_REASON",
    "MAX_FEEDBACK_DELAY_MS",
    "FeedbackDelay",
    "Luminance",
    "Stimulus",
    "StimulusLaw",
    "time_like_fields",
]

StimulusLaw = FlowLaw | TurnLaw | None


def Luminance(default: float) -> float:
    """A luminance field (0 = black, 1 = full projector brightness)."""
    return Field(default, ge=0.0, le=1.0)


#: Longest feedback delay a closed-loop stimulus may add (ms). Chosen: a delay of a second
#: already separates a swim from its visual consequence by several bouts' length, and the
#: engine keeps the delayed swim inputs in memory (one per DAQ chunk).
MAX_FEEDBACK_DELAY_MS = 1000.0
#: Why ``feedback_delay_ms`` stays physical at a time scale.
DELAY_REASON = (
    "a latency of the fish's sensorimotor loop, not of the protocol's time course: "
    "a shortened run keeps the same feedback the fish would get"
)


def FeedbackDelay() -> float:
    """A closed-loop stimulus's added feedback delay (ms): swims reach the law this much later."""
    return Field(0.0, ge=0.0, le=MAX_FEEDBACK_DELAY_MS)


#: A field name that holds a speed or an acceleration (mm/s, deg/s, mm/s²): physical, not a time.
_SPEED = re.compile(r"(_mm_s2?|_per_s)$")
#: A field name that holds a time or a rate: seconds, milliseconds, periods, durations, Hz.
_TIME_LIKE = re.compile(r"(_s|_ms|_hz)$|period|duration")


def time_like_fields(cls: type[BaseModel]) -> list[str]:
    """The fields of a stimulus class whose names say they hold a time or a rate."""
    return [n for n in cls.model_fields if _TIME_LIKE.search(n) and not _SPEED.search(n)]


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
    #: Durations inside the stimulus (seconds: periods, on/off phases, segments, ramps):
    #: a protocol run at a time scale multiplies them by it (:meth:`scaled`).
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Rates (Hz) of the stimulus's own time course: divided by the time scale.
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Time-like fields that stay physical whatever the time scale, each with the reason.
    PHYSICAL_TIME_FIELDS: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A stimulus class with a time-like field it did not declare is refused at import:
        at a time scale that field would keep its full length and the stimulus would show
        a different protocol from the one that runs on a fish (issue 26)."""
        super().__pydantic_init_subclass__(**kwargs)
        declared = {*cls.TIME_FIELDS, *cls.RATE_FIELDS, *cls.PHYSICAL_TIME_FIELDS}
        missing = [n for n in time_like_fields(cls) if n not in declared]
        unknown = sorted(declared - set(cls.model_fields))
        if missing or unknown:
            raise TypeError(
                f"stimulus {cls.__name__}: "
                + (f"time-like fields {missing} are not declared; " if missing else "")
                + (f"declared fields {unknown} do not exist; " if unknown else "")
                + "list each in TIME_FIELDS (scaled with the protocol), RATE_FIELDS (Hz, "
                "divided by the scale) or PHYSICAL_TIME_FIELDS (kept, with a reason)"
            )

    def scaled(self, factor: float) -> Self:
        """This stimulus with its own time course at ``factor`` of its length.

        Durations multiply and rates divide by ``factor``; speeds, sizes and luminances
        stay physical, so a shortened run shows the same sequence of states, faster.
        """
        if factor == 1.0:
            return self
        update: dict[str, Any] = {n: getattr(self, n) * factor for n in self.TIME_FIELDS}
        update.update({n: getattr(self, n) / factor for n in self.RATE_FIELDS})
        return self.model_copy(update=update)

    def law(self) -> StimulusLaw:
        """The feedback law this stimulus needs, or None for open loop."""
        return None

    def applied_feedback_delay_ms(self) -> float:
        """The delay (ms) added between a swim and the feedback law that answers it;
        0 for open-loop stimuli (the engine delays the swim input, rig/engine.py)."""
        return 0.0

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
