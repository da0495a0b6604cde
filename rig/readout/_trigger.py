"""Brain-triggered steps: a step's stimulus starts when a live signal crosses a threshold.

Three lanes take part, each with a few attribute reads or writes:

* the readout lane (:meth:`BrainTrigger.on_row`) computes the step's signal from each
  row and, when it crosses, asks for a start;
* the loop lane (:meth:`BrainTrigger.on_chunk`) turns the request into
  ``LoopState.trigger_sample`` (the end of the chunk it sees it in), which the renderer
  reads with the rest of the state, or starts the stimulus at the timeout;
* the record lane (:meth:`BrainTrigger.on_frames`) finds the first frame of the started
  stimulus and writes the decision's row (``/live/triggers``) with its latency.

The step keeps its length (the protocol's timeline is fixed before the run), and a
frame never waits for a decision: past the timeout it starts on its own
(:func:`stimuli.render.frames.brain_trigger_sample`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rig.readout._compute import LiveRow
from stimuli.closed_loop import LoopState
from stimuli.protocol import WaitFor, parse_region
from stimuli.schedule import Schedule, StepAt

__all__ = ["BrainTrigger", "region_columns"]

#: Volumes of forecast errors a surprise is measured against (their median).
_SURPRISE_WINDOW = 60


def region_columns(
    region: str,
    positions_zyx: np.ndarray,
    ids: np.ndarray,
    tuning: np.ndarray | None,
    tuning_names: tuple[str, ...],
) -> np.ndarray:
    """Trace columns of the neurons in ``region`` (see :class:`~stimuli.protocol.WaitFor`)."""
    kind, arg = parse_region(region)
    n = len(ids)
    if kind == "all":
        return np.arange(n)
    if kind == "tuning":
        if tuning is None or arg not in tuning_names:
            raise ValueError(
                f"wait_for.region {region!r}: needs the simulated brain's tuning "
                f"({', '.join(tuning_names) or 'none on this rig'})"
            )
        # ground-truth labels: label k is neuron k - 1
        neuron = ids - 1
        ok = (neuron >= 0) & (neuron < len(tuning))
        return np.flatnonzero(
            ok & (tuning[np.clip(neuron, 0, len(tuning) - 1)] == tuning_names.index(arg))
        )
    (z0, z1), (y0, y1), (x0, x1) = arg
    p = np.rint(positions_zyx)
    inside = (
        (p[:, 0] >= z0) & (p[:, 0] < z1) & (p[:, 1] >= y0) & (p[:, 1] < y1)
        & (p[:, 2] >= x0) & (p[:, 2] < x1)
    )  # fmt: skip
    return np.flatnonzero(inside)


@dataclass
class _Pending:
    step_start: int
    volume: int
    value: float
    committed: int
    decision: int
    timed_out: bool


class BrainTrigger:
    def __init__(
        self,
        timeline: Schedule,
        columns: Callable[[str], np.ndarray | None],
        committed_sample: Callable[[int], int],
    ) -> None:
        self.tl = timeline
        self.fs = timeline.sample_rate_hz
        self._columns = columns
        self._committed = committed_sample
        self._lock = threading.Lock()
        #: (step start sample, its WaitFor) while a step waits; read by the readout lane.
        self.armed: tuple[int, WaitFor] | None = None
        self._request: tuple[int, int, float, int] | None = None
        self._pending: list[_Pending] = []
        self.decisions = 0
        #: per region a surprise-triggered step waits on: its recent 1-volume-ahead errors
        self._errors: dict[str, deque[float]] = {
            w.region: deque(maxlen=_SURPRISE_WINDOW)
            for c in range(len(timeline.protocol.conditions))
            for st in timeline.steps_of(c)
            if (w := st.wait_for) is not None and w.signal == "surprise"
        }
        self._surprise: dict[str, float] = {}

    @staticmethod
    def wait_of(timeline: Schedule, at: StepAt | None) -> WaitFor | None:
        if at is None:
            return None
        return timeline.steps_of(at.condition)[at.step].wait_for

    # -- loop lane ---------------------------------------------------------------------------
    def on_chunk(self, at: StepAt | None, loop: LoopState, s1: int) -> None:
        wait = self.wait_of(self.tl, at)
        if wait is None or at is None or loop.trigger_sample >= at.step_start_sample:
            self.armed = None
            return
        start = at.step_start_sample
        self.armed = (start, wait)
        with self._lock:
            req, self._request = self._request, None
        if req is not None and req[0] == start:
            _, volume, value, committed = req
            self._decide(loop, _Pending(start, volume, value, committed, s1, False))
        elif at.t_in_step >= wait.timeout_s:
            timeout = start + round(wait.timeout_s * self.fs)
            self._decide(loop, _Pending(start, -1, float("nan"), -1, timeout, True))

    def _decide(self, loop: LoopState, pending: _Pending) -> None:
        loop.trigger_sample = pending.decision
        self.armed = None
        self.decisions += 1
        with self._lock:
            self._pending.append(pending)

    # -- readout lane ------------------------------------------------------------------------
    def _track_surprise(self, row: LiveRow) -> None:
        """Every row, for every region a step may wait on: its error over its running median
        (so the median is ready when the step starts)."""
        fc = row.forecast
        for region, history in self._errors.items():
            cols = self._columns(region)
            if fc is None or cols is None or not len(cols):
                continue
            err = float(np.mean(fc.abs_error[cols]))
            if not np.isfinite(err):
                continue
            med = float(np.median(history)) if len(history) >= 10 else float("nan")
            self._surprise[region] = err / med if med > 0 else float("nan")
            history.append(err)

    def on_row(self, row: LiveRow) -> None:
        if self._errors:
            self._track_surprise(row)
        armed = self.armed
        if armed is None:
            return
        start, wait = armed
        # only what the brain did during this step counts
        if self.tl.plane_samples[row.volume][-1] < start:
            return
        if wait.signal == "surprise":
            value = self._surprise.pop(wait.region, float("nan"))
            if value > wait.above:
                with self._lock:
                    if self._request is None:
                        self._request = (start, row.volume, value, self._committed(row.volume))
            return
        cols = self._columns(wait.region)
        if cols is None or not len(cols) or not len(row.traces_dff):
            return
        value = float(np.mean(row.traces_dff[cols]))
        if value > wait.above:
            with self._lock:
                if self._request is None:
                    self._request = (start, row.volume, value, self._committed(row.volume))

    # -- record lane -------------------------------------------------------------------------
    def on_frames(self, frames: np.ndarray, final: bool = False) -> dict[str, np.ndarray] | None:
        """Rows for ``/live/triggers`` whose first frame has been shown (all of them if final)."""
        with self._lock:
            if not self._pending:
                return None
            done: list[tuple[_Pending, int]] = []
            for p in list(self._pending):
                flips = frames["flip_sample"] if len(frames) else np.zeros(0, np.int64)
                shown = flips[flips >= p.decision]
                if len(shown):
                    done.append((p, int(shown[0])))
                elif final:
                    done.append((p, -1))
                else:
                    continue
                self._pending.remove(p)
        if not done:
            return None
        latency = [
            (s - p.committed) / self.fs if s >= 0 and not p.timed_out else float("nan")
            for p, s in done
        ]
        return {
            "step_start_sample": np.array([p.step_start for p, _ in done], np.int64),
            "volume": np.array([p.volume for p, _ in done], np.int64),
            "value": np.array([p.value for p, _ in done], np.float64),
            "committed_sample": np.array([p.committed for p, _ in done], np.int64),
            "decision_sample": np.array([p.decision for p, _ in done], np.int64),
            "shown_sample": np.array([s for _, s in done], np.int64),
            "timed_out": np.array([p.timed_out for p, _ in done], np.int8),
            "latency_s": np.array(latency, np.float64),
        }
