"""The loop lane's step: one DAQ chunk, from read to publish; everything else is handed on.

read the DAQ -> detect swims -> the stimulus's feedback law -> publish to the
renderer -> note the plane triggers -> hand the chunk to the record lane. The
lane is given what it needs as typed parts (:class:`LoopParts`), never the
runner; it reports a fault through the session's one fault path and the runner
stops between chunks. The step is a sequence of phases (:attr:`LoopLane.PHASES`)
so the cost timer (``_costs.py``) can time each from outside.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from acquisition.daq import Daq
from acquisition.microscope import Microscope
from acquisition.swims import OnlineSwimDetector
from rig.core.clock import Clock
from rig.core.events import Fault
from rig.health import as_fault, describe_error
from rig.lanes._records import ChunkRecord
from stimuli.closed_loop import LoopState, SwimDelay, SwimInput
from stimuli.library import Stimulus, StimulusLaw
from stimuli.render import Renderer
from stimuli.schedule import Schedule, StepAt

__all__ = ["FaultSink", "LoopLane", "LoopParts"]


#: No stimulus on: no feedback law, no delay.
_NO_LAW: tuple[StimulusLaw | None, int] = (None, 0)


class FaultSink(Protocol):
    """The session's one fault path (:class:`rig.health.HealthMonitor`)."""

    @property
    def fault(self) -> Fault | None: ...

    def report(
        self, sample: int, fault: Fault, *, log: bool = True, once: bool = False
    ) -> None: ...


class FrameViewer(Protocol):
    """Something in the simulated world that sees the displayed frames (fish, projector)."""

    def show(self, frames: np.ndarray) -> None: ...


class VolumeMetaSink(Protocol):
    """The writer's side that learns each volume's trigger samples."""

    def set_volume_meta(self, t: int, start: int, planes: np.ndarray, marker: int) -> None: ...


class ImageWake(Protocol):
    """The image lane, as the loop sees it (``rig.lanes.ImageLane``)."""

    @property
    def error(self) -> str | None: ...

    @property
    def threaded(self) -> bool: ...

    def wake(self) -> None: ...

    def alive(self) -> bool: ...


class RecordSink(Protocol):
    """The record lane, as the loop sees it (``rig.lanes.RecordLane``)."""

    @property
    def error(self) -> BaseException | None: ...

    @property
    def threaded(self) -> bool: ...

    def submit(self, rec: ChunkRecord) -> None: ...

    def wait_below(self, n: int, timeout_s: float = 5.0) -> None: ...


class LoopReadout(Protocol):
    """The live readout's part in the loop: brain-triggered steps (``SessionReadout``)."""

    def on_chunk(self, at: StepAt | None, loop: LoopState, sample: int) -> None: ...

    @property
    def waiting(self) -> bool: ...

    def wait_for(
        self, volume: int, wake: Callable[[], None], pause: Callable[[], None]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopParts:
    """Everything the loop lane uses."""

    daq: Daq
    renderer: Renderer
    microscope: Microscope
    writer: VolumeMetaSink
    schedule: Schedule
    detector: OnlineSwimDetector
    image: ImageWake
    records: RecordSink
    faults: FaultSink
    clock: Clock
    #: The simulated world's viewers of each displayed frame, in order (fish, projector).
    viewers: tuple[FrameViewer, ...] = ()
    readout: LoopReadout | None = None
    #: Virtual time: nothing is real-time, so the loop keeps the other lanes close behind.
    virtual: bool = False


class LoopLane:
    """The closed loop, one chunk per :meth:`step`."""

    #: The step's phases in order, each named by the part of the chunk's cost it is.
    PHASES = ("DAQ sim", "detector", "law", "renderer", "triggers", "writer hand-off", "loop other")

    def __init__(self, parts: LoopParts) -> None:
        self.p = parts
        #: The lanes, as the loop calls them (the cost timer puts timed ones in their place).
        self.image: ImageWake = parts.image
        self.records: RecordSink = parts.records
        self.fs = parts.daq.sample_rate_hz
        self.chunk_samples = parts.daq.chunk_samples
        #: DAQ sample of the next chunk's first sample.
        self.sample = 0
        self.loop = LoopState()
        self._swim_delay = SwimDelay()  # swims on their way to the law (a feedback delay)
        self._laws: dict[int, tuple[StimulusLaw | None, int]] = {}
        self._triggers: list[int] = parts.schedule.all_plane_samples.tolist()
        self._cursor = 0
        # this chunk, between the phases
        self._chunk = np.zeros((0, 0), np.float32)
        self._s1 = 0
        self._swim: SwimInput | None = None
        self._bouts = np.zeros(0)
        self._frames = np.zeros(0)
        self.phases: tuple[Callable[[], None], ...] = (
            self.read,
            self.detect,
            self.feedback,
            self.render,
            self.triggers,
            self.hand_on,
            self.settle,
        )

    def step(self) -> None:
        self.read()
        self.detect()
        self.feedback()
        self.render()
        self.triggers()
        self.hand_on()
        self.settle()

    # -- the phases ------------------------------------------------------------------------
    def read(self) -> None:
        with as_fault("daq"):
            self._chunk = self.p.daq.read()
        self._s1 = self.sample + len(self._chunk)

    def detect(self) -> None:
        self._swim, self._bouts = self.p.detector.process(self._chunk[:, :2], self.sample)

    def feedback(self) -> None:
        s1, n, swim = self._s1, len(self._chunk), self._swim
        assert swim is not None
        tl = self.p.schedule
        at = tl.step_at(s1)
        if at is not None and at.condition != self.loop.condition:
            # every condition starts its closed loop from rest (Stimulus.initial_loop)
            self.loop = tl.initial_loop(at.condition)
            self._swim_delay.reset()
        if self.p.readout is not None:
            self.p.readout.on_chunk(at, self.loop, s1)  # a brain-triggered step's decision
        law, delay = self._law_of(at.stimulus) if at is not None else _NO_LAW
        if law is not None:
            law.step(self.loop, self._swim_delay(swim, s1, delay), n / self.fs)
            self.loop.swimming = swim.swimming  # the detector's now; only the feedback waits
        else:
            self.loop.swimming = swim.swimming
            self.loop.gain = 0.0
        self.loop.updated_sample = s1

    def render(self) -> None:
        r = self.p.renderer
        with as_fault("renderer"):
            r.publish(self.loop, self._s1, len(self._chunk))
            # -- the closed loop's latency ends here; the rest only hands things on --
            self._frames = r.collect()

    def triggers(self) -> None:
        """The simulated world sees the frames; the camera learns the planes triggered."""
        frames, s1 = self._frames, self._s1
        if len(frames):
            for viewer in self.p.viewers:
                viewer.show(frames)  # the simulated world: part of the loop, not bookkeeping
        # plane triggers in [s0, s1): a cursor over the trigger table (bisect, no numpy call)
        lo = self._cursor
        hi = bisect.bisect_left(self._triggers, s1, lo)
        if hi <= lo:
            return
        self._cursor = hi
        tl, w = self.p.schedule, self.p.writer
        z = tl.planes_per_volume
        for k in range(lo + (-lo) % z, hi, z):
            t = k // z
            w.set_volume_meta(
                t, int(tl.volume_starts[t]), tl.plane_samples[t], int(tl.marker_samples[t])
            )
        self.p.microscope.on_triggers(np.arange(lo, hi), tl.all_plane_samples[lo:hi])
        self.image.wake()  # inline (virtual time): the planes are rendered here
        ro = self.p.readout
        if self.p.virtual and ro is not None and ro.waiting:
            ro.wait_for(hi // z - 1, self.image.wake, self.p.clock.yield_to_others)

    def hand_on(self) -> None:
        det, swim = self.p.detector, self._swim
        assert swim is not None
        s0 = self.sample
        self.sample = self._s1
        record = ChunkRecord(
            s0,
            self._chunk,
            self._frames,
            self._bouts,
            swim.swimming,
            # new arrays whenever they change (the detector never writes them in place);
            # the power is made from the variance on the record lane, for live views only
            det.last_var,
            det.last_eval_samples,
            det.threshold,
            self.loop.velocity,
            self.loop.gain,
        )
        self.records.submit(record)  # inline (virtual time): a full batch is recorded here

    def settle(self) -> None:
        """Virtual time: wait for the other lanes; then take up what failed on them."""
        image, records = self.image, self.records
        if self.p.virtual:
            # nothing is real-time: keep the other lanes close behind instead of racing ahead
            records.wait_below(64)
            while self.p.microscope.backlog > 2 and image.alive():
                image.wake()
                self.p.clock.yield_to_others()
        faults = self.p.faults
        if image.error and faults.fault is None:
            faults.report(self.sample, Fault("image lane", image.error), log=False)
        if records.error is not None and faults.fault is None:
            msg = f"record lane: {describe_error(records.error)}"
            faults.report(self.sample, Fault("record lane", msg), log=False)

    def _law_of(self, stimulus: Stimulus) -> tuple[StimulusLaw | None, int]:
        """The stimulus's feedback law and its feedback delay in samples, made once per
        stimulus (laws are frozen values, and so are stimuli)."""
        key = id(stimulus)  # the protocol holds its stimuli for the whole run
        got = self._laws.get(key)
        if got is None:
            delay = round(stimulus.applied_feedback_delay_ms() * 1e-3 * self.fs)
            got = self._laws[key] = (stimulus.law(), delay)
        return got
