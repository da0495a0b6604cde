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
from typing import Literal, cast, get_args

import numpy as np

__all__ = [
    "KINDS",
    "SOURCES",
    "Event",
    "Fault",
    "Kind",
    "SessionLog",
    "Severity",
    "Source",
    "event_columns",
    "severity_of",
]

#: ``kind`` (the contract's column): protocol steps, user notes, and three levels of report.
Kind = Literal["protocol", "note", "info", "warning", "fault"]
#: Where an event comes from: the device kinds, the lanes and worker processes, the
#: protocol, the user, and the runner itself (``engine``: the run as a whole).
Source = Literal[
    "engine",
    "protocol",
    "user",
    "daq",
    "camera",
    "renderer",
    "photodiode",
    "laser",
    "writer",
    "disk",
    "readout",
    "loop lane",
    "image lane",
    "record lane",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
SOURCES: tuple[Source, ...] = get_args(Source)
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
    kind: Kind
    message: str
    source: Source = "engine"

    def __post_init__(self) -> None:
        # a typo'd or unlisted kind or source would reach the file and the GUI's lamps
        # unnoticed (the engine once emitted "readout" and "photodiode", listed nowhere)
        if self.kind not in KINDS:
            raise ValueError(f"event kind {self.kind!r}: not one of {KINDS}")
        if self.source not in SOURCES:
            raise ValueError(f"event source {self.source!r}: not one of {SOURCES}")

    @property
    def severity(self) -> Severity:
        return severity_of(self.kind)

    @classmethod
    def from_file(
        cls, sample: int, wall_time: float, kind: str, message: str, source: str
    ) -> Event:
        """An event read back from a file, which another version of zaprig may have written:
        an unknown kind reads as ``info`` and an unknown source as ``engine``, with the
        original words kept in front of the message, so reading never fails on them."""
        known_kind = kind in KINDS
        known_source = source in SOURCES
        if not (known_kind and known_source):
            message = f"[{kind} from {source}] {message}"
        return cls(
            sample,
            wall_time,
            cast(Kind, kind) if known_kind else "info",
            message,
            cast(Source, source) if known_source else "engine",
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """A device or lane that failed: what the runner needs to end the run safely.

    One record from every lane and device, reported by one path (the health monitor), so the
    final "session failed" event keeps the source that failed, and the GUI lights the lamp
    of ``source`` without reading ``message``. ``laser_may_be_on`` says whether the laser's
    state is unknown after it (a lost serial port): the runner then tries every way to
    switch it off and says so, instead of reporting it off.
    """

    source: Source
    message: str
    laser_may_be_on: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"fault source {self.source!r}: not one of {SOURCES}")

    def event(self, sample: int, wall_time: float) -> Event:
        """The ``/events`` row that records this fault."""
        return Event(sample, wall_time, "fault", self.message, self.source)


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
