"""The engine's side of the live readout: what a session does with the readout lane.

The engine owns the loop; this owns everything the readout adds to a session,
so the engine only calls it at fixed points (arm, start, each chunk, each batch
of records, stop):

* the readout lane (a process), fed each volume the image lane hands the writer;
* each :class:`LiveRow` to ``/live`` (through the writer), to the drift warning
  and to subscribers (the GUI);
* the traced neurons' labels, once known (for the file and the live views);
* brain-triggered steps (:class:`BrainTrigger`): the decision on the loop's
  chunks, and ``/live/triggers`` once the stimulus has been shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from rig.core.events import Kind
from rig.readout._compute import LabelIndex, LiveRow
from rig.readout._lane import ReadoutLane
from rig.readout._setup import readout_settings
from rig.readout._trigger import BrainTrigger, region_columns

if TYPE_CHECKING:
    from acquisition.writer import WriterClient
    from rig.core.config import RigConfig
    from stimuli.closed_loop import LoopState
    from stimuli.schedule import Schedule, StepAt

__all__ = ["SessionReadout"]

#: event(sample, kind, message): the engine's event log, with the readout as source
EventFn = Callable[[int, Kind, str], None]


class SessionReadout:
    """One session's live readout; made at arm when ``[readout]`` or a label file asks."""

    def __init__(
        self,
        rig: RigConfig,
        timeline: Schedule,
        writer: WriterClient,
        labels: LabelIndex | None,
        *,
        virtual: bool,
        brain_triggers: bool,
        tuning: np.ndarray | None,
        tuning_names: tuple[str, ...],
        event: EventFn,
        now: Callable[[], int],
        listeners: list[Callable[[LiveRow], None]],
    ) -> None:
        self.rig = rig
        self.timeline = timeline
        self.writer = writer
        self._event = event
        self._now = now
        self._tuning = tuning
        self._tuning_names = tuning_names
        #: Called with each row; the caller's list, so later subscribers are heard too.
        self.listeners = listeners
        #: The traced neurons (label ids, positions zyx in voxels), once known.
        self.labels: tuple[np.ndarray, np.ndarray] | None = (
            (labels.ids, labels.positions_zyx) if labels is not None else None
        )
        self.done = -1  # newest volume whose row was handled
        self._drift_warned = False
        self._empty_warned = False
        self._regions: dict[str, np.ndarray] = {}
        #: The loop's sample when each volume was committed (decision latencies start there).
        self._commit_samples: dict[int, int] = {}
        self.lane = ReadoutLane(
            readout_settings(rig),
            writer.ring,
            labels,
            virtual=virtual,
            on_row=self._on_row,
            on_labels=self._on_labels,
            on_problem=lambda kind, msg: event(now(), kind, msg),
        )
        writer.on_queued = self._on_queued
        if virtual:
            writer.slot_ready = self.lane.slot_released
        self.trigger = (
            BrainTrigger(timeline, self._region_columns, lambda v: self._commit_samples.get(v, -1))
            if brain_triggers
            else None
        )

    # -- the engine's fixed points ---------------------------------------------------------
    def start(self) -> None:
        if not self.lane.start():
            self._event(
                0, "warning", "the live readout did not start within 60 s; its volumes are skipped"
            )

    def on_chunk(self, at: StepAt | None, loop: LoopState, sample: int) -> None:
        """The loop's chunk: a brain-triggered step decides here."""
        if self.trigger is not None:
            self.trigger.on_chunk(at, loop, sample)

    @property
    def waiting(self) -> bool:
        """A brain-triggered step is waiting for the brain's signal."""
        return self.trigger is not None and self.trigger.armed is not None

    def wait_for(self, volume: int, wake: Callable[[], None], pause: Callable[[], None]) -> None:
        """Virtual time, a step waiting: let ``volume``'s row arrive before the loop goes on,
        so the decision falls on the same chunk in every run."""
        if volume < self.rig.readout.reference_volumes - 1:
            return
        while self.done < volume and self.lane.alive():
            wake()
            pause()

    def on_frames(self, frames: np.ndarray, final: bool = False) -> None:
        """Decisions whose stimulus has been shown: to ``/live/triggers``, and logged."""
        if self.trigger is None:
            return
        rows = self.trigger.on_frames(frames, final)
        if rows is None:
            return
        self.writer.table("live/triggers", rows)
        for k in range(len(rows["volume"])):
            if rows["timed_out"][k]:
                text = "timed out: the stimulus started without the brain's signal"
            else:
                text = (
                    f"volume {rows['volume'][k]}'s readout crossed the threshold "
                    f"({rows['value'][k]:.3f}); shown {rows['latency_s'][k] * 1e3:.0f} ms "
                    "after that volume was committed"
                )
            self._event(int(rows["decision_sample"][k]), "protocol", f"brain trigger: {text}")

    def stop(self) -> None:
        """The lane finishes the volumes it was given (bounded), before the file closes."""
        if not self.lane.stop(timeout_s=30.0):
            self._event(self._now(), "warning", "the readout did not finish within 30 s")
        if self.lane.skipped:
            self._event(
                self._now(),
                "info",
                f"live readout: {self.lane.rows} volumes read out, {self.lane.skipped} skipped "
                "(the readout was behind; the volumes themselves are all in the file)",
            )

    # -- callbacks ---------------------------------------------------------------------------
    def _on_queued(self, t: int, slot: int) -> None:
        """A volume went to the writer (image lane): note when, and hand it to the lane."""
        self._commit_samples[t] = self._now()
        self.lane.submit(t, slot)

    def _region_columns(self, region: str) -> np.ndarray | None:
        """Trace columns of a wait_for region (None until the labels are known)."""
        if region in self._regions:
            return self._regions[region]
        if self.labels is None:
            return None
        ids, positions = self.labels
        cols = region_columns(region, positions, ids, self._tuning, self._tuning_names)
        self._regions[region] = cols
        return cols

    def _on_labels(self, ids: np.ndarray, positions_zyx: np.ndarray) -> None:
        """Cells detected on the reference: to the file, and for the live views."""
        self.labels = (ids, positions_zyx)
        if not self.writer.closed:
            self.writer.live_labels(ids, positions_zyx)

    def _on_row(self, row: LiveRow) -> None:
        """From the lane: to the file, the drift warning, the trigger, the subscribers."""
        w = self.writer
        if not w.closed:
            values = {
                "volume": row.volume,
                "drift_um": row.drift_um,
                "brightness": row.brightness,
                "traces_raw": row.traces_raw,
                "traces_dff": row.traces_dff,
                "seconds": row.seconds,
            }
            if row.forecast is not None:
                values["forecast"] = {
                    "next": row.forecast.next,
                    "mae": row.forecast.mae,
                    "baseline_mae": row.forecast.baseline_mae,
                    "surprise": row.forecast.surprise,
                    "seconds": row.forecast.seconds,
                }
            w.live(values)
        self._check_drift(row)
        if not self._empty_warned and np.isnan(row.brightness).any():
            self._empty_warned = True
            planes = np.flatnonzero(np.isnan(row.brightness)).tolist()
            # info, not a warning: the end planes of a stack often hold no brain; stamped at
            # the volume's last plane (when the readout's results arrive is timing, not data)
            self._event(
                self._row_sample(row),
                "info",
                f"planes {planes} show no tissue in the readout's reference: their brightness "
                "is NaN (nothing to track bleaching or focus on there)",
            )
        if self.trigger is not None:
            self.trigger.on_row(row)
        self.done = max(self.done, row.volume)
        for cb in self.listeners:
            cb(row)

    def _row_sample(self, row: LiveRow) -> int:
        """The sample a row's finding belongs to: its volume's last plane trigger."""
        tl = self.timeline
        return int(tl.plane_samples[row.volume][-1]) if row.volume < tl.n_volumes else self._now()

    def _check_drift(self, row: LiveRow) -> None:
        """Warn once per excursion above ``readout.drift_warn_um`` (again after it came back)."""
        limit = self.rig.readout.drift_warn_um
        drift = float(np.linalg.norm(row.drift_um))
        at = self._row_sample(row)
        if drift > limit and not self._drift_warned:
            self._drift_warned = True
            z, y, x = (float(v) for v in row.drift_um)
            self._event(
                at,
                "warning",
                f"the sample drifted {drift:.1f} um (z {z:+.1f}, y {y:+.1f}, x {x:+.1f}) at "
                f"volume {row.volume}, above readout.drift_warn_um = {limit:g}: check the "
                "mounting, refocus or re-register",
            )
        elif drift <= limit:
            self._drift_warned = False
