"""The session's life cycle as the app shows it, and what to tell people when a device fails.

The engine's own states (``rig.engine.RunState``) say what the engine is doing;
the app adds what an experimenter needs to read off the bar: that the rig is
arming (devices opening, before any recording), that a Stop is pending and
after which block, and that a past file is on screen. One enum, so the bar,
the buttons and the tests agree on which state the app is in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rig.core.vocabulary import SOURCE_DEVICES

__all__ = ["Phase", "PhaseStyle", "device_of_source", "fault_advice"]


class Phase(enum.Enum):
    IDLE = "idle"
    ARMING = "arming"
    RUNNING = "running"
    STOPPING = "stopping"  # a clean stop waits for the end of the current block
    ABORTING = "aborting"
    COMPLETE = "complete"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAILED = "failed"
    VIEWING = "viewing"  # a past session file, read-only

    @property
    def active(self) -> bool:
        """A session is on: the set-up is fixed and Start is off."""
        return self in (Phase.ARMING, Phase.RUNNING, Phase.STOPPING, Phase.ABORTING)

    @property
    def ended(self) -> bool:
        return self in (Phase.COMPLETE, Phase.STOPPED, Phase.ABORTED, Phase.FAILED)


@dataclass(frozen=True, slots=True)
class PhaseStyle:
    colour: str
    help: str


STYLES: dict[Phase, PhaseStyle] = {
    Phase.IDLE: PhaseStyle("#555555", "no session: set up the rig, protocol and fish, then Start"),
    Phase.ARMING: PhaseStyle("#1c64d6", "opening the devices and creating the session file"),
    Phase.RUNNING: PhaseStyle("#2fb344", "recording"),
    Phase.STOPPING: PhaseStyle("#c27c00", "the current block finishes, then the session ends"),
    Phase.ABORTING: PhaseStyle("#d63939", "ending now: laser off, file closed as 'aborted'"),
    Phase.COMPLETE: PhaseStyle("#2fb344", "the protocol ran to its end"),
    Phase.STOPPED: PhaseStyle("#1c64d6", "ended early on purpose, at the end of a block"),
    Phase.ABORTED: PhaseStyle("#c27c00", "ended at once by Abort or by closing the app"),
    Phase.FAILED: PhaseStyle("#d63939", "a device or the disk failed: see the banner"),
    Phase.VIEWING: PhaseStyle("#7048e8", "a past session file, read-only"),
}

_ADVICE: dict[str, tuple[str, str]] = {
    "laser": (
        "LASER",
        "The laser may still be on: switch it off at its key switch or controller now. Then "
        "check its USB/serial cable and power, and the Laser lamp on the Rig tab.",
    ),
    "microscope": (
        "CAMERA",
        "Check the camera's trigger cable from the DAQ and its data cable, and that "
        "Micro-Manager still sees the camera (Microscope lamp on the Rig tab).",
    ),
    "daq": (
        "DAQ",
        "Check the NI-DAQ's USB/PCIe connection and the BNC cables of the tail and trigger "
        "channels (DAQ lamp on the Rig tab).",
    ),
    "display": (
        "STIMULUS DISPLAY",
        "Check the projector's cable and power and that the stimulus window is still open "
        "(Display lamp on the Rig tab).",
    ),
    "writer": (
        "DISK / WRITER",
        "Free space on the output disk or choose another output folder; the file holds "
        "everything up to the last flush (Disk lamp on the Rig tab).",
    ),
}


#: An event's ``source`` -> the Rig tab lamp it lights (the lamps are the devices).
SOURCE_LAMPS = SOURCE_DEVICES


def device_of_source(source: str | None) -> str | None:
    """The Rig tab lamp (device) a fault's ``source`` lights; None for the run as a whole.

    The app goes by the source alone, never by the words of a message: every fault
    the engine reports carries the source that failed (rig/health.py).
    """
    return SOURCE_DEVICES.get(source) if source else None


def fault_advice(source: str | None) -> tuple[str, str]:
    """(what failed, what to do) for a fault from ``source``, in words for the person at the rig."""
    key = device_of_source(source)
    if key is None:
        return "SESSION", "Read the event log for the cause; the session file is closed and valid."
    return _ADVICE[key]
