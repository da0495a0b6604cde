"""Frame records from the timeline and the closed-loop state, shared by every renderer.

The engine's headless renderer and the PsychoPy renderer process both make
frames here, so what is drawn, what the fish model sees and what is logged
come from one function.
"""

from __future__ import annotations

import numpy as np

from rig.timeline import Timeline
from stimuli.closed_loop import LoopState
from stimuli.library import Replay, Stimulus
from stimuli.state import empty_frame

__all__ = ["FrameMaker"]


class FrameMaker:
    """Makes the frame record for a flip at a DAQ sample."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        # Velocity shown per frame, per condition name, for Replay(from_condition=...).
        self._history: dict[str, list[float]] = {}
        self._bound: dict[tuple[int, int], Stimulus] = {}
        self._history_rate = 60.0
        # keep velocity history only for conditions a replay step will ask for (memory stays flat)
        self._replayed = {
            st.stimulus.from_condition
            for c in timeline.protocol.conditions
            for st in c.steps
            if isinstance(st.stimulus, Replay) and st.stimulus.from_condition
        }

    def set_frame_rate(self, hz: float) -> None:
        self._history_rate = hz

    def make(self, frame: int, flip_sample: int, loop: LoopState) -> np.void:
        rec = empty_frame()
        rec["frame"] = frame
        rec["flip_sample"] = flip_sample
        at = self.timeline.step_at(flip_sample)
        if at is None:
            rec["condition"] = -1
            return rec
        stim = self._resolve(at.condition, at.step, at.stimulus)
        rec["condition"] = at.condition
        rec["stim_id"] = stim.stim_id
        if loop.condition != at.condition:
            # the newest state is still the previous condition's: this one starts from rest
            loop = self.timeline.initial_loop(at.condition)
        stim.fill(rec, at.t_in_step, loop)
        name = self.timeline.protocol.conditions[at.condition].name
        if name in self._replayed:
            self._history.setdefault(name, []).append(float(rec["velocity"]))
        return rec

    def _resolve(self, c: int, s: int, stim: Stimulus) -> Stimulus:
        if not (isinstance(stim, Replay) and stim.from_condition):
            return stim
        key = (c, s)
        bound = self._bound.get(key)
        if bound is None:
            trace = tuple(self._history.get(stim.from_condition, ()))
            bound = stim.model_copy(
                update={"velocities_mm_s": trace, "trace_rate_hz": self._history_rate}
            )
            self._bound[key] = bound
        return bound
