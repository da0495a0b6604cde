"""The Micro-Manager backend: a hardware-triggered camera sequence, assembled into volumes.

The DAQ is the trigger master: it sends one TTL pulse per plane and the camera,
armed with ``startSequenceAcquisition(n_frames, 0, True)`` in external-trigger
mode, exposes one frame per pulse. This backend drains MMCore's circular buffer
on every :meth:`MMCoreMicroscope.poll`, works out which (volume, plane) each
frame belongs to, and copies it straight into the volume buffer the writer
lends (:class:`~acquisition.microscope._base.VolumeSink`).

Which plane is a frame? Its frame number says, in order of preference:

1. the camera's own hardware frame counter, if its adapter puts one in the
   image metadata (``frame_counter_key``): an exposure lost between the camera
   and the computer leaves a gap, so the missing plane is named exactly and its
   volume is saved (plane left black) as soon as a later frame shows the gap;
2. Micro-Manager's ``ImageNumber`` (frames that reached the core): gaps still
   reveal frames lost inside the core, but a trigger the camera never answered
   leaves no trace in the numbering. Such a loss is found as a count (fewer
   frames than triggers) when the sequence stops, or as a stall; the planes
   after it are filled one frame early. Prefer a camera with a frame counter.

Checks, reported as :class:`MicroscopeEvent`: missing frames, extra frames
(more frames than triggers for longer than ``settle_s`` of DAQ time: a spurious
trigger), the writer being full (the volume is dropped and counted, never
blocking the loop), a camera that stops delivering while the DAQ keeps
triggering (``fault`` after ``stall_timeout_s``, measured on the DAQ clock and
the wall clock) and an overflowed circular buffer (``fault``).

Two connectors reach the same MMCore API: pymmcore-plus (:meth:`from_mm_config`
loads a hardware config in-process with ``UniMMCore``, which also accepts
Python devices) and pycromanager (:meth:`attach_pycromanager` attaches to the
experimenter's running Micro-Manager). :meth:`simulated` builds a UniMMCore
with the Python camera of :mod:`acquisition.microscope._sim_camera`, so the
whole real code path runs without hardware.
Where the code is, split by job: this module is the microscope itself (its factories, its
life cycle: open, start, on_triggers, poll, stop, close; arming the trigger mode; wiring a
Python camera loaded from a hardware config to the DAQ's triggers). Making and releasing a
connected core (the two connectors and the simulated UniMMCore) is in
:mod:`acquisition.microscope._mm_connect`; reading the running sequence (the circular buffer,
frame numbers, the checks above) is :class:`~acquisition.microscope._mm_sequence.SequenceReader`,
a mixin of :class:`MMCoreMicroscope`. The public names stay importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np

from acquisition._memory import prefault_sequence_buffer
from acquisition.microscope._assembler import VolumeAssembler
from acquisition.microscope._base import Microscope, MicroscopeEvent, VolumeSink
from acquisition.microscope._mm_connect import (
    TRIGGER_PROPERTIES,
    MMCore,
    PycromanagerCore,
    _external_value,
    _strings,
    attach_pycromanager_core,
    load_mm_config,
    release_core,
    simulated_core,
)
from acquisition.microscope._mm_sequence import FRAME_RECORD_DTYPE, SequenceReader
from rig.core.config import MicroscopeConfig
from rig.core.errors import ConfigError, DeviceError
from rig.core.timeline import Timeline

__all__ = [
    "FRAME_RECORD_DTYPE",
    "TRIGGER_PROPERTIES",
    "MMCore",
    "MMCoreMicroscope",
    "PycromanagerCore",
    "release_core",
]

log = logging.getLogger(__name__)


#: The trigger input of zaprig's simulated camera (acquisition.microscope._sim_camera).
_SIM_TRIGGER_PROPERTY = "SimulatedTriggerPulses"


class MMCoreMicroscope(SequenceReader, Microscope):
    """A Micro-Manager camera in a DAQ-triggered sequence, assembled into volumes.

    ``core`` is an already connected MMCore (dependency injection); use the
    factories :meth:`from_mm_config`, :meth:`attach_pycromanager` or
    :meth:`simulated` to make one from a :class:`MicroscopeConfig`.

    ``trigger_wire`` stands in for the TTL cable when the camera is simulated:
    :meth:`on_triggers` passes it the number of pulses the DAQ fired. On a real
    rig it is None: the camera hears the DAQ directly.
    """

    def __init__(
        self,
        core: MMCore,
        cfg: MicroscopeConfig,
        *,
        connector: Literal["pymmcore", "pycromanager", "simulated"] = "pymmcore",
        owns_core: bool = False,
        trigger_wire: Callable[[int], None] | None = None,
        frame_counter_key: str | None = None,
        counter_starts_at: int | None = None,
        timestamp_key: str | None = None,
        trigger_mode: tuple[str, str] | None = None,
        stall_timeout_s: float = 1.0,
        settle_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core
        self._cfg = cfg
        self.connector = connector
        self._owns_core = owns_core
        #: Stands in for the trigger cable of a simulated camera (None on a real rig).
        self.trigger_wire = trigger_wire
        self._counter_key = frame_counter_key
        self._counter_origin = counter_starts_at
        self._timestamp_key = timestamp_key
        self._trigger_mode = trigger_mode
        self._stall_s = stall_timeout_s
        self._settle_s = settle_s
        self._monotonic = monotonic
        #: The Python camera, when :meth:`simulated` made this microscope.
        self.simulated_camera: Any = None
        self._opened = False
        self._running = False
        self._pending: list[MicroscopeEvent] = []
        self._reset_run_state()

    # ------------------------------------------------------------ factories
    @classmethod
    def from_config(cls, cfg: MicroscopeConfig, **options: Any) -> MMCoreMicroscope:
        """The connector ``cfg.backend`` names: 'pymmcore' or 'pycromanager'."""
        if cfg.backend == "pymmcore":
            return cls.from_mm_config(cfg, **options)
        if cfg.backend == "pycromanager":
            return cls.attach_pycromanager(cfg, **options)
        raise ConfigError(
            f"microscope.backend = {cfg.backend!r} is not a Micro-Manager backend "
            "(use 'pymmcore' or 'pycromanager')"
        )

    @classmethod
    def from_mm_config(cls, cfg: MicroscopeConfig, **options: Any) -> MMCoreMicroscope:
        """Load ``cfg.mm_config`` into an in-process pymmcore-plus ``UniMMCore``."""
        return cls(load_mm_config(cfg), cfg, connector="pymmcore", owns_core=True, **options)

    @classmethod
    def attach_pycromanager(
        cls, cfg: MicroscopeConfig, *, host: str = "127.0.0.1", **options: Any
    ) -> MMCoreMicroscope:
        """Attach to the experimenter's running Micro-Manager through pycromanager."""
        core = attach_pycromanager_core(cfg, host)
        return cls(core, cfg, connector="pycromanager", **options)

    @classmethod
    def simulated(
        cls,
        cfg: MicroscopeConfig,
        *,
        drop_frames: Iterable[int] = (),
        spurious_pulses_after: Iterable[int] = (),
        stop_after: int | None = None,
        **options: Any,
    ) -> MMCoreMicroscope:
        """A real UniMMCore with the simulated triggered camera, wired to :meth:`on_triggers`."""
        from acquisition.microscope._sim_camera import CAMERA_TIME_KEY, FRAME_COUNTER_KEY

        core, camera = simulated_core(
            cfg,
            drop_frames=drop_frames,
            spurious_pulses_after=spurious_pulses_after,
            stop_after=stop_after,
        )
        options.setdefault("frame_counter_key", FRAME_COUNTER_KEY)
        options.setdefault("counter_starts_at", 0)
        options.setdefault("timestamp_key", CAMERA_TIME_KEY)
        scope = cls(
            core, cfg, connector="simulated", owns_core=True, trigger_wire=camera.fire, **options
        )
        scope.simulated_camera = camera
        return scope

    # ------------------------------------------------------------ Microscope
    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self._cfg.shape_zyx

    @property
    def core(self) -> MMCore:
        """The Micro-Manager core (for its device properties; the run itself is ours)."""
        return self._core

    @property
    def volumes_done(self) -> int:
        return self._assembler.committed if self._assembler else 0

    @property
    def volumes_dropped(self) -> int:
        """Volumes lost because the writer had no free buffer."""
        return self._assembler.dropped if self._assembler else 0

    @property
    def frames_received(self) -> int:
        return self._received

    @property
    def frames_missing(self) -> int:
        return self._assembler.missing if self._assembler else 0

    @property
    def frames_extra(self) -> int:
        a = self._assembler
        return self._extra + (a.extra + a.late + a.duplicates if a else 0)

    @property
    def frame_records(self) -> np.ndarray:
        """Per armed frame (volume-major): received?, frame number, camera and core times."""
        return self._records

    def open(self) -> None:
        """Select ``microscope.camera_device`` and check its frame size.

        A camera with a ``SimulatedTriggerPulses`` property is zaprig's simulated
        camera loaded from a hardware config: with no ``trigger_wire`` given, its
        trigger input is wired to :meth:`on_triggers` (and its frame counter used),
        so a simulated pymmcore rig runs from a config file alone.
        """
        label = self._cfg.camera_device
        try:
            self._core.setCameraDevice(label)
            width, height = self._core.getImageWidth(), self._core.getImageHeight()
            names = _strings(self._core.getDevicePropertyNames(label))
        except Exception as e:
            raise DeviceError(
                f"Micro-Manager has no usable camera {label!r} (microscope.camera_device): {e}. "
                "Use the camera's label from the hardware configuration."
            ) from None
        if (width, height) != (self._cfg.width, self._cfg.height):
            raise DeviceError(
                f"camera {label!r} delivers {width} x {height} pixel frames but the rig config "
                f"says microscope.width x height = {self._cfg.width} x {self._cfg.height}: set "
                "the camera's ROI in Micro-Manager or correct the config"
            )
        if self.trigger_wire is None and _SIM_TRIGGER_PROPERTY in names:
            self._wire_simulated_camera(label)
        self._opened = True

    def _wire_simulated_camera(self, label: str) -> None:
        from acquisition.microscope._sim_camera import CAMERA_TIME_KEY, FRAME_COUNTER_KEY

        core = self._core

        def wire(n: int) -> None:
            core.setProperty(label, _SIM_TRIGGER_PROPERTY, n)

        self.trigger_wire = wire
        if self._counter_key is None:
            self._counter_key, self._counter_origin = FRAME_COUNTER_KEY, 0
        if self._timestamp_key is None:
            self._timestamp_key = CAMERA_TIME_KEY
        self._pending.append(
            MicroscopeEvent(
                "info",
                f"camera {label!r} is zaprig's simulated camera: the DAQ's triggers reach it "
                f"through its {_SIM_TRIGGER_PROPERTY} property",
            )
        )

    def start(self, timeline: Timeline, sink: VolumeSink) -> None:
        if not self._opened:
            self.open()
        z = timeline.planes_per_volume
        if z != self._cfg.planes_per_volume:
            raise ConfigError(
                f"the timeline has {z} planes per volume but microscope.planes_per_volume is "
                f"{self._cfg.planes_per_volume}: build the timeline from this rig's config"
            )
        plane_ms = timeline.volume_period_s / z * 1000.0
        if self._cfg.exposure_ms >= plane_ms:
            raise ConfigError(
                f"microscope.exposure_ms = {self._cfg.exposure_ms} is not shorter than the "
                f"{plane_ms:.2f} ms between plane triggers: the camera would miss triggers "
                "(shorten the exposure, use fewer planes or a longer volume_period_s)"
            )
        label = self._cfg.camera_device
        try:
            if self._core.isSequenceRunning():  # e.g. live mode left on in Micro-Manager
                self._core.stopSequenceAcquisition()
            self._arm_trigger_mode(label)
            self._core.setExposure(self._cfg.exposure_ms)
            self._core.setCircularBufferMemoryFootprint(self._cfg.sequence_buffer_mb)
            # UniMMCore's buffer is lazy numpy memory: fault in what this run uses now,
            # not while the camera must keep up
            frame_bytes = self._cfg.height * self._cfg.width * 2
            prefault_sequence_buffer(self._core, timeline.n_volumes * z * frame_bytes)
        except DeviceError:
            raise
        except Exception as e:
            raise DeviceError(
                f"camera {label!r} refused its settings (microscope.exposure_ms, "
                f"microscope.sequence_buffer_mb, the trigger mode): {e}"
            ) from None
        self._timeline = timeline
        self._sink = sink
        self._reset_run_state(timeline)
        try:
            self._core.startSequenceAcquisition(self._n_total, 0.0, True)
        except Exception as e:
            raise DeviceError(
                f"camera {label!r} could not start a sequence of {self._n_total} triggered "
                f"frames: {e}"
            ) from None
        self._running = True
        self._last_frame_wall = self._monotonic()

    def on_triggers(self, plane_index: np.ndarray, samples: np.ndarray) -> None:
        if not self._running:
            return
        idx = np.asarray(plane_index, dtype=np.int64).ravel()
        smp = np.asarray(samples, dtype=np.int64).ravel()
        if idx.size == 0:
            return
        self._n_triggered = max(self._n_triggered, min(int(idx.max()) + 1, self._n_total))
        self._latest_sample = max(self._latest_sample, int(smp.max()))
        if self.trigger_wire is not None:
            self.trigger_wire(int(idx.size))

    def poll(self) -> list[MicroscopeEvent]:
        """Runs on the image lane: move arrived frames into volumes, then report."""
        if self._running:
            events = self._pending
            new = self._drain(events)
            if new:
                self._last_frame_wall = self._monotonic()
                self._stall_reported = False
            self._check_extra(events, final=False)
            self._check_stall(events)
            self._check_overflow(events)
        events, self._pending = self._pending, []
        return events

    def stop(self) -> None:
        """Stop the sequence and commit every volume whose planes were all triggered.

        Events found while stopping (frames that never came, volumes cut short)
        are returned by the next :meth:`poll`.
        """
        if not self._running:
            return
        events: list[MicroscopeEvent] = []
        try:
            if self._core.isSequenceRunning():
                self._core.stopSequenceAcquisition()
        except Exception as e:
            events.append(MicroscopeEvent("fault", f"could not stop the camera sequence: {e}"))
        self._drain(events)
        self._check_extra(events, final=True)
        self._report_undelivered(events)
        # volumes whose triggers were all sent are saved; one cut short is not
        assert self._assembler is not None
        self._assembler.close(self._n_triggered, name_lost=self._located)
        self._running = False
        self._pending.extend(events)

    def close(self) -> None:
        if self._running:
            self.stop()
        self._opened = False
        if self._owns_core:
            release_core(self._core)
            self._owns_core = False

    # ------------------------------------------------------------ internals
    def _reset_run_state(self, timeline: Timeline | None = None) -> None:
        self._z = timeline.planes_per_volume if timeline else self._cfg.planes_per_volume
        self._n_total = timeline.n_volumes * self._z if timeline else 0
        self._plane_samples = (
            timeline.all_plane_samples if timeline else np.zeros(0, dtype=np.int64)
        )
        self._fs = timeline.sample_rate_hz if timeline else 1.0
        self._records = np.zeros(self._n_total, dtype=FRAME_RECORD_DTYPE)
        self._records["counter"] = -1
        self._records["camera_time_us"] = np.nan
        self._records["core_time_ms"] = np.nan
        self._assembler = (
            VolumeAssembler(self.shape_zyx, timeline.n_volumes, self._sink, self._report)
            if timeline is not None and self._sink is not None
            else None
        )
        self._received = 0
        self._accounted = 0
        self._index_key = None
        self._index_base = 0
        self._n_triggered = 0
        self._latest_sample = -1
        self._extra = 0
        self._extra_reported = 0
        self._ahead_since = None
        self._stall_reported = False
        self._overflow_reported = False
        self._link_fault_reported = False
        self._last_frame_wall = self._monotonic()

    def _report(self, event: MicroscopeEvent) -> None:
        self._pending.append(event)

    def _arm_trigger_mode(self, label: str) -> None:
        if self._trigger_mode is not None:
            self._core.setProperty(label, *self._trigger_mode)
            return
        names = _strings(self._core.getDevicePropertyNames(label))
        for prop in TRIGGER_PROPERTIES:
            if prop not in names:
                continue
            allowed = _strings(self._core.getAllowedPropertyValues(label, prop))
            external = _external_value(allowed)
            if external is None:
                raise DeviceError(
                    f"camera {label!r} has a {prop!r} property but none of its values "
                    f"{allowed} is an external edge trigger: pass trigger_mode=(property, value) "
                    "for this camera"
                )
            self._core.setProperty(label, prop, external)
            self._pending.append(MicroscopeEvent("info", f"camera {label!r}: {prop} = {external}"))
            return
        self._pending.append(
            MicroscopeEvent(
                "warning",
                f"camera {label!r} has no trigger-mode property zaprig knows "
                f"({', '.join(TRIGGER_PROPERTIES)}): make sure it is set to external edge "
                "triggering, or it will free-run and its frames will not match the planes",
            )
        )
