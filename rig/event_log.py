"""The session's event log: every event, from any lane, to the file, the subscribers and the log.

One call (:meth:`EventLog.__call__`) with (sample, kind, message, source); the
counts of warnings and faults feed the run's status, and the fault rows are kept
for recovery when the writer process dies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from acquisition.writer import WriterClient
from rig.core.clock import Clock
from rig.core.events import Event, Kind, SessionLog, Source

__all__ = ["EventLog"]


class EventLog:
    """Thread-safe: events come from every lane."""

    def __init__(self, clock: Clock, sample_rate_hz: float) -> None:
        self._clock = clock
        self._fs = sample_rate_hz
        self._lock = threading.RLock()
        self.warnings = 0
        self.faults = 0
        #: (sample, kind, message, source) of every event, in order.
        self.rows: list[tuple[int, Kind, str, Source]] = []
        self.listeners: list[Callable[[Event], None]] = []
        #: Where events are written, once the file exists.
        self.writer: WriterClient | None = None

    def __call__(self, sample: int, kind: Kind, message: str, source: Source = "engine") -> None:
        event = Event(int(sample), self._clock.wall_time(), kind, message, source)
        with self._lock:
            if kind == "warning":
                self.warnings += 1
            elif kind == "fault":
                self.faults += 1
            self.rows.append((sample, kind, message, source))
            SessionLog.emit(event, self._fs)
            for cb in self.listeners:
                cb(event)
            w = self.writer
            if w is not None and not w.closed:
                w.event(event)
