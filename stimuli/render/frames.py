"""Frame records from the timeline and the closed-loop state, shared by every renderer.

The engine's headless renderer and the PsychoPy renderer process both make
frames here, so what is drawn, what the fish model sees and what is logged
come from one function.
"""

from __future__ import annotations

import numpy as np

from rig.core.config import SyncPatchConfig
from stimuli.closed_loop import LoopState
from stimuli.library import Replay, Stimulus
from stimuli.protocol import WaitFor
from stimuli.render.sync_patch import patch_level
from stimuli.schedule import Schedule
from stimuli.state import Look, empty_frame

__all__ = ["FrameMaker", "brain_trigger_sample"]


def brain_trigger_sample(step_start: int, timeout_s: float, loop: LoopState, fs: float) -> int:
    """Where a brain-triggered step's stimulus starts: the engine's decision if it was made in
    this step, else the timeout (so a frame never waits for a decision that is not coming)."""
    timeout = step_start + round(timeout_s * fs)
    if step_start <= loop.trigger_sample <= timeout:
        return loop.trigger_sample
    return timeout


def _waiting(rec: np.void, stim: Stimulus) -> None:
    """A brain-triggered step before its trigger: the stimulus's background, nothing moving."""
    rec["look"] = Look.UNIFORM
    rec["luminance"] = float(getattr(stim, "background", 0.0))
    rec["stim_id"] = 0


class FrameMaker:
    """Makes the frame record for a flip at a DAQ sample."""

    def __init__(self, timeline: Schedule) -> None:
        self.timeline = timeline
        self.fs = timeline.sample_rate_hz
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

        self._patch: SyncPatchConfig | None = None
        #: Per (condition, step): its stimulus (a replay bound to its trace), the step's
        #: wait, the feedback delay and the history to extend (None: not replayed). Looked
        #: up once per step, not per frame (~430,000 frames in the full protocol).
        self._steps: dict[
            tuple[int, int], tuple[Stimulus, WaitFor | None, float, list[float] | None]
        ] = {}

    def set_frame_rate(self, hz: float) -> None:
        self._history_rate = hz

    def set_sync_patch(self, patch: SyncPatchConfig | None) -> None:
        """Fill ``sync_level`` for this patch (None: the rig draws no patch, level 0)."""
        self._patch = patch

    def make(self, frame: int, flip_sample: int, loop: LoopState) -> np.void:
        rec = empty_frame()
        self.make_into(rec, frame, flip_sample, loop)
        return rec

    def make_into(self, rec: np.void, frame: int, flip_sample: int, loop: LoopState) -> None:
        """:meth:`make` written into ``rec``, an all-zero record (a row of the caller's table:
        no record of its own made and copied per frame)."""
        self._fill(rec, frame, flip_sample, loop)
        rec["sync_level"] = patch_level(self._patch, frame, float(rec["luminance"]))
        rec["light_sample"] = -1  # measured later, from the photodiode

    def _fill(self, rec: np.void, frame: int, flip_sample: int, loop: LoopState) -> None:
        rec["frame"] = frame
        rec["flip_sample"] = flip_sample
        at = self.timeline.step_at(flip_sample)
        if at is None:
            rec["condition"] = -1
            return
        step = self._steps.get((at.condition, at.step))
        if step is None:
            step = self._step_info(at.condition, at.step, at.stimulus)
        stim, wait, delay_ms, history = step
        rec["condition"] = at.condition
        rec["stim_id"] = stim.stim_id
        if loop.condition != at.condition:
            # the newest state is still the previous condition's: this one starts from rest
            loop = self.timeline.initial_loop(at.condition)
        if wait is None:
            stim.fill(rec, at.t_in_step, loop)
        else:
            start = brain_trigger_sample(at.step_start_sample, wait.timeout_s, loop, self.fs)
            if flip_sample < start:
                _waiting(rec, stim)
            else:
                stim.fill(rec, (flip_sample - start) / self.fs, loop)
        rec["feedback_delay_ms"] = delay_ms
        if history is not None:
            history.append(float(rec["velocity"]))

    def _step_info(
        self, c: int, s: int, stimulus: Stimulus
    ) -> tuple[Stimulus, WaitFor | None, float, list[float] | None]:
        """What :meth:`_fill` needs of step ``s`` of condition ``c``, at its first frame (a
        replay is bound to the trace recorded by then, as before)."""
        stim = self._resolve(c, s, stimulus)
        name = self.timeline.protocol.conditions[c].name
        history = self._history.setdefault(name, []) if name in self._replayed else None
        info = (
            stim,
            self.timeline.steps_of(c)[s].wait_for,
            stim.applied_feedback_delay_ms(),
            history,
        )
        self._steps[(c, s)] = info
        return info

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
