"""A session's lanes, built from typed parts, started and stopped together.

The loop lane's step (timed when the costs are enabled), the record lane (a
thread in real time, inline in virtual time) with its step, and the image lane.
The runner steps :attr:`SessionLanes.step` once per chunk and reads
:attr:`SessionLanes.sample`; faults go to the health monitor, events to the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from acquisition.daq import LightDecoder
from acquisition.microscope import MicroscopeEvent
from acquisition.swims import OnlineSwimDetector
from acquisition.writer import WriterClient
from rig.core.clock import Clock
from rig.core.config import RigConfig
from rig.core.events import Fault, Kind, Source
from rig.devices import Devices
from rig.faults import FaultInjector
from rig.health import HealthMonitor, describe_error
from rig.lanes._costs import ChunkCosts, TimedLoop
from rig.lanes._image import ImageLane
from rig.lanes._loop import LoopLane, LoopParts
from rig.lanes._record_step import LiveChunk, Notes, RecordParts, RecordStep
from rig.lanes._records import ChunkRecord, RecordLane, StreamRecorder
from rig.readout import SessionReadout
from stimuli.schedule import Schedule

__all__ = ["LaneParts", "SessionLanes"]

EventLog = Callable[[int, Kind, str, Source], None]


@dataclass(frozen=True, slots=True)
class LaneParts:
    """What a session's lanes are built from."""

    rig: RigConfig
    schedule: Schedule
    condition_names: list[str]
    devices: Devices
    writer: WriterClient
    detector: OnlineSwimDetector
    health: HealthMonitor
    log: EventLog
    notes: Notes
    live_views: list[Callable[[LiveChunk], None]]
    readout: SessionReadout | None
    clock: Clock
    virtual: bool
    costs: ChunkCosts


class SessionLanes:
    """The loop, record and image lanes of one run."""

    def __init__(self, p: LaneParts) -> None:
        self._p = p
        dev, rig, w = p.devices, p.rig, p.writer
        threaded = not p.virtual
        patch = rig.display.sync_patch
        light = None
        if rig.daq.photodiode_channel and patch is not None and patch.mode == "code":
            light = LightDecoder(rig.daq.sample_rate_hz, rig.display.refresh_hz)
        self.records = RecordStep(
            RecordParts(
                writer=w,
                recorder=StreamRecorder(p.schedule, w, p.condition_names),
                schedule=p.schedule,
                devices=dev,
                health=p.health,
                injector=FaultInjector(rig.simulation, rig.daq.sample_rate_hz),
                log=p.log,
                now=lambda: self.sample,
                notes=p.notes,
                live_views=p.live_views,
                light=light,
                readout=p.readout,
                # virtual time: the loop reads the tail only; the record lane has the
                # simulated board fill in the read-back and photodiode for its whole batch
                daq_deferred=p.virtual and dev.daq.defer_inputs(),
            )
        )
        handle: Callable[[list[ChunkRecord]], None] = self.records
        if p.costs.enabled and threaded:
            handle = p.costs.timed("record lane", self.records)
        self.image_lane = ImageLane(dev.microscope, self._microscope_event, threaded=threaded)
        self.record_lane = RecordLane(handle, threaded=threaded)
        self.loop = LoopLane(
            LoopParts(
                daq=dev.daq,
                renderer=dev.renderer,
                microscope=dev.microscope,
                writer=w,
                schedule=p.schedule,
                detector=p.detector,
                image=self.image_lane,
                records=self.record_lane,
                faults=p.health,
                clock=p.clock,
                viewers=tuple(v for v in (dev.fish, dev.projector) if v is not None),
                readout=p.readout,
                virtual=p.virtual,
            )
        )
        #: One chunk of the loop lane (timed phase by phase when the costs are enabled).
        self.step: Callable[[], None] = self.loop.step
        if p.costs.enabled:
            self.step = TimedLoop(self.loop, p.costs, dev.fish, dev.microscope).step

    @property
    def sample(self) -> int:
        """The loop's current DAQ sample (the next chunk's first)."""
        return self.loop.sample

    def start(self) -> None:
        if self._p.readout is not None:
            self._p.readout.start()
        self.image_lane.start()
        self.record_lane.start()

    def _microscope_event(self, ev: MicroscopeEvent) -> None:
        """From the image lane: logged at the sample the camera found it (else the loop's
        current one); a fault stops the run."""
        at = ev.sample if ev.sample >= 0 else self.sample
        if ev.kind == "fault":
            self._p.health.report(at, Fault("camera", ev.message))
        else:
            self._p.log(at, ev.kind, ev.message, "camera")

    def stop_image_lane(self) -> None:
        """After the DAQ stopped: frames still arriving are moved, then the lane ends."""
        if not self.image_lane.stop(timeout_s=10.0):
            msg = "the image lane did not finish within 10 s; volumes still in it are not saved"
            self._p.log(self.sample, "warning", msg, "image lane")

    def stop_record_lane(self) -> None:
        """Every chunk the loop handed on is recorded before the file is closed (bounded)."""
        lane, health = self.record_lane, self._p.health
        if not lane.stop(timeout_s=60.0):
            msg = "the record lane did not finish within 60 s"
            health.report(self.sample, Fault("record lane", msg))
        if lane.error is not None:
            msg = f"record lane: {describe_error(lane.error)}"
            health.report(self.sample, Fault("record lane", msg))
