"""The timebase: the DAQ sample clock is the master; these clocks pace simulations.

Every record carries a DAQ sample index. On real hardware the DAQ driver paces
the run (a read returns when the samples exist). In simulation a clock stands in:

* :class:`RealTimeClock` sleeps until the wall clock reaches a sample, for the GUI
  and demos;
* :class:`VirtualClock` never sleeps, so a two-hour protocol is checked in minutes.

Nothing in the engine calls ``time.sleep`` or reads the wall clock directly: it
asks a clock, so the same code runs in both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "RealTimeClock", "VirtualClock", "make_clock", "utc_now_iso"]


def utc_now_iso() -> str:
    """Wall-clock time for humans, ISO 8601 UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock(Protocol):
    """What the engine may ask about time."""

    sample_rate_hz: float

    def start(self) -> None:
        """Mark sample 0 as now."""

    def wait_until(self, sample: int) -> None:
        """Return once ``sample`` has been acquired (never before)."""

    def current_sample(self) -> int:
        """The newest sample that exists now."""

    def wall_time(self) -> float:
        """Seconds since the epoch, for the human-readable column of records."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    def yield_to_others(self) -> None:
        """Let the other lanes run for a moment (virtual time waits for them this way)."""


class RealTimeClock:
    """Paces simulated samples to the wall clock (monotonic, drift-free)."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._t0 = time.monotonic()
        self._wall0 = time.time()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._wall0 = time.time()

    def current_sample(self) -> int:
        return int((time.monotonic() - self._t0) * self.sample_rate_hz)

    def wait_until(self, sample: int) -> None:
        due = self._t0 + sample / self.sample_rate_hz
        while True:
            left = due - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def wall_time(self) -> float:
        return self._wall0 + (time.monotonic() - self._t0)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def yield_to_others(self) -> None:
        time.sleep(0.0005)


class VirtualClock:
    """Time advances only as the engine asks for samples: no sleeping at all."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._now = 0
        self._wall0 = time.time()

    def start(self) -> None:
        self._now = 0
        self._wall0 = time.time()

    def current_sample(self) -> int:
        return self._now

    def wait_until(self, sample: int) -> None:
        self._now = max(self._now, sample)

    def wall_time(self) -> float:
        # Virtual wall time follows the sample clock so records stay ordered and plausible.
        return self._wall0 + self._now / self.sample_rate_hz

    def sleep(self, seconds: float) -> None:
        self._now += round(seconds * self.sample_rate_hz)

    def yield_to_others(self) -> None:
        # real time passes, virtual time does not: the other lanes get the CPU
        time.sleep(0.0005)


def make_clock(kind: str, sample_rate_hz: float) -> Clock:
    if kind == "realtime":
        return RealTimeClock(sample_rate_hz)
    if kind == "virtual":
        return VirtualClock(sample_rate_hz)
    raise ValueError(f"clock must be 'realtime' or 'virtual', not {kind!r}")
