"""The stimulus library: every condition of the dataset plus shadows."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from stimuli.library._base import Stimulus, StimulusLaw
from stimuli.library.gratings import Flow, Position, Replay, Rotation, Turning
from stimuli.library.objects import Dots, Shadow
from stimuli.library.whole_field import Dark, Flash, Taxis

__all__ = [
    "STIMULUS_KINDS",
    "AnyStimulus",
    "Dark",
    "Dots",
    "Flash",
    "Flow",
    "Position",
    "Replay",
    "Rotation",
    "Shadow",
    "Stimulus",
    "StimulusLaw",
    "Taxis",
    "Turning",
]

AnyStimulus = Annotated[
    Dark | Flash | Taxis | Flow | Position | Replay | Turning | Rotation | Shadow | Dots,
    Field(discriminator="kind"),
]

#: kind -> class, for error messages and docs.
STIMULUS_KINDS: dict[str, type[Stimulus]] = {
    cls.model_fields["kind"].default: cls
    for cls in (Dark, Flash, Taxis, Flow, Position, Replay, Turning, Rotation, Shadow, Dots)
}
