"""The runner: runs a protocol on a rig, headless, as an explicit state machine.

    IDLE --arm()--> ARMED --run()--> RUNNING --(end of protocol)--> STOPPING --> COMPLETE
                      |                 |--(clean stop at a block's end)--> STOPPING --> STOPPED
                      |                 |--(abort / Ctrl-C)------> STOPPING --> ABORTED
                      |                 '--(device or disk fault)-> STOPPING --> FAILED
                      '--(preflight or file error: nothing started)------------> FAILED

The runner owns only the states, stop and abort, and the final status. The session
set-up is ``rig/arming.py``, the lanes ``rig/lanes`` (loop and record steps), faults
and the laser watch ``rig/health.py``. ``run`` steps the loop lane once per DAQ chunk;
stops and faults take effect between chunks. Whatever ends the run, the laser goes off
and the outputs go to zero first, then the file is closed with a status that says how.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.swims import OnlineSwimDetector, SwimParams
from acquisition.writer import WriterClient
from rig.arming import SessionSetup, open_devices
from rig.core.clock import Clock, VirtualClock, make_clock, utc_now_iso
from rig.core.config import RigConfig
from rig.core.errors import ConfigError, ZaprigError
from rig.core.events import Event, Fault, SessionLog, Source
from rig.devices import Devices, make_devices
from rig.event_log import EventLog
from rig.health import FaultRaised, HealthMonitor, describe_error, fault_of
from rig.lanes import (
    ChunkCosts,
    LaneParts,
    LiveChunk,
    Notes,
    SessionLanes,
    frozen_heap,
    loop_lane_priority,
)
from rig.readout import LiveRow, ReadoutLane, SessionReadout
from rig.run_state import FILE_STATUS, RunState, RunStatus
from stimuli.protocol import Protocol
from stimuli.schedule import Schedule

__all__ = ["SEED_MAX", "Engine", "LiveChunk", "RunState", "RunStatus", "describe_error"]

#: Seeds are stored as an unsigned 32-bit attribute and seed numpy's generators.
SEED_MAX = 2**32 - 1


class Engine:
    """Runs one session. Make a new Engine per session."""

    def __init__(
        self,
        rig: RigConfig,
        protocol: Protocol,
        out_dir: Path | str = "sessions",
        clock: str | Clock = "realtime",
        seed: int = 0,
        fish: dict[str, Any] | None = None,
        session_name: str | None = None,
        rig_source: str = "",
        label_file: str | None = None,
    ) -> None:
        if not 0 <= int(seed) <= SEED_MAX:
            raise ConfigError(
                f"seed {seed}: must be between 0 and {SEED_MAX} (an unsigned 32-bit integer)"
            )
        self.rig = rig
        self.protocol = protocol
        self.out_dir = Path(out_dir)
        fs = rig.daq.sample_rate_hz
        self.clock = make_clock(clock, fs) if isinstance(clock, str) else clock
        self.seed = seed
        self.timeline = Schedule.build(protocol, rig)
        self._virtual = isinstance(self.clock, VirtualClock)
        self.setup = SessionSetup(
            rig, protocol, self.timeline, self.out_dir, self.clock, seed, dict(fish or {}),
            session_name, rig_source, label_file, self._virtual,
        )  # fmt: skip
        self.state = RunState.IDLE
        self.path: Path | None = None
        self.devices: Devices | None = None
        self.writer: WriterClient | None = None
        sw = rig.swims  # the detector's rule and any value set over it (rig file [swims])
        self.detector = OnlineSwimDetector(
            fs, SwimParams.for_rule(sw.rule, sw.threshold_k, sw.gap_s), protocol.swim_power
        )
        #: Seconds per part of the per-chunk work, when enabled (benchmarks/full_protocol.py).
        self.costs = ChunkCosts()
        self._stop = threading.Event()
        self._abort_reason = ""
        self._clean_stop = False
        self._stop_at_sample: int | None = None  # a clean stop at a block's end
        self._notes = Notes()
        #: Every event of the session, from any lane (the file, the subscribers, the log).
        self._event = EventLog(self.clock, fs)
        self._listeners: list[Callable[[LiveChunk], None]] = []
        self._volume_listeners: list[Callable[[int, np.ndarray], None]] = []
        self._readout_listeners: list[Callable[[LiveRow], None]] = []
        self._live: SessionReadout | None = None
        self._log: SessionLog | None = None
        self.health = HealthMonitor(
            self._event, max(1, round(0.1 * fs)), rig.writer.warn_fill, self._virtual
        )
        self._lanes: SessionLanes | None = None
        #: What the stop is doing now, for "still saving ..." answers to a second Ctrl-C.
        self.stopping_step = ""

    # -- observers ---------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[LiveChunk], None]) -> None:
        """Called after every chunk from the record lane: copy and return quickly."""
        self._listeners.append(callback)

    def subscribe_volumes(self, callback: Callable[[int, np.ndarray], None]) -> None:
        """Called with (t, volume) for each committed volume (the array is only valid in the call)."""
        self._volume_listeners.append(callback)

    def subscribe_events(self, callback: Callable[[Event], None]) -> None:
        """Called with every :class:`~rig.core.events.Event` as it is logged, from any lane."""
        self._event.listeners.append(callback)

    def subscribe_readout(self, callback: Callable[[LiveRow], None]) -> None:
        """Called with each volume's :class:`~rig.readout.LiveRow` (from the readout lane)."""
        self._readout_listeners.append(callback)

    @property
    def readout(self) -> ReadoutLane | None:
        """The live readout's lane, when ``[readout]`` is enabled (counts and costs)."""
        return self._live.lane if self._live is not None else None

    @property
    def live_labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The live readout's traced neurons (label ids, positions zyx in voxels), once known."""
        return self._live.labels if self._live is not None else None

    @property
    def _sample(self) -> int:
        """The loop's current DAQ sample (the next chunk's first)."""
        return self._lanes.sample if self._lanes is not None else 0

    # -- stop and abort ----------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped by the user") -> None:
        """Stop between chunks; the session ends ``aborted``."""
        self._abort_reason = reason
        self._stop.set()

    def request_clean_stop(self, reason: str, after_condition: int | None = None) -> None:
        """End early on purpose; the session ends ``stopped``, not ``aborted``.

        With ``after_condition``, the loop lane stops at that condition's last chunk
        (before the next chunk would reach into the next condition), so what was
        recorded is whole blocks, exactly, whatever the GUI is doing; without it, at
        the next chunk. The file tells a planned early end apart from an emergency abort.
        """
        self._clean_stop = True
        if after_condition is None:
            self.request_stop(reason)
            return
        self._abort_reason = reason
        c = after_condition
        if c < self.timeline.n_conditions - 1:
            self._stop_at_sample = int(self.timeline.condition_start_samples[c + 1])

    def add_note(self, text: str) -> None:
        """A user note, logged in /events at the current sample."""
        self._notes.add(text)

    def status(self) -> RunStatus:
        w, dev = self.writer, self.devices
        rec = self._lanes.records if self._lanes else None
        sample = self._sample
        c = self.timeline.condition_at(sample)
        names = [x.name for x in self.protocol.conditions]
        return RunStatus(
            state=self.state,
            sample=sample,
            end_sample=self.timeline.end_sample,
            volumes_acquired=dev.microscope.volumes_done if dev else 0,
            volumes_expected=self.timeline.n_volumes,
            condition=c,
            condition_name=names[c] if 0 <= c < len(names) else "",
            bouts=rec.bouts if rec else 0,
            dropped_frames=dev.renderer.dropped_frames if dev else 0,
            dropped_volumes=w.volumes_dropped if w else 0,
            writer_fill=w.buffer_fill() if w and not w.closed else 0.0,
            warnings=self._event.warnings,
            path=str(self.path or ""),
            sample_rate_hz=self.rig.daq.sample_rate_hz,
            dropped_planes=w.planes_missing if w else 0,
            faults=self._event.faults,
            laser=self.health.laser,
        )

    # -- arming ------------------------------------------------------------------------------
    def planned_bytes(self) -> int:
        """About how many bytes the session file will take (checked against disk free when arming)."""
        return self.setup.planned_bytes()

    def arm(self) -> None:
        """Check, create the file, open the devices. Fails with a clear error before anything moves."""
        if self.state is not RunState.IDLE:
            raise ZaprigError(f"arm() in state {self.state.value}")
        setup = self.setup
        setup.check_folder()
        self.path = setup.session_path()
        attrs = setup.attrs()
        self.devices = make_devices(self.rig, self.clock, self.seed)
        fish = self.devices.fish
        waits = setup.brain_triggered_steps()
        labels, live = setup.readout_layout(fish)
        spec = setup.writer_spec(attrs, fish, live)
        self.writer = setup.writer(self.path, spec)
        self.writer.on_commit = self._on_volume
        self.writer.start()
        self._event.writer = self.writer
        if msg := setup.empty_labels_warning(labels):
            self._event(0, "warning", msg, "readout")
        if live is not None:
            self._live = setup.session_readout(
                self.writer, labels, waits, fish,
                lambda at, kind, msg: self._event(at, kind, msg, "readout"),
                lambda: self._sample, self._readout_listeners,
            )  # fmt: skip
        self._log = SessionLog(self.path)
        try:
            open_devices(self.devices, self._arming_failed)
        except BaseException:
            self.state = RunState.FAILED
            raise
        self.state = RunState.ARMED

    def _arming_failed(self, source: Source, e: BaseException) -> None:
        assert self.devices is not None and self.writer is not None and self._log is not None
        self.devices.close()
        self.health.report(0, Fault(source, f"arming failed: {describe_error(e)}"))
        self.writer.close({"status": "failed", "ended_at": utc_now_iso()})
        self._log.close()

    # -- running -----------------------------------------------------------------------------
    def run(self, progress: Callable[[RunStatus], None] | None = None) -> RunState:
        """Run to the end of the protocol or until stopped; returns the final state."""
        if self.state is RunState.IDLE:
            self.arm()
        if self.state is not RunState.ARMED:
            raise ZaprigError(f"run() in state {self.state.value}")
        assert self.devices is not None and self.writer is not None
        dev, w, tl = self.devices, self.writer, self.timeline
        final = RunState.COMPLETE
        health = self.health
        # before any device starts: the collection it begins with takes tens of ms
        heap = contextlib.ExitStack()
        heap.enter_context(frozen_heap(enabled=not self._virtual))
        try:
            dev.start(tl, self.rig.daq.sample_rate_hz, w)
            health.laser_on(dev.laser, self.rig.laser.power_mw, threaded=not self._virtual)
            step = self._start_lanes()
            self.state = RunState.RUNNING
            dev.start_daq(tl)
            self._event(0, "protocol", f"run started: {self.protocol.name}", "protocol")
            if w.volume_writes:
                self._event(0, "info", f"volumes written {w.volume_writes}", "writer")
            tick = 0
            with loop_lane_priority(
                realtime=not self._virtual,
                report=lambda m: self._event(0, "info", m, "loop lane"),
                keep_off=self._heavy_processes,
            ):
                n = self.rig.daq.chunk_samples
                while self._sample < tl.end_sample:
                    at = self._stop_at_sample
                    if at is not None and self._sample + n > at:
                        self._stop.set()  # the next chunk would reach into the next block
                    if self._stop.is_set():
                        final = RunState.STOPPED if self._clean_stop else RunState.ABORTED
                        verb = "stopped" if self._clean_stop else "aborted"
                        self._event(
                            self._sample, "protocol", f"run {verb}: {self._abort_reason}", "user"
                        )
                        break
                    step()
                    if health.fault is not None:
                        final = RunState.FAILED
                        break
                    tick += 1
                    if progress is not None and tick % 25 == 0:
                        progress(self.status())
        except KeyboardInterrupt:
            final = RunState.ABORTED
            self._event(self._sample, "protocol", "run aborted: Ctrl-C", "user")
        except (FaultRaised, ZaprigError) as e:
            final = RunState.FAILED
            health.report(self._sample, fault_of(e))
        except Exception as e:
            final = RunState.FAILED
            msg = describe_error(e)
            self._event(self._sample, "fault", f"internal error: {msg}")
            health.report(self._sample, Fault("engine", msg), log=False)
            raise
        finally:
            self.state = RunState.STOPPING
            self._safe_state()
            self._finish(final)
            heap.close()
        if progress is not None:
            progress(self.status())
        return self.state

    def _heavy_processes(self) -> list[int]:
        """Kept off the loop's CPU: the writer (a buffered write holds its CPU for ms); not the
        readout (it only computes; on the writer's CPU it starved the writer)."""
        proc = self.writer.proc if self.writer is not None else None
        return [proc.pid] if proc is not None and proc.pid is not None else []

    def _start_lanes(self) -> Callable[[], None]:
        """Build and start the lanes; the loop lane's step."""
        dev, w = self.devices, self.writer
        assert dev is not None and w is not None
        names = [c.name for c in self.protocol.conditions]
        self._lanes = lanes = SessionLanes(
            LaneParts(
                self.rig, self.timeline, names, dev, w, self.detector, self.health, self._event,
                self._notes, self._listeners, self._live, self.clock, self._virtual, self.costs,
            )
        )  # fmt: skip
        lanes.start()
        return lanes.step

    # -- ending ------------------------------------------------------------------------------
    def _safe_state(self) -> None:
        """Laser off and outputs to zero, before anything else."""
        dev = self.devices
        if dev is None:
            return
        self.stopping_step = "switching the laser off"
        self.health.laser_off(dev.laser, self._sample)
        self.stopping_step = "stopping the DAQ, camera and stimulus"
        lanes = self._lanes
        at = self._sample
        dev.stop(
            lanes.stop_image_lane if lanes is not None else None,
            lambda msg: self._event(at, "warning", msg, "engine"),
        )
        # the microscope reports frames never delivered and volumes cut short when it stops
        for ev in dev.microscope.poll():
            self._event(at, ev.kind, ev.message, "camera")

    def _finish(self, final: RunState) -> None:
        w = self.writer
        assert w is not None
        self.stopping_step = "writing the last rows, tables and events"
        lanes = self._lanes
        if lanes is not None:
            lanes.stop_record_lane()
        if self._live is not None:
            self.stopping_step = "finishing the live readout"
            self._live.stop()
        rec = lanes.records if lanes is not None else None
        if w.alive() and rec is not None:
            rec.finish(final is RunState.COMPLETE, self._sample)
        failed = self.health.final_fault()
        if failed is not None and final is RunState.FAILED:
            self.health.report(self._sample, failed)  # the failed source, restated
        self.stopping_step = "closing the session file"
        w.close(
            {
                "status": FILE_STATUS[final],
                "ended_at": utc_now_iso(),
                "bouts_detected": rec.bouts if rec else 0,
                "frames_shown": rec.frames if rec else 0,
                "frames_dropped": self.devices.renderer.dropped_frames if self.devices else 0,
                "volumes_dropped": w.volumes_dropped,
                "planes_dropped": w.planes_missing,
            }
        )
        if self.devices is not None:
            self.devices.close()
        if not w.closed_ok and self.path is not None:
            # the writer died: close the file from here, with what went wrong
            from rig.session.recover import recover

            faults = [e for e in self._event.rows if e[1] == "fault"]
            try:
                recover(self.path, events=faults)
            except ZaprigError as e:
                self._event.rows.append((self._sample, "fault", f"recovery failed: {e}", "writer"))
            # recover() wrote status 'failed': say the same as the file does
            final = RunState.FAILED
        if self._log is not None:
            self._log.close()
        self.stopping_step = ""
        self.state = final

    def _on_volume(self, t: int, volume: np.ndarray) -> None:
        for cb in self._volume_listeners:
            cb(t, volume)
