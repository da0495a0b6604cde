"""Session events as structured records: when, what kind, how serious, from where, and what.

Every event of a session (protocol steps, user notes, device reports, faults)
is one :class:`Event`. ``source`` says which part of the rig it concerns (a device
kind or a lane), so the GUI lights the right lamp without reading the words, and
``severity`` says how serious it is. Events go to three places from one call in
the engine: the session file's ``/events`` table (columns ``sample``,
``wall_time``, ``kind``, ``message``, ``source``, ``severity``), the engine's
subscribers (the GUI), and Python ``logging`` (logger ``zaprig.session``), which
writes a per-session log file beside the session (``<session>.log``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "KINDS",
    "SOURCES",
    "Event",
    "SessionLog",
    "Severity",
    "event_columns",
    "severity_of",
]

#: ``kind`` (the contract's column): protocol steps, user notes, and three levels of report.
KINDS = ("protocol", "note", "info", "warning", "fault")
#: Where an event comes from: the device kinds, the lanes, the protocol and the user.
SOURCES = (
    "engine",
    "protocol",
    "user",
    "daq",
    "camera",
    "renderer",
    "laser",
    "writer",
    "disk",
    "loop lane",
    "image lane",
    "record lane",
)
Severity = Literal["info", "warning", "fault"]

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "fault": logging.ERROR}
log = logging.getLogger("zaprig.session")


def severity_of(kind: str) -> Severity:
    """Protocol steps and notes are information; warnings and faults say so."""
    if kind == "fault":
        return "fault"
    if kind == "warning":
        return "warning"
    return "info"


@dataclass(frozen=True, slots=True)
class Event:
    sample: int  # DAQ sample at which it happened
    wall_time: float  # seconds since the epoch, for people
    kind: str
    message: str
    source: str = "engine"

    @property
    def severity(self) -> Severity:
        return severity_of(self.kind)


def event_columns(events: list[Event]) -> dict[str, np.ndarray]:
    """The ``/events`` table's columns for some events (one definition for every writer)."""
    return {
        "sample": np.array([e.sample for e in events], dtype=np.int64),
        "wall_time": np.array([e.wall_time for e in events], dtype=np.float64),
        "kind": np.array([e.kind for e in events], dtype=object),
        "message": np.array([e.message for e in events], dtype=object),
        "source": np.array([e.source for e in events], dtype=object),
        "severity": np.array([e.severity for e in events], dtype=object),
    }


class SessionLog:
    """A log file beside the session file that receives every event through ``logging``."""

    def __init__(self, session_path: Path) -> None:
        self.path = session_path.with_suffix(".log")
        self._handler = logging.FileHandler(self.path, encoding="utf-8", delay=True)
        self._handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
        log.addHandler(self._handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)

    @staticmethod
    def emit(event: Event, sample_rate_hz: float) -> None:
        log.log(
            _LEVELS[event.severity],
            "[%s] sample %d (%.3f s) %s: %s",
            event.source,
            event.sample,
            event.sample / sample_rate_hz,
            event.kind,
            event.message,
        )

    def close(self) -> None:
        log.removeHandler(self._handler)
        self._handler.close()
