"""The record lane's step: the chunks the loop handed on, turned into the session's records.

For each batch of :class:`~rig.lanes.ChunkRecord` (oldest first): the displayed
frames (with their light, when a photodiode decodes it), the bouts, the 10-row
stream and the conditions table go to the writer; user notes become events;
injected faults fire; the health monitor checks the devices a few times per
second; live views get each chunk. The step is given typed parts
(:class:`RecordParts`), never the runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from acquisition.daq import LightDecoder
from acquisition.fish import VirtualFish
from acquisition.swims import swim_power
from acquisition.tables import concat_records
from acquisition.writer import WriterClient
from rig.core.events import Kind, Source
from rig.devices import Devices
from rig.faults import FaultInjector
from rig.health import HealthMonitor
from rig.lanes._records import ChunkRecord, StreamRecorder
from rig.readout import SessionReadout
from stimuli.render import Renderer
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE

__all__ = ["LiveChunk", "Notes", "RecordParts", "RecordStep"]

#: The session's event log: (sample, kind, message, source).
EventLog = Callable[[int, Kind, str, Source], None]


@dataclass(frozen=True, slots=True)
class LiveChunk:
    """What live views get after each chunk (the arrays are copies; keep them)."""

    s0: int
    tail: np.ndarray  # (n, 2) V
    power: np.ndarray  # (evals, 2) in threshold units
    power_samples: np.ndarray  # (evals,) DAQ sample of each power value
    threshold: np.ndarray  # (2,) variance thresholds
    velocity: float
    gain: float
    condition: int
    swimming: bool
    new_bouts: np.ndarray
    frames: np.ndarray


class Notes:
    """User notes waiting for the record lane (added from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: list[str] = []

    def add(self, text: str) -> None:
        with self._lock:
            self._notes.append(text)

    def take(self) -> list[str]:
        with self._lock:
            notes, self._notes = self._notes, []
        return notes


@dataclass(frozen=True, slots=True)
class RecordParts:
    """Everything the record step uses."""

    writer: WriterClient
    recorder: StreamRecorder
    schedule: Schedule
    devices: Devices
    health: HealthMonitor
    injector: FaultInjector
    log: EventLog
    #: The loop's current sample (for events that have no sample of their own).
    now: Callable[[], int]
    notes: Notes
    live_views: list[Callable[[LiveChunk], None]]
    #: Decodes each frame's light from the photodiode (rigs with one and a coded patch).
    light: LightDecoder | None = None
    readout: SessionReadout | None = None
    #: Virtual time: the DAQ read the tail only; its other columns are filled in here, for
    #: the whole batch at once (``Daq.defer_inputs``), before anything reads them.
    daq_deferred: bool = False


class RecordStep:
    """The record lane's work (``RecordLane`` calls it with each batch)."""

    def __init__(self, parts: RecordParts) -> None:
        self.p = parts
        self.bouts = 0
        self.frames = 0
        self._light_warned = False
        self._ticks = 0
        self._fish: VirtualFish | None = parts.devices.fish
        self._renderer: Renderer = parts.devices.renderer

    def __call__(self, batch: list[ChunkRecord]) -> None:
        """The chunks waiting, oldest first.

        Tables and stream rows go to the writer once per batch; fault injection and
        live views still see every chunk, and health checks run once per 0.1 s of
        samples crossed, as they did chunk by chunk.
        """
        p = self.p
        w, rc, log = p.writer, p.recorder, p.log
        if p.daq_deferred:
            p.devices.daq.complete([(r.s0, r.chunk) for r in batch])
        frames = [r.frames for r in batch if len(r.frames)]
        if p.light is not None:
            # frames wait for their light; the photodiode column decodes it (the batch at
            # once: the same lights as chunk by chunk, without per-chunk numpy calls)
            self.write_frames(p.light.feed_many([(r.s0, r.chunk[:, 3], r.frames) for r in batch]))
        elif frames:
            self.write_frames(concat_records(frames))
        self.frames += sum(len(f) for f in frames)
        if p.readout is not None and p.readout.trigger is not None:
            p.readout.on_frames(concat_records(frames) if frames else np.zeros(0, FRAME_DTYPE))
        bouts = [r.bouts for r in batch if len(r.bouts)]
        if bouts:
            merged = concat_records(bouts)
            w.table("behavior/bouts", merged)
            self.bouts += len(merged)
        for rec in batch:
            rc.add(rec.s0, rec.chunk, rec.frames)
        rc.emit(final=False)
        s0, s1 = batch[0].s0, batch[-1].s1
        rc.conditions(
            s1,
            lambda at, c, name: log(at, "protocol", f"condition {c} ({name}) starts", "protocol"),
        )
        for text in p.notes.take():
            log(s1, "note", text, "user")
        # injected faults first, so this batch's health check already sees them (a batch
        # can hold up to 64 chunks in virtual time: checking first made detection 2 batches late)
        if p.injector.pending:
            for rec in batch:
                p.injector.apply(rec.s1, p.devices, w, partial(self._injected, rec.s1))
        # health checks cost system calls: a few times per second is well within the 1 s target
        every = p.health.samples_per_check
        ticks = s1 // every - s0 // every
        if ticks:
            before = self._ticks
            self._ticks += ticks
            if self._ticks // 100 != before // 100:
                self.send_traces()  # every 10 s of recording
            p.health.check(s1, w, self._renderer)
        if p.live_views:
            for rec in batch:
                self._live(rec)

    def _injected(self, sample: int, message: str) -> None:
        self.p.log(sample, "info", message, "engine")

    def _live(self, rec: ChunkRecord) -> None:
        live = LiveChunk(
            rec.s0,
            rec.chunk[:, :2].copy(),
            swim_power(rec.var, rec.threshold),
            rec.power_samples,
            rec.threshold,
            rec.velocity,
            rec.gain,
            self.p.schedule.condition_at(rec.s0),
            rec.swimming,
            rec.bouts,
            rec.frames,
        )
        for cb in self.p.live_views:
            cb(live)

    def write_frames(self, frames: np.ndarray) -> None:
        """Frames go to the file once their light is known (at once without a photodiode)."""
        if len(frames):
            self.p.writer.table("stimulus/frames", frames)
        light = self.p.light
        if light is not None and light.problem and not self._light_warned:
            self._light_warned = True
            self.p.log(self.p.now(), "warning", light.problem, "photodiode")

    def send_traces(self) -> None:
        """Ground-truth traces go to the file as they accrue (memory stays flat)."""
        fish = self._fish
        if fish is None:
            return
        q = fish.brain.traces  # the loop lane appends, this lane takes: popleft is atomic
        rows = [q.popleft() for _ in range(len(q))]
        if rows:
            traces = np.stack(rows)
            self.p.writer.traces(traces, fish.brain.true_dff(traces))

    def finish(self, complete: bool, sample: int) -> None:
        """After the lanes stopped: the last rows, frames, condition, traces (writer alive)."""
        p, tl, rc = self.p, self.p.schedule, self.p.recorder
        rc.emit(final=True)
        if p.light is not None:
            self.write_frames(p.light.flush())
        last = rc.last_condition
        if 0 <= last < tl.n_conditions:
            rc.condition_row(last, min(sample, tl.end_sample))
        if complete:
            p.log(tl.end_sample, "protocol", "run complete", "protocol")
        self.send_traces()
        if p.readout is not None:
            p.readout.on_frames(np.zeros(0, FRAME_DTYPE), final=True)
