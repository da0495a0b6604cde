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
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from acquisition._memory import prefault_sequence_buffer
from acquisition.microscope._assembler import VolumeAssembler, describe_frames
from acquisition.microscope._base import Microscope, MicroscopeEvent, VolumeSink
from rig.core.config import MicroscopeConfig
from rig.core.errors import ConfigError, DeviceError
from rig.core.optional import require
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

#: Camera properties that select the trigger source, as common adapters spell them.
TRIGGER_PROPERTIES = ("TriggerMode", "Trigger", "TRIGGER SOURCE", "Triggermode", "TriggerSource")
#: Values meaning "one exposure per external edge", best first. Level/"external
#: exposure" modes are avoided: with 1 ms trigger pulses they would expose 1 ms.
_EXTERNAL_VALUES = ("external", "edge trigger", "external edge", "ext", "ext trig")
_NOT_EDGE_WORDS = ("start", "exposure", "level", "bulb", "gate", "width")

#: One row per armed frame: what arrived, with the camera's own numbers.
FRAME_RECORD_DTYPE = np.dtype(
    [
        ("received", "?"),
        ("counter", "<i8"),  # frame number used to place it (hardware counter or ImageNumber)
        ("camera_time_us", "<f8"),  # the camera's timestamp, NaN if it gives none
        ("core_time_ms", "<f8"),  # MMCore's ElapsedTime-ms when it received the frame
    ]
)

_IMAGE_NUMBER = "ImageNumber"
_ELAPSED = "ElapsedTime-ms"
#: The trigger input of zaprig's simulated camera (acquisition.microscope._sim_camera).
_SIM_TRIGGER_PROPERTY = "SimulatedTriggerPulses"


class MMCore(Protocol):
    """The part of Micro-Manager's core API this backend uses (camelCase, as in CMMCore)."""

    def setCameraDevice(self, cameraLabel: str, /) -> None: ...
    def getDevicePropertyNames(self, label: str, /) -> Sequence[str]: ...
    def getAllowedPropertyValues(self, label: str, propName: str, /) -> Sequence[str]: ...
    def setProperty(self, label: str, propName: str, propValue: Any, /) -> None: ...
    def setExposure(self, exp: float, /) -> None: ...
    def getImageWidth(self) -> int: ...
    def getImageHeight(self) -> int: ...
    def startSequenceAcquisition(
        self, numImages: int, intervalMs: float, stopOnOverflow: bool, /
    ) -> None: ...
    def stopSequenceAcquisition(self) -> None: ...
    def isSequenceRunning(self) -> bool: ...
    def getRemainingImageCount(self) -> int: ...
    def isBufferOverflowed(self) -> bool: ...
    def setCircularBufferMemoryFootprint(self, sizeMB: int, /) -> None: ...
    def popNextImageAndMD(self) -> tuple[np.ndarray, Any]:
        """The next frame and its metadata (a str -> str mapping)."""
        ...


def _strings(values: Any) -> list[str]:
    """A Python list from a Python sequence or a Java ``StrVector`` seen through pycromanager."""
    size = getattr(values, "size", None)
    if callable(size) and hasattr(values, "get"):
        return [str(values.get(i)) for i in range(int(size()))]
    return [str(v) for v in values]


class PycromanagerCore:
    """pycromanager's Java core (snake_case methods, tagged images) seen as :class:`MMCore`."""

    def __init__(self, java_core: Any) -> None:
        self._j = java_core

    def setCameraDevice(self, cameraLabel: str, /) -> None:
        self._j.set_camera_device(cameraLabel)

    def getDevicePropertyNames(self, label: str, /) -> list[str]:
        return _strings(self._j.get_device_property_names(label))

    def getAllowedPropertyValues(self, label: str, propName: str, /) -> list[str]:
        return _strings(self._j.get_allowed_property_values(label, propName))

    def setProperty(self, label: str, propName: str, propValue: Any, /) -> None:
        self._j.set_property(label, propName, propValue)

    def setExposure(self, exp: float, /) -> None:
        self._j.set_exposure(float(exp))

    def getImageWidth(self) -> int:
        return int(self._j.get_image_width())

    def getImageHeight(self) -> int:
        return int(self._j.get_image_height())

    def startSequenceAcquisition(
        self, numImages: int, intervalMs: float, stopOnOverflow: bool, /
    ) -> None:
        self._j.start_sequence_acquisition(int(numImages), float(intervalMs), bool(stopOnOverflow))

    def stopSequenceAcquisition(self) -> None:
        self._j.stop_sequence_acquisition()

    def setCircularBufferMemoryFootprint(self, sizeMB: int, /) -> None:
        self._j.set_circular_buffer_memory_footprint(int(sizeMB))

    def isSequenceRunning(self) -> bool:
        return bool(self._j.is_sequence_running())

    def getRemainingImageCount(self) -> int:
        return int(self._j.get_remaining_image_count())

    def isBufferOverflowed(self) -> bool:
        return bool(self._j.is_buffer_overflowed())

    def popNextImageAndMD(self) -> tuple[np.ndarray, dict[str, Any]]:
        tagged = self._j.pop_next_tagged_image()
        tags = dict(tagged.tags)
        pix = np.asarray(tagged.pix)
        # Java has no unsigned 16-bit type: 16-bit pixels cross the bridge as short[].
        if pix.dtype == np.int16:
            pix = pix.view(np.uint16)
        height = int(tags["Height"]) if "Height" in tags else self.getImageHeight()
        width = int(tags["Width"]) if "Width" in tags else self.getImageWidth()
        return pix.reshape(height, width), tags


def release_core(core: Any) -> None:
    """Stop, unload and detach a core this program made, while the interpreter is alive.

    pymmcore's CMMCore delivers callbacks on a thread of its own; if that is
    still torn down at interpreter exit (CMMCorePlus.__del__), the thread can
    die mid-callback and abort the process ("FATAL: exception not rethrown").
    Detaching the callback here, deterministically, avoids that.
    """
    try:
        if core.isSequenceRunning():
            core.stopSequenceAcquisition()
    except Exception as e:  # the core may already be broken: still release the rest
        log.warning("stopping the camera sequence while releasing the core failed: %s", e)
    try:
        core.unloadAllDevices()
    except Exception as e:
        log.warning("unloading Micro-Manager devices failed: %s", e)
    try:
        import pymmcore
    except ImportError:
        return
    if isinstance(core, pymmcore.CMMCore):
        pymmcore.CMMCore.registerCallback(core, None)


def _port_answers(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _external_value(allowed: Sequence[str]) -> str | None:
    by_lower = {v.strip().lower(): v for v in allowed}
    for want in _EXTERNAL_VALUES:
        if want in by_lower:
            return by_lower[want]
    for low, v in by_lower.items():
        if low.startswith("external") and not any(w in low for w in _NOT_EDGE_WORDS):
            return v
    return None


class MMCoreMicroscope(Microscope):
    """A Micro-Manager camera in a DAQ-triggered sequence, assembled into volumes.

    ``core`` is an already connected MMCore (dependency injection); use the
    factories :meth:`from_mm_config`, :meth:`attach_pycromanager` or
    :meth:`simulated` to make one from a :class:`MicroscopeConfig`.

    ``trigger_wire`` stands in for the TTL cable when the camera is simulated:
    :meth:`on_triggers` passes it the number of pulses the DAQ fired. On a real
    rig it is None: the camera hears the DAQ directly.
    """

    # Per-run state, reset by _reset_run_state() at every start().
    _z: int
    _n_total: int
    _plane_samples: np.ndarray
    _fs: float
    _records: np.ndarray
    _assembler: VolumeAssembler | None  # frames -> volumes (shared with every camera)
    _received: int  # frames popped from the core
    _accounted: int  # frame numbers seen so far: highest + 1
    _index_key: str | None  # the metadata key frames are numbered by ("" = arrival order)
    _index_base: int
    _n_triggered: int  # triggers the DAQ reported (global plane index + 1)
    _latest_sample: int  # DAQ sample of the newest reported trigger
    _extra: int  # frames beyond the triggers (spurious pulses)
    _extra_reported: int
    _ahead_since: int | None  # DAQ sample since when frames outnumber triggers
    _stall_reported: bool
    _overflow_reported: bool
    _link_fault_reported: bool
    _last_frame_wall: float

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
        if cfg.mm_config is None:
            raise ConfigError(
                "microscope.mm_config is not set: give the path of the Micro-Manager hardware "
                "configuration (.cfg) to load with backend = 'pymmcore', or use backend = "
                "'pycromanager' to attach to a running Micro-Manager"
            )
        path = Path(cfg.mm_config).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"microscope.mm_config = {cfg.mm_config!r}: no such file (save your hardware "
                "configuration from Micro-Manager's Hardware Configuration Wizard and give its path)"
            )
        require("pymmcore_plus", "microscope.backend = 'pymmcore'")
        from pymmcore_plus.experimental.unicore import UniMMCore

        core = UniMMCore()
        try:
            core.loadSystemConfiguration(str(path))
        except Exception as e:
            release_core(core)
            raise DeviceError(
                f"Micro-Manager could not load {path} (microscope.mm_config): {e}. Check that "
                "the devices it names are connected and powered, and that Micro-Manager's device "
                "adapters are installed (pymmcore-plus: `mmcore install`)"
            ) from None
        return cls(core, cfg, connector="pymmcore", owns_core=True, **options)

    @classmethod
    def attach_pycromanager(
        cls, cfg: MicroscopeConfig, *, host: str = "127.0.0.1", **options: Any
    ) -> MMCoreMicroscope:
        """Attach to the experimenter's running Micro-Manager through pycromanager."""
        port = cfg.pycromanager_port
        problems: list[str] = []
        if not _port_answers(host, port, timeout_s=1.0):
            problems.append(
                f"no Micro-Manager answers on {host}:{port} (microscope.pycromanager_port): "
                "start Micro-Manager and tick Tools > Options > 'Run pycro-manager server on "
                f"port {port}'"
            )
        core_cls: Any = None
        try:
            from pycromanager import Core as core_cls  # type: ignore[import-not-found, no-redef]
        except ImportError:
            problems.append(
                "the pycromanager package is not installed: `pip install pycromanager` "
                "(or install zaprig with the [hardware] extra)"
            )
        if problems:
            raise DeviceError(
                "cannot attach to Micro-Manager through pycromanager (microscope.backend = "
                "'pycromanager'):\n  - " + "\n  - ".join(problems) + "\nOr set microscope.backend "
                "= 'pymmcore' and microscope.mm_config to run the camera in-process without Java."
            )
        try:
            java_core = core_cls(port=port)
        except Exception as e:
            raise DeviceError(
                f"Micro-Manager on port {port} (microscope.pycromanager_port) did not answer "
                f"pycromanager: {e}. Update Micro-Manager and pycromanager together and restart "
                "Micro-Manager."
            ) from None
        return cls(PycromanagerCore(java_core), cfg, connector="pycromanager", **options)

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
        from pymmcore_plus.experimental.unicore import UniMMCore

        from acquisition.microscope._sim_camera import (
            CAMERA_TIME_KEY,
            FRAME_COUNTER_KEY,
            TriggeredCamera,
        )

        camera = TriggeredCamera(
            cfg.width,
            cfg.height,
            drop_frames=drop_frames,
            spurious_pulses_after=spurious_pulses_after,
            stop_after=stop_after,
        )
        core = UniMMCore()
        core.loadPyDevice(cfg.camera_device, camera)
        core.initializeDevice(cfg.camera_device)
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
    def _located(self) -> bool:
        """Whether frames are placed by the camera's own counter (losses located exactly)."""
        return self._counter_key is not None and self._index_key == self._counter_key

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

    def _drain(self, events: list[MicroscopeEvent]) -> int:
        """Move every frame waiting in the circular buffer into its volume; return how many."""
        n = 0
        try:
            while self._core.getRemainingImageCount() > 0:
                image, md = self._core.popNextImageAndMD()
                self._take(image, md, events)
                n += 1
        except Exception as e:
            if not self._link_fault_reported:
                self._link_fault_reported = True
                events.append(
                    MicroscopeEvent("fault", f"lost the camera's frames from Micro-Manager: {e}")
                )
        return n

    def _frame_number(self, md: Mapping[str, Any], events: list[MicroscopeEvent]) -> int:
        if self._index_key is None:
            if self._counter_key is not None and self._counter_key in md:
                self._index_key = self._counter_key
                first = int(md[self._counter_key])
                self._index_base = first if self._counter_origin is None else self._counter_origin
                how = f"the camera's hardware frame counter ({self._counter_key!r})"
            elif _IMAGE_NUMBER in md:
                self._index_key = _IMAGE_NUMBER
                how = (
                    "Micro-Manager's ImageNumber (no hardware frame counter in the metadata: a "
                    "trigger the camera misses can be counted but not located)"
                )
            else:
                self._index_key = ""
                how = "arrival order (no frame numbers in the metadata)"
            events.append(MicroscopeEvent("info", f"frames are placed by {how}"))
        if self._index_key:
            with suppress(KeyError, TypeError, ValueError):
                return int(md[self._index_key]) - self._index_base
        return self._received - 1

    def _take(
        self, image: np.ndarray, md: Mapping[str, Any], events: list[MicroscopeEvent]
    ) -> None:
        self._received += 1
        i = self._frame_number(md, events)
        h, w = self._cfg.height, self._cfg.width
        if image.shape != (h, w):
            events.append(
                MicroscopeEvent(
                    "fault",
                    f"the camera sent a {image.shape} frame; the rig config expects ({h}, {w})",
                )
            )
            return
        assert self._assembler is not None
        if not self._assembler.put(i, image):
            return
        self._accounted = max(self._accounted, i + 1)
        rec = self._records[i]
        rec["received"] = True
        rec["counter"] = i + self._index_base
        rec["camera_time_us"] = self._float_tag(md, self._timestamp_key)
        rec["core_time_ms"] = self._float_tag(md, _ELAPSED)

    @staticmethod
    def _float_tag(md: Mapping[str, Any], key: str | None) -> float:
        if key is None:
            return float("nan")
        try:
            return float(md[key])
        except (KeyError, TypeError, ValueError):
            return float("nan")

    def _check_extra(self, events: list[MicroscopeEvent], *, final: bool) -> None:
        """More frames than triggers, for longer than a frame's normal latency."""
        surplus = self._accounted - self._n_triggered - self._extra_reported
        if surplus <= 0:
            self._ahead_since = None
            return
        if self._ahead_since is None:
            self._ahead_since = self._latest_sample
        settled = self._latest_sample - self._ahead_since >= self._settle_s * self._fs
        if not (settled or final):
            return
        self._extra_reported += surplus
        self._extra += surplus
        self._ahead_since = None
        last = self._accounted - 1
        events.append(
            MicroscopeEvent(
                "warning",
                f"extra frame{'s' if surplus > 1 else ''}: the camera made {self._accounted} "
                f"frames for {self._n_triggered} triggers ({surplus} more, by "
                f"{describe_frames([last], self._z)}); a spurious trigger shifts the planes "
                "after it: check the trigger cable",
                volume=last // self._z,
            )
        )

    def _check_stall(self, events: list[MicroscopeEvent]) -> None:
        if self._stall_reported or self._n_triggered <= self._accounted:
            return
        next_trigger = int(self._plane_samples[self._accounted])
        daq_wait_s = (self._latest_sample - next_trigger) / self._fs
        wall_wait_s = self._monotonic() - self._last_frame_wall
        if daq_wait_s > self._stall_s and wall_wait_s > self._stall_s:
            self._stall_reported = True
            waiting = self._n_triggered - self._accounted
            last = (
                f"the last frame was {describe_frames([self._accounted - 1], self._z)}"
                if self._accounted
                else "no frame has arrived since the sequence started"
            )
            events.append(
                MicroscopeEvent(
                    "fault",
                    f"camera stopped delivering frames: none for {wall_wait_s:.1f} s while the "
                    f"DAQ sent {waiting} triggers ({last}); check the camera, its trigger cable "
                    "and that it is in external trigger mode",
                    volume=self._accounted // self._z,
                )
            )

    def _check_overflow(self, events: list[MicroscopeEvent]) -> None:
        if self._overflow_reported:
            return
        try:
            overflowed = self._core.isBufferOverflowed()
        except Exception:
            return  # a broken link is reported by _drain
        if overflowed:
            self._overflow_reported = True
            events.append(
                MicroscopeEvent(
                    "fault",
                    "Micro-Manager's circular buffer overflowed and the sequence stopped: frames "
                    "were lost. Give it more memory (Tools > Options > Sequence buffer size) and "
                    "make sure nothing else is holding the engine up",
                )
            )

    def _report_undelivered(self, events: list[MicroscopeEvent]) -> None:
        """At stop: triggers that never got a frame."""
        if self._n_triggered <= self._accounted:
            return
        if self._located:
            return  # the assembler names the missing planes when it settles their volumes
        lost = list(range(self._accounted, self._n_triggered))
        what = (
            f"{len(lost)} frame{'s' if len(lost) > 1 else ''} (which planes is unknown "
            "without a hardware frame counter: the planes after a missed trigger were "
            "filled one frame early)"
        )
        events.append(
            MicroscopeEvent(
                "warning",
                f"missing frames at stop: {what} were triggered but never arrived",
                volume=lost[0] // self._z,
            )
        )
