"""The run engine: runs a protocol on a rig, headless, as an explicit state machine.

    IDLE --arm()--> ARMED --run()--> RUNNING --(end of protocol)--> STOPPING --> COMPLETE
                      |                 |--(clean stop at a block's end)--> STOPPING --> STOPPED
                      |                 |--(abort / Ctrl-C)------> STOPPING --> ABORTED
                      |                 '--(device or disk fault)-> STOPPING --> FAILED
                      '--(preflight or file error: nothing started)------------> FAILED

``arm`` validates everything that can be checked before hardware moves (disk
space, the session file can be created, devices open); ``run`` loops once per
DAQ chunk: read -> detect swims -> feedback -> publish to the renderer -> log.
Stop requests take effect between chunks. Whatever ends the run, the laser goes
off and the outputs go to zero first, then the file is closed with a status
that says how it ended.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.daq import LightDecoder
from acquisition.fish import TUNINGS
from acquisition.laser import Laser
from acquisition.swims import OnlineSwimDetector, SwimParams, swim_power
from acquisition.tables import concat_records
from acquisition.writer import WriterClient
from rig import __version__
from rig.core.clock import Clock, VirtualClock, make_clock, utc_now_iso
from rig.core.config import RigConfig
from rig.core.errors import ConfigError, SessionFileError, ZaprigError
from rig.core.events import Event, Kind, SessionLog, Source
from rig.core.layout import FORMAT, FORMAT_VERSION
from rig.core.lock import lock_path
from rig.devices import Devices, make_devices
from rig.faults import FaultInjector
from rig.lanes import (
    ChunkCosts,
    ChunkRecord,
    ImageLane,
    RecordLane,
    StreamRecorder,
    loop_lane_priority,
)
from rig.readout import LiveRow, ReadoutLane, SessionReadout, live_layout, prepare_labels
from stimuli.closed_loop import LoopState, SwimDelay
from stimuli.library import Stimulus, StimulusLaw
from stimuli.protocol import Protocol
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE

__all__ = ["SEED_MAX", "Engine", "LiveChunk", "RunState", "RunStatus"]

#: Seeds are stored as an unsigned 32-bit attribute and seed numpy's generators.
SEED_MAX = 2**32 - 1


class RunState(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETE = "complete"
    #: Ended early on purpose, at the end of a condition block (the blocks recorded are whole).
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A snapshot for progress bars and the GUI's session bar."""

    state: RunState
    sample: int
    end_sample: int
    volumes_acquired: int
    volumes_expected: int
    condition: int
    condition_name: str
    bouts: int
    dropped_frames: int
    dropped_volumes: int
    writer_fill: float
    warnings: int
    path: str
    sample_rate_hz: float = 6000.0
    #: Camera planes never delivered (left as zeros in their volume), as the file counts them.
    dropped_planes: int = 0
    #: Faults only (``warnings`` counts warnings only).
    faults: int = 0
    #: What the laser driver last confirmed: "on", "off", or "unknown" (it may still be on).
    laser: str = "off"

    @property
    def elapsed_s(self) -> float:
        return self.sample / self.sample_rate_hz

    @property
    def remaining_s(self) -> float:
        return max(0, self.end_sample - self.sample) / self.sample_rate_hz


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


@dataclass
class _Counters:
    bouts: int = 0
    warnings: int = 0
    faults: int = 0
    frames: int = 0
    last_condition: int = -1
    light_warned: bool = False
    events: list[tuple[int, Kind, str]] = field(default_factory=list)


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
        self.fish_meta = dict(fish or {})
        self.session_name = session_name
        self.rig_source = rig_source
        #: The session's own label volume for the live readout (overrides the rig's).
        self.label_file = label_file
        self.timeline = Schedule.build(protocol, rig)
        self.state = RunState.IDLE
        self.path: Path | None = None
        self.devices: Devices | None = None
        self.writer: WriterClient | None = None
        self.loop = LoopState()
        sw = rig.swims  # the detector's rule and any value set over it (rig file [swims])
        self.detector = OnlineSwimDetector(
            fs, SwimParams.for_rule(sw.rule, sw.threshold_k, sw.gap_s), protocol.swim_power
        )
        self._stop = threading.Event()
        self._abort_reason = ""
        self._clean_stop = False
        self._stop_at_sample: int | None = None  # a clean stop at a block's end
        self._notes: list[str] = []
        self._notes_lock = threading.Lock()
        self._sample = 0
        self._n = _Counters()
        self._listeners: list[Callable[[LiveChunk], None]] = []
        self._volume_listeners: list[Callable[[int, np.ndarray], None]] = []
        self._event_listeners: list[Callable[[Event], None]] = []
        self._readout_listeners: list[Callable[[LiveRow], None]] = []
        self._live: SessionReadout | None = None
        self._log: SessionLog | None = None
        self._event_lock = threading.RLock()  # events come from every lane
        self._recorder: StreamRecorder | None = None
        self._image_lane: ImageLane | None = None
        self._record_lane: RecordLane | None = None
        self._fault: str | None = None
        self._volumes_started = 0
        self._laser_on = False
        self._laser_state = "off"
        self._health_every = max(1, round(0.1 * rig.daq.sample_rate_hz))
        self._faults = FaultInjector(rig.simulation, fs)
        self._laser_watch: _LaserWatch | None = None
        self._fill_warned = False
        self._health_ticks = 0
        self._fs = fs
        self._virtual = isinstance(self.clock, VirtualClock)
        #: Seconds per part of the per-chunk work (benchmarks/full_protocol.py prints them).
        self.costs = ChunkCosts()
        self._trigger_list: list[int] = self.timeline.all_plane_samples.tolist()
        self._trigger_cursor = 0
        self._laws: dict[int, StimulusLaw] = {}
        #: swims on their way to the law when a stimulus adds a feedback delay (issue 26)
        self._swim_delay = SwimDelay()
        self._reported_faults: set[tuple[str, str]] = set()
        #: Decodes each frame's light from the photodiode (rigs with one and a coded sync
        #: patch); used by the record lane only.
        self._light: LightDecoder | None = None
        patch = rig.display.sync_patch
        if rig.daq.photodiode_channel and patch is not None and patch.mode == "code":
            self._light = LightDecoder(fs, rig.display.refresh_hz)
        #: What the stop is doing now, for "still saving ..." answers to a second Ctrl-C.
        self.stopping_step = ""

    # -- observers ---------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[LiveChunk], None]) -> None:
        """Called after every chunk from the engine's thread: copy and return quickly."""
        self._listeners.append(callback)

    def subscribe_volumes(self, callback: Callable[[int, np.ndarray], None]) -> None:
        """Called with (t, volume) for each committed volume (the array is only valid in the call)."""
        self._volume_listeners.append(callback)

    def subscribe_events(self, callback: Callable[[Event], None]) -> None:
        """Called with every :class:`~rig.core.events.Event` as it is logged, from any lane."""
        self._event_listeners.append(callback)

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
        with self._notes_lock:
            self._notes.append(text)

    def status(self) -> RunStatus:
        w = self.writer
        c = self.timeline.condition_at(self._sample)
        names = [x.name for x in self.protocol.conditions]
        return RunStatus(
            state=self.state,
            sample=self._sample,
            end_sample=self.timeline.end_sample,
            volumes_acquired=self.devices.microscope.volumes_done if self.devices else 0,
            volumes_expected=self.timeline.n_volumes,
            condition=c,
            condition_name=names[c] if 0 <= c < len(names) else "",
            bouts=self._n.bouts,
            dropped_frames=self.devices.renderer.dropped_frames if self.devices else 0,
            dropped_volumes=w.volumes_dropped if w else 0,
            writer_fill=w.buffer_fill() if w and not w.closed else 0.0,
            warnings=self._n.warnings,
            path=str(self.path or ""),
            sample_rate_hz=self.rig.daq.sample_rate_hz,
            dropped_planes=w.planes_missing if w else 0,
            faults=self._n.faults,
            laser=self._laser_state,
        )

    # -- arming ------------------------------------------------------------------------------
    def planned_bytes(self) -> int:
        """About how many bytes the session file will take (checked against disk free when arming)."""
        z, y, x = self.rig.microscope.shape_zyx
        vol = self.timeline.n_volumes * z * y * x * 2
        stream = self.timeline.end_sample * 10 * 4
        frames = self.timeline.duration_s * self.rig.display.refresh_hz * FRAME_DTYPE.itemsize
        return int(vol + stream + frames)

    def _session_path(self) -> Path:
        stamp = utc_now_iso().replace(":", "").replace("-", "")[:15]
        # the fish id names the file: only letters, digits, '.', '-' and '_' (no folders)
        fish_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(self.fish_meta.get("fish_id", "") or ""))
        fish_id = fish_id.strip("._")[:100]  # a name the file system takes (255 bytes)
        base = self.session_name or f"{stamp}_{fish_id or self.rig.name}"
        p = self.out_dir / f"{base}.h5"
        k = 1
        # The name is reserved by creating its lock file exclusively (O_EXCL: one run wins
        # however many start in the same second with the same fish id); the writer then
        # takes that lock. A lock without a file: another run is creating that file now.
        while True:
            if not p.exists():
                try:
                    os.close(os.open(lock_path(p), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                    return p
                except FileExistsError:
                    pass
            k += 1
            p = self.out_dir / f"{base}-{k}.h5"

    def _analog_inputs(self) -> list[tuple[str, str]]:
        """(name, channel) of each input recorded in /analog_inputs (beyond the 10 rows)."""
        d = self.rig.daq
        pd = [("photodiode", d.photodiode_channel)] if d.photodiode_channel else []
        return pd + list(d.extra_inputs.items())

    def arm(self) -> None:
        """Check, create the file, open the devices. Fails with a clear error before anything moves."""
        if self.state is not RunState.IDLE:
            raise ZaprigError(f"arm() in state {self.state.value}")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SessionFileError(
                f"{self.out_dir}: cannot create the output folder: {e}"
            ) from None
        try:  # a folder we cannot write to (or /proc) must fail here, not in the writer
            with tempfile.TemporaryFile(dir=self.out_dir):
                pass
        except OSError as e:
            raise SessionFileError(
                f"{self.out_dir}: cannot write a session file there ({e.strerror or e}): "
                "pick another --out folder"
            ) from None
        need = self.planned_bytes()
        free = shutil.disk_usage(self.out_dir).free
        if free < need * 1.05:
            raise SessionFileError(
                f"{self.out_dir}: {free / 1e9:.2f} GB free, the session needs about "
                f"{need / 1e9:.2f} GB: free space, pick another --out folder, or use compression"
            )
        self.path = self._session_path()
        m = self.rig.microscope
        # rows go to the writer process every 0.1 s of samples; in virtual time every 0.5 s
        # (still within the writer's flush interval): each message costs the writer an h5py
        # resize and write per column, whatever its length, and was the writer's whole load
        batch_s = 0.5 if self._virtual else 0.1
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "status": "recording",
            "started_at": utc_now_iso(),
            "ended_at": "",
            "software_version": __version__,
            "simulated": bool(self.rig.simulated),
            "hardware_config": self.rig.to_json(),
            "hardware_config_source": self.rig_source,
            "protocol": self.protocol.to_json(),
            "protocol_sha256": self.protocol.sha256,
            "fish": json.dumps(self.fish_meta, sort_keys=True),
            "seed": int(self.seed),
            "clock": type(self.clock).__name__,
            "volumes_expected": int(self.timeline.n_volumes),
            "swim_power_units": self.protocol.swim_power,
        }
        self.devices = make_devices(self.rig, self.clock, self.seed)
        fish = self.devices.fish
        live: dict[str, Any] | None = None
        labels = None
        waits = [st for c in self.protocol.conditions for st in c.steps if st.wait_for]
        if waits and not (self.rig.readout.enabled or self.label_file):
            raise ConfigError(
                f"protocol {self.protocol.name!r}: {len(waits)} brain-triggered step(s) "
                "(wait_for) need the live readout: set [readout] enabled = true in the rig config"
            )
        if self.rig.readout.enabled or self.label_file:
            # a bad label file fails here, before the session file exists
            positions = fish.brain.positions if fish is not None else None
            labels = prepare_labels(self.rig, positions, self.label_file)
            live = live_layout(self.rig, labels, self.label_file)
        if fish is not None:
            fish.clock = self.costs.clock
        if hasattr(self.devices.microscope, "clock"):
            self.devices.microscope.clock = self.costs.clock
        self.writer = WriterClient(
            self.path,
            {
                "attrs": attrs,
                "shape_zyx": m.shape_zyx,
                "voxel_size_um": m.voxel_size_um,
                "volume_period_s": m.volume_period_s,
                "sample_rate_hz": self.rig.daq.sample_rate_hz,
                "compression": self.rig.writer.compression,
                "ground_truth_positions": fish.brain.positions if fish is not None else None,
                "analog_inputs": self._analog_inputs(),
                "ground_truth_tuning": fish.brain.tuning if fish is not None else None,
                "tuning_names": TUNINGS,
                "live": live,
            },
            n_slots=self.rig.writer.volume_slots,
            flush_interval_s=self.rig.writer.flush_interval_s,
            batch_samples=max(
                self.rig.daq.chunk_samples, round(batch_s * self.rig.daq.sample_rate_hz)
            ),
            wait_for_buffers=isinstance(self.clock, VirtualClock),
        )
        self.writer.on_commit = self._on_volume
        self.writer.start()
        from_file = bool(self.label_file) or self.rig.readout.labels == "file"
        if labels is not None and labels.n == 0 and from_file:
            self._event(
                0,
                "warning",
                f"the label volume {self.label_file or self.rig.readout.label_file} holds no "
                "label above 0 (all background): the live readout traces 0 neurons; give the "
                "label volume registered to this fish",
                "readout",
            )
        if live is not None:
            self._live = SessionReadout(
                self.rig,
                self.timeline,
                self.writer,
                labels,
                virtual=self._virtual,
                brain_triggers=bool(waits),
                tuning=fish.brain.tuning if fish is not None else None,
                tuning_names=TUNINGS,
                event=lambda sample, kind, msg: self._event(sample, kind, msg, "readout"),
                now=lambda: self._sample,
                listeners=self._readout_listeners,
            )
        self._log = SessionLog(self.path)
        source: Source = "engine"
        devices: tuple[tuple[Source, Any], ...] = (
            ("laser", self.devices.laser),
            ("daq", self.devices.daq),
            ("camera", self.devices.microscope),
        )
        try:
            for kind, device in devices:
                source = kind  # named in the fault if this one fails to open
                device.open()
        except BaseException as e:
            self._close_devices()
            msg = str(e) if isinstance(e, ZaprigError) else f"{type(e).__name__}: {e}"
            self._event(0, "fault", f"arming failed: {msg}", source)
            self.writer.close({"status": "failed", "ended_at": utc_now_iso()})
            self._log.close()
            self.state = RunState.FAILED
            raise
        self.state = RunState.ARMED

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
        try:
            dev.renderer.start(tl, self.rig.daq.sample_rate_hz)
            dev.microscope.start(tl, w)
            # until the driver confirms, emission is unknown (a failed on() may have half-worked)
            self._laser_state = "unknown"
            dev.laser.on(self.rig.laser.power_mw)
            self._laser_on = True
            self._laser_state = "on"
            self._event(0, "info", f"laser on at {self.rig.laser.power_mw:g} mW", "laser")
            self._laser_watch = _LaserWatch(
                dev.laser, threaded=not isinstance(self.clock, VirtualClock)
            )
            self._start_lanes()
            self.state = RunState.RUNNING
            dev.daq.start(tl)
            self._event(0, "protocol", f"run started: {self.protocol.name}", "protocol")
            tick = 0
            with loop_lane_priority(
                realtime=not isinstance(self.clock, VirtualClock),
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
                    self._step()
                    if self._fault:
                        final = RunState.FAILED
                        break
                    tick += 1
                    if progress is not None and tick % 25 == 0:
                        progress(self.status())
        except KeyboardInterrupt:
            final = RunState.ABORTED
            self._event(self._sample, "protocol", "run aborted: Ctrl-C", "user")
        except ZaprigError as e:
            final = RunState.FAILED
            self._event(self._sample, "fault", str(e), getattr(e, "source", "engine"))
            self._fault = str(e)
        except Exception as e:
            final = RunState.FAILED
            self._fault = f"{type(e).__name__}: {e}"
            self._event(self._sample, "fault", f"internal error: {self._fault}")
            raise
        finally:
            self.state = RunState.STOPPING
            self._safe_state()
            self._finish(final)
        if progress is not None:
            progress(self.status())
        return self.state

    def _heavy_processes(self) -> list[int]:
        """Processes kept off the loop's CPU: the writer (a buffered write holds its CPU for
        milliseconds). The live readout stays free: it only computes, in user space, where
        the loop preempts it at once, and on the writer's CPU it starved the writer."""
        proc = getattr(self.writer, "proc", None)
        return [proc.pid] if proc is not None and proc.pid is not None else []

    def _start_lanes(self) -> None:
        dev, w = self.devices, self.writer
        assert dev is not None and w is not None
        self._recorder = StreamRecorder(
            self.timeline, w, [c.name for c in self.protocol.conditions]
        )
        self._image_lane = ImageLane(
            dev.microscope,
            lambda ev: self._microscope_event(ev.kind, ev.message, ev.sample),
            threaded=not self._virtual,
        )
        self._record_lane = RecordLane(self._record, threaded=not self._virtual)
        self.costs.lanes_inline = self._virtual
        if self._live is not None:
            self._live.start()
        self._image_lane.start()
        self._record_lane.start()

    def _step(self) -> None:
        """The loop lane: one DAQ chunk, from read to publish; everything else is handed on.

        Each part's time goes to :attr:`costs` (benchmarks/full_protocol.py prints it);
        the virtual fish's own time is taken out of the DAQ and trigger parts.
        """
        dev, w, tl = self.devices, self.writer, self.timeline
        assert dev is not None and w is not None
        assert self._image_lane is not None and self._record_lane is not None
        cc = self.costs
        costs = cc.seconds
        fish = dev.fish
        # time the parts on one chunk in cc.every; float() is a clock that always says 0.0
        timed = cc.every == 1 or self._sample // self.rig.daq.chunk_samples % cc.every == 0
        clock: Callable[[], float] = cc.clock if timed else float
        if timed:
            cc.timed_chunks += 1
        if fish is not None:
            fish.clock = clock
        fish_before = fish.seconds if fish is not None else 0.0
        t_start = clock()
        try:
            chunk = dev.daq.read()
        except ZaprigError as e:
            e.source = "daq"  # type: ignore[attr-defined]
            raise
        t_read = clock()
        n = len(chunk)
        s0 = self._sample
        s1 = s0 + n
        swim, bouts = self.detector.process(chunk[:, :2], s0)
        t_detect = clock()
        at = tl.step_at(s1)
        if at is not None and at.condition != self.loop.condition:
            # every condition starts its closed loop from rest (Stimulus.initial_loop)
            self.loop = tl.initial_loop(at.condition)
            self._swim_delay.reset()
        if self._live is not None:
            self._live.on_chunk(at, self.loop, s1)  # a brain-triggered step's decision
        law = self._law_of(at.stimulus) if at is not None else None
        if law is not None:
            assert at is not None
            delay = round(at.stimulus.applied_feedback_delay_ms() * 1e-3 * self._fs)
            law.step(self.loop, self._swim_delay(swim, s1, delay), n / self._fs)
            self.loop.swimming = swim.swimming  # the detector's now; only the feedback waits
        else:
            self.loop.swimming = swim.swimming
            self.loop.gain = 0.0
        self.loop.updated_sample = s1
        t_law = clock()
        dev.renderer.publish(self.loop, s1, n)
        # -- the closed loop's latency ends here; the rest only hands things on --
        frames = dev.renderer.collect()
        t_render = clock()
        fish_mid = fish.seconds if fish is not None else 0.0
        if len(frames) and fish is not None:
            fish.show(frames)  # the simulated world: part of the loop, not bookkeeping
        if len(frames) and dev.projector is not None:
            dev.projector.show(frames)  # what the simulated photodiode will see
        t_image = 0.0  # inline image lane (virtual time): rendering planes on this thread
        # plane triggers in [s0, s1): a cursor over the trigger table (bisect, no numpy call)
        lo = self._trigger_cursor
        hi = bisect.bisect_left(self._trigger_list, s1, lo)
        if hi > lo:
            self._trigger_cursor = hi
            z = tl.planes_per_volume
            for k in range(lo + (-lo) % z, hi, z):
                t = k // z
                w.set_volume_meta(
                    t, int(tl.volume_starts[t]), tl.plane_samples[t], int(tl.marker_samples[t])
                )
                self._volumes_started = t + 1
            dev.microscope.on_triggers(np.arange(lo, hi), tl.all_plane_samples[lo:hi])
            t_wake = clock()
            self._image_lane.wake()  # inline (virtual time): the planes are rendered here
            t_image += clock() - t_wake
            if self._virtual and self._live is not None and self._live.waiting:
                self._live.wait_for(hi // z - 1, self._image_lane.wake, self.clock.yield_to_others)
        t_trig = clock()
        self._sample = s1
        record = ChunkRecord(
            s0,
            chunk,
            frames,
            bouts,
            swim.swimming,
            # new arrays whenever they change (the detector never writes them in place);
            # the power is made from the variance on the record lane, for live views only
            self.detector.last_var,
            self.detector.last_eval_samples,
            self.detector.threshold,
            self.loop.velocity,
            self.loop.gain,
        )
        t_submit = clock()
        self._record_lane.submit(record)  # inline (virtual time): a full batch is recorded here
        t_hand = clock()
        if self._virtual:
            # nothing is real-time: keep the other lanes close behind instead of racing ahead
            self._record_lane.wait_below(64)
            while dev.microscope.backlog > 2 and self._image_lane.alive():
                self._image_lane.wake()
                self.clock.yield_to_others()
        if self._image_lane.error and not self._fault:
            self._fault = self._image_lane.error
        if self._record_lane.error is not None and not self._fault:
            self._fault = f"record lane: {describe_error(self._record_lane.error)}"
        t_end = clock()
        fish_tail = fish_mid - fish_before
        fish_rest = (fish.seconds if fish is not None else 0.0) - fish_mid
        costs["DAQ sim"] += t_read - t_start - fish_tail
        costs["fish"] += fish_tail + fish_rest
        costs["detector"] += t_detect - t_read
        costs["law"] += t_law - t_detect
        costs["renderer"] += t_render - t_law
        costs["triggers"] += t_trig - t_render - fish_rest - t_image
        if self._record_lane.threaded:
            costs["writer hand-off"] += t_hand - t_trig
        else:
            costs["writer hand-off"] += t_submit - t_trig
            costs["record lane"] += t_hand - t_submit
        if not self._image_lane.threaded:
            costs["image lane"] += t_image
        costs["loop other"] += t_end - t_hand

    def _law_of(self, stimulus: Stimulus) -> StimulusLaw:
        """The stimulus's feedback law, made once per stimulus (laws are frozen values)."""
        key = id(stimulus)  # the protocol holds its stimuli for the whole run
        if key not in self._laws:
            self._laws[key] = stimulus.law()
        return self._laws[key]

    def _record(self, batch: list[ChunkRecord]) -> None:
        """The record lane's work for the chunks waiting (rig/lanes/_records.py), oldest first.

        Tables and stream rows go to the writer once per batch; fault injection and
        live views still see every chunk, and health checks run once per 0.1 s of
        samples crossed, as they did chunk by chunk.
        """
        dev, w, rc = self.devices, self.writer, self._recorder
        assert dev is not None and w is not None and rc is not None
        t0 = self.costs.clock()
        light = self._light
        frames = [r.frames for r in batch if len(r.frames)]
        if light is not None:
            # frames wait for their light; the photodiode column decodes it (the batch at
            # once: the same lights as chunk by chunk, without per-chunk numpy calls)
            self._write_frames(light.feed_many([(r.s0, r.chunk[:, 3], r.frames) for r in batch]))
        elif frames:
            self._write_frames(concat_records(frames))
        self._n.frames += sum(len(f) for f in frames)
        if self._live is not None and self._live.trigger is not None:
            self._live.on_frames(concat_records(frames) if frames else np.zeros(0, FRAME_DTYPE))
        bouts = [r.bouts for r in batch if len(r.bouts)]
        if bouts:
            merged = concat_records(bouts)
            w.table("behavior/bouts", merged)
            self._n.bouts += len(merged)
        for rec in batch:
            rc.add(rec.s0, rec.chunk, rec.frames)
        rc.emit(final=False)
        s0, s1 = batch[0].s0, batch[-1].s1
        rc.conditions(
            s1,
            lambda at, c, name: self._event(
                at, "protocol", f"condition {c} ({name}) starts", "protocol"
            ),
        )
        self._n.last_condition = rc.last_condition
        with self._notes_lock:
            notes, self._notes = self._notes, []
        for text in notes:
            self._event(s1, "note", text, "user")
        # injected faults first, so this batch's health check already sees them (a batch
        # can hold up to 64 chunks in virtual time: checking first made detection 2 batches late)
        if self._faults.pending:
            for rec in batch:
                self._faults.apply(
                    rec.s1, dev, w, partial(self._event, rec.s1, "info", source="engine")
                )
        # health checks cost system calls: a few times per second is well within the 1 s target
        ticks = s1 // self._health_every - s0 // self._health_every
        if ticks:
            self._check_health(s1, ticks)
        for rec in batch:
            if self._listeners:
                live = LiveChunk(
                    rec.s0,
                    rec.chunk[:, :2].copy(),
                    swim_power(rec.var, rec.threshold),
                    rec.power_samples,
                    rec.threshold,
                    rec.velocity,
                    rec.gain,
                    self.timeline.condition_at(rec.s0),
                    rec.swimming,
                    rec.bouts,
                    rec.frames,
                )
                for cb in self._listeners:
                    cb(live)
        if self._record_lane is not None and self._record_lane.threaded:
            self.costs.seconds["record lane"] += self.costs.clock() - t0  # inline: _step times it

    def _write_frames(self, frames: np.ndarray) -> None:
        """Frames go to the file once their light is known (at once without a photodiode)."""
        if len(frames) and self.writer is not None:
            self.writer.table("stimulus/frames", frames)
        light = self._light
        if light is not None and light.problem and not self._n.light_warned:
            self._n.light_warned = True
            self._event(self._sample, "warning", light.problem, "photodiode")

    def _microscope_event(self, kind: Kind, message: str, sample: int = -1) -> None:
        """From the image lane: log it at the sample the camera found it (else the loop's
        current one); a fault stops the run."""
        self._event(sample if sample >= 0 else self._sample, kind, message, "camera")
        if kind == "fault" and not self._fault:
            self._fault = message

    def _send_traces(self) -> None:
        """Ground-truth traces go to the file as they accrue (memory stays flat)."""
        fish = self.devices.fish if self.devices else None
        if fish is None or self.writer is None:
            return
        q = fish.brain.traces  # the loop lane appends, this lane takes: popleft is atomic
        rows = [q.popleft() for _ in range(len(q))]
        if rows:
            traces = np.stack(rows)
            self.writer.traces(traces, fish.brain.true_dff(traces))

    def _device_fault(self, sample: int, message: str, source: Source) -> None:
        """A device's standing fault: logged once (the record lane checks again until the
        loop has stopped), and the run stops on it."""
        if (source, message) in self._reported_faults:
            return
        self._reported_faults.add((source, message))
        self._event(sample, "fault", message, source)
        if not self._fault:
            self._fault = message

    def _check_health(self, s1: int, ticks: int = 1) -> None:
        """``ticks``: how many 0.1 s checks are due (more than one when chunks came in a batch)."""
        dev, w = self.devices, self.writer
        assert dev is not None and w is not None
        before = self._health_ticks
        self._health_ticks += ticks
        if self._health_ticks // 100 != before // 100:
            self._send_traces()  # every 10 s of recording
        for err in w.poll():
            self._event(s1, "fault", f"writer: {err}", "writer")
            self._fault = err
        if w.proc is not None and not w.alive() and not self._fault:
            self._fault = "the writer process died; the file holds everything up to its last flush"
        if msg := dev.renderer.check():
            self._device_fault(s1, msg, "renderer")
        if self._laser_watch is not None and (
            msg := self._laser_watch.check(s1, self._health_every)
        ):
            self._device_fault(s1, msg, "laser")
            self._laser_state = "unknown"  # it no longer answers: we cannot know it is off
        # In virtual time the image lane waits for a free slot (back-pressure), so a full ring
        # only means the simulation outran the writer: nothing can be dropped, and saying "the
        # disk is not keeping up" there would be a false alarm in every test session.
        fill = 0.0 if self._virtual else w.buffer_fill()
        if fill >= self.rig.writer.warn_fill and not self._fill_warned:
            self._fill_warned = True
            self._event(
                s1,
                "warning",
                f"writer buffer {fill:.0%} full: the disk is not keeping up; volumes will be "
                "dropped (and recorded) if it fills",
                "writer",
            )
        elif fill < self.rig.writer.warn_fill / 2:
            self._fill_warned = False

    # -- ending ------------------------------------------------------------------------------
    def _safe_state(self) -> None:
        """Laser off and outputs to zero, before anything else."""
        dev = self.devices
        if dev is None:
            return
        self.stopping_step = "switching the laser off"
        if self._laser_watch is not None:
            self._laser_watch.stop()
        failures_before = len(getattr(dev.laser, "off_failures", ()))
        confirmed = True
        try:
            dev.laser.off()
        except Exception as e:  # off() must not raise; if it does, say so loudly
            confirmed = False
            self._event(
                self._sample, "fault", f"laser may still be on: laser off failed: {e}", "laser"
            )
        for msg in getattr(dev.laser, "off_failures", [])[failures_before:]:
            confirmed = False
            self._event(self._sample, "fault", f"laser may still be on: {msg}", "laser")
        # "laser off" only when the driver confirmed it: after a failed off it would be a lie
        if confirmed:
            if self._laser_on:
                self._event(self._sample, "info", "laser off", "laser")
            self._laser_state = "off"
        else:
            self._laser_state = "unknown"
        self._laser_on = False
        self.stopping_step = "stopping the DAQ, camera and stimulus"
        for stop in (dev.daq.stop, self._stop_image_lane, dev.microscope.stop, dev.renderer.stop):
            try:
                stop()
            except Exception as e:
                self._event(self._sample, "warning", f"{stop.__qualname__}: {e}", "engine")
        # the microscope reports frames never delivered and volumes cut short when it stops
        for ev in dev.microscope.poll():
            self._event(self._sample, ev.kind, ev.message, "camera")

    def _stop_image_lane(self) -> None:
        """After the DAQ stopped: frames still arriving are moved, then the lane ends."""
        lane = self._image_lane
        if lane is not None and not lane.stop(timeout_s=10.0):
            self._event(
                self._sample,
                "warning",
                "the image lane did not finish within 10 s; volumes still in it are not saved",
                "image lane",
            )

    def _stop_record_lane(self) -> None:
        """Every chunk the loop handed on is recorded before the file is closed (bounded)."""
        lane = self._record_lane
        if lane is None:
            return
        if not lane.stop(timeout_s=60.0):
            self._event(
                self._sample, "fault", "the record lane did not finish within 60 s", "record lane"
            )
        if lane.error is not None:
            self._event(
                self._sample, "fault", f"record lane: {describe_error(lane.error)}", "record lane"
            )

    def _finish(self, final: RunState) -> None:
        w = self.writer
        assert w is not None
        tl = self.timeline
        self.stopping_step = "writing the last rows, tables and events"
        self._stop_record_lane()
        self._stop_readout()
        rc = self._recorder
        if w.alive() and rc is not None:
            rc.emit(final=True)
            if self._light is not None:
                self._write_frames(self._light.flush())
            last = rc.last_condition
            if 0 <= last < tl.n_conditions:
                rc.condition_row(last, min(self._sample, tl.end_sample))
            if final is RunState.COMPLETE:
                self._event(tl.end_sample, "protocol", "run complete", "protocol")
            self._send_traces()
            if self._live is not None:
                self._live.on_frames(np.zeros(0, FRAME_DTYPE), final=True)
        status = {
            RunState.COMPLETE: "complete",
            RunState.STOPPED: "stopped",
            RunState.ABORTED: "aborted",
            RunState.FAILED: "failed",
        }[final]
        if self._fault and final is RunState.FAILED:
            self._event(self._sample, "fault", f"session failed: {self._fault}")
        self.stopping_step = "closing the session file"
        w.close(
            {
                "status": status,
                "ended_at": utc_now_iso(),
                "bouts_detected": self._n.bouts,
                "frames_shown": self._n.frames,
                "frames_dropped": self.devices.renderer.dropped_frames if self.devices else 0,
                "volumes_dropped": w.volumes_dropped,
                "planes_dropped": w.planes_missing,
            }
        )
        self._close_devices()
        if not w.closed_ok and self.path is not None:
            # the writer died: close the file from here, with what went wrong
            from rig.session.recover import recover

            faults = [e for e in self._n.events if e[1] == "fault"]
            try:
                recover(self.path, events=faults)
            except ZaprigError as e:
                self._n.events.append((self._sample, "fault", f"recovery failed: {e}"))
            # recover() wrote status 'failed': say the same as the file does
            final = RunState.FAILED
        if self._log is not None:
            self._log.close()
        self.stopping_step = ""
        self.state = final

    def _stop_readout(self) -> None:
        if self._live is not None:
            self.stopping_step = "finishing the live readout"
            self._live.stop()

    def _on_volume(self, t: int, volume: np.ndarray) -> None:
        for cb in self._volume_listeners:
            cb(t, volume)

    def _close_devices(self) -> None:
        dev = self.devices
        if dev is None:
            return
        for close in (dev.laser.close, dev.daq.close, dev.microscope.close):
            with contextlib.suppress(Exception):
                close()

    def _event(self, sample: int, kind: Kind, message: str, source: Source = "engine") -> None:
        """Log an event (from any lane): to the file, the subscribers and the session log."""
        event = Event(int(sample), self.clock.wall_time(), kind, message, source)
        with self._event_lock:
            if kind == "warning":
                self._n.warnings += 1
            elif kind == "fault":
                self._n.faults += 1
            self._n.events.append((sample, kind, message))
            SessionLog.emit(event, self.rig.daq.sample_rate_hz)
            for cb in self._event_listeners:
                cb(event)
            if self.writer is not None and not self.writer.closed:
                self.writer.event(event)


class _LaserWatch:
    """Asks the laser for its status every 0.5 s, so a vanished port is noticed within 1 s.

    On a real-time run the serial round trip happens on its own thread (a few ms
    of blocking would show in the closed loop's latency); in virtual time it is
    asked inline every 0.5 s of samples, so detection stays within 1 s of sim time.
    """

    PERIOD_S = 0.5

    def __init__(self, laser: Laser, threaded: bool) -> None:
        self.laser = laser
        self.problem: str | None = None
        self._last_sample = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="laser-watch", daemon=True)
            self._thread.start()

    def _ask(self) -> None:
        # one late answer on a busy machine is not a lost laser: ask once more at once, and
        # call it lost only if that fails too (a vanished port fails both at once)
        for attempt in (1, 2):
            try:
                faults = self.laser.faults()
            except ZaprigError as e:
                problem = f"laser not answering: {e}"
            except Exception as e:
                problem = f"laser status failed: {type(e).__name__}: {e}"
            else:
                if faults:
                    self.problem = f"laser reports faults: {', '.join(faults)}"
                return
            if attempt == 2:
                self.problem = problem

    def _loop(self) -> None:
        while not self._stop.wait(self.PERIOD_S) and self.problem is None:
            self._ask()

    def check(self, sample: int, samples_per_check: int) -> str | None:
        # inline (virtual time): samples_per_check is 0.1 s, so ask every fifth check
        due = sample - self._last_sample >= 5 * samples_per_check
        if self._thread is None and self.problem is None and due:
            self._last_sample = sample
            self._ask()
        return self.problem

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)


def describe_error(e: BaseException) -> str:
    """One line for people: our errors as they are (they say what to do), others with their type."""
    return str(e) if isinstance(e, ZaprigError) else f"{type(e).__name__}: {e}"
