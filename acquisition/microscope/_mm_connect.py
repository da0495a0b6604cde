"""Reaching Micro-Manager's core: the two connectors, the simulated core, the trigger mode.

Split from :mod:`acquisition.microscope._mmcore` by job: this module makes and releases a
connected MMCore (pymmcore-plus loading a hardware config in-process, pycromanager attaching
to a running Micro-Manager, or a UniMMCore holding the Python camera of
:mod:`acquisition.microscope._sim_camera`) and names the camera properties that select an
external edge trigger. What a run does with the core (arm, read the circular buffer, place
frames) is in :mod:`acquisition.microscope._mmcore` and :mod:`acquisition.microscope._mm_sequence`.
Every optional package (pymmcore-plus, pycromanager) is imported inside the function that needs it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rig.core.config import MicroscopeConfig
from rig.core.errors import ConfigError, DeviceError
from rig.core.optional import require

__all__ = [
    "TRIGGER_PROPERTIES",
    "MMCore",
    "PycromanagerCore",
    "attach_pycromanager_core",
    "load_mm_config",
    "release_core",
    "simulated_core",
]

# the backend's one logger (named for the module the backend was written as)
log = logging.getLogger("acquisition.microscope._mmcore")

#: Camera properties that select the trigger source, as common adapters spell them.
TRIGGER_PROPERTIES = ("TriggerMode", "Trigger", "TRIGGER SOURCE", "Triggermode", "TriggerSource")
#: Values meaning "one exposure per external edge", best first. Level/"external
#: exposure" modes are avoided: with 1 ms trigger pulses they would expose 1 ms.
_EXTERNAL_VALUES = ("external", "edge trigger", "external edge", "ext", "ext trig")
_NOT_EDGE_WORDS = ("start", "exposure", "level", "bulb", "gate", "width")


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


def load_mm_config(cfg: MicroscopeConfig) -> Any:
    """Load ``cfg.mm_config`` into an in-process pymmcore-plus ``UniMMCore``; the core."""
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
    return core


def attach_pycromanager_core(cfg: MicroscopeConfig, host: str) -> PycromanagerCore:
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
        from pycromanager import Core as core_cls  # type: ignore[import-not-found, no-redef, unused-ignore]
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
    return PycromanagerCore(java_core)


def simulated_core(
    cfg: MicroscopeConfig,
    *,
    drop_frames: Iterable[int],
    spurious_pulses_after: Iterable[int],
    stop_after: int | None,
) -> tuple[Any, Any]:
    """A real UniMMCore holding the simulated triggered camera: (core, camera)."""
    from pymmcore_plus.experimental.unicore import UniMMCore

    from acquisition.microscope._sim_camera import TriggeredCamera

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
    return core, camera
