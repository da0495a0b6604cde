"""One vocabulary of drops and faults for the app, ``zaprig inspect``, the report and the summary.

A rig-day walk-through found them disagreeing: the app said "1 planes · 0
volumes" dropped where ``inspect`` said "dropped 0" (it had no planes figure),
and one lost laser was counted as three faults (the lost port, the laser that
may still be on, and the session failing because of it). Everything that
counts or words them now goes through here:

- :func:`format_drops`: planes, volumes and stimulus frames, always all three;
- :func:`fault_incidents`: fault events grouped into incidents, one per device
  (a session failing "because of X" restates X; it is not a new fault);
- :func:`plain_fault`: a device error in words for the person at the rig (no
  errno tuples, no instrument commands; the event log keeps the raw text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FAULT_DEVICES",
    "SOURCE_DEVICES",
    "Incident",
    "IncidentCounter",
    "device_of_fault",
    "fault_incidents",
    "format_drops",
    "plain_fault",
]

#: Words in a fault message -> the device it is about (the app's lamp). First match wins.
FAULT_DEVICES: tuple[tuple[str, str], ...] = (
    ("laser", "laser"),
    ("camera", "microscope"),
    ("microscope", "microscope"),
    ("daq", "daq"),
    ("overflow", "daq"),
    ("render", "display"),
    ("display", "display"),
    ("writer", "writer"),
    ("disk", "writer"),
)

#: An event's ``source`` (rig/core/events.py) -> the device it is about.
SOURCE_DEVICES: dict[str, str] = {
    "laser": "laser",
    "camera": "microscope",
    "image lane": "microscope",
    "daq": "daq",
    "renderer": "display",
    "writer": "writer",
    "disk": "writer",
    "record lane": "writer",
}

#: How the engine words a session that failed because of an earlier fault.
RESTATEMENT = "session failed:"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_drops(planes: int, volumes: int, stimulus_frames: int = 0) -> str:
    """ "1 plane, 0 volumes, 0 stimulus frames": the same three figures, in the same words."""
    return (
        f"{_plural(planes, 'plane')}, {_plural(volumes, 'volume')}, "
        f"{_plural(stimulus_frames, 'stimulus frame')}"
    )


def device_of_fault(message: str, source: str | None = None) -> str | None:
    """Which device a fault is about, if any.

    The event's ``source`` decides; the words of the message only for events that
    carry none (files recorded before events had a source, or the app's own messages).
    """
    if source is not None and source not in ("engine", ""):
        return SOURCE_DEVICES.get(source)
    low = message.lower()
    for word, key in FAULT_DEVICES:
        if word in low:
            return key
    return None


@dataclass
class Incident:
    """One thing that went wrong, however many fault events it caused."""

    sample: int
    device: str | None
    message: str  # the first fault event's
    events: int = 1


class IncidentCounter:
    """Groups fault events into incidents as they come (the app) or all at once (the file)."""

    def __init__(self) -> None:
        self.incidents: list[Incident] = []

    def __len__(self) -> int:
        return len(self.incidents)

    def add(self, sample: int, message: str, source: str | None = None) -> Incident | None:
        """Take one fault event; the new :class:`Incident` if it is one, else None."""
        if message.startswith(RESTATEMENT) and self.incidents:
            said = message[len(RESTATEMENT) :].strip()
            for inc in self.incidents:
                if inc.message == said or said in inc.message or inc.message in said:
                    inc.events += 1
                    return None
            self.incidents[0].events += 1  # the session failed because of the first
            return None
        device = device_of_fault(message, source)
        if device is not None:
            for inc in self.incidents:
                if inc.device == device:
                    inc.events += 1
                    return None
        inc = Incident(int(sample), device, message)
        self.incidents.append(inc)
        return inc


def fault_incidents(
    events: Iterable[tuple[int, str, str] | tuple[int, str, str, str]],
) -> list[Incident]:
    """The incidents among ``(sample, kind, message[, source])`` events (others are ignored)."""
    counter = IncidentCounter()
    for e in events:
        if e[1] == "fault":
            counter.add(e[0], e[2], e[3] if len(e) > 3 else None)
    return counter.incidents


_ERRNO_TUPLE = re.compile(r":?\s*\(\d+, '[^']*'\)")
_ERRNO_TAG = re.compile(r"\b(?:[A-Z]\w*Error: )?\[Errno \d+\]\s*")
_COMMAND = re.compile(r"\s+during\s+'[^']*'")
_PORT_KEY = re.compile(r"\s*(/dev/[\w/.-]+|COM\d+)\s+\(([\w.]+)\)")
_ON_PORT = re.compile(r"\s+on\s+(/dev/[\w/.-]+|COM\d+)")


def plain_fault(message: str) -> str:
    """A fault in words for people: what is lost and which setting names it; no errno tuples,
    no instrument commands, no bare device paths (the event log keeps the raw text)."""
    text = _COMMAND.sub("", message)
    text = _ERRNO_TUPLE.sub("", text)
    text = _ERRNO_TAG.sub("", text)
    text = _PORT_KEY.sub(r" (the port set as \2)", text)
    text = _ON_PORT.sub("", text)
    text = re.sub(r"\s+\.", ".", text)
    return re.sub(r"\s{2,}", " ", text).strip()
