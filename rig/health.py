"""The health monitor: every fault of a session, through one path, and the laser watch.

Devices, lanes and worker processes fail in their own ways (an exception on the
loop lane, a message from the writer process, a renderer that stopped answering,
a laser whose port vanished). Each becomes one :class:`~rig.core.events.Fault`
(source, message, whether the laser may still be on) and goes through
:meth:`HealthMonitor.report`: the first one is the run's fault (the runner stops
on it, and the final "session failed" event carries its source), each is logged
once, and a fault that leaves the laser's state unknown says so in the status.

The periodic checks (the writer process, the renderer, the laser, the writer's
buffer) run on the record lane a few times per second; :class:`LaserWatch` asks
the laser on a thread of its own in real time. :meth:`HealthMonitor.laser_off`
is the first thing every stop does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from acquisition.laser import Laser
from rig.core.errors import SessionFileError, ZaprigError
from rig.core.events import Fault, Kind, Source

__all__ = [
    "FaultRaised",
    "HealthMonitor",
    "LaserState",
    "LaserWatch",
    "as_fault",
    "describe_error",
    "fault_of",
    "source_of",
]

#: What the laser driver last confirmed; "unknown": it may still be on.
LaserState = Literal["on", "off", "unknown"]
#: The session's event log: (sample, kind, message, source).
EventLog = Callable[[int, Kind, str, Source], None]


class FaultRaised(ZaprigError):
    """A device call on a lane failed: the fault it raises, with the device named."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault


@contextmanager
def as_fault(source: Source, laser_may_be_on: bool = False) -> Iterator[None]:
    """A device call inside: its error becomes that device's fault (:class:`FaultRaised`)."""
    try:
        yield
    except FaultRaised:
        raise
    except ZaprigError as e:
        raise FaultRaised(Fault(source, str(e), laser_may_be_on)) from e


def describe_error(e: BaseException) -> str:
    """One line for people: our errors as they are (they say what to do), others with their type."""
    return str(e) if isinstance(e, ZaprigError) else f"{type(e).__name__}: {e}"


def source_of(e: BaseException) -> Source:
    """Where a failure to start or run comes from, by its type (never by its words)."""
    if isinstance(e, FaultRaised):
        return e.fault.source
    if isinstance(e, SessionFileError):
        return "disk"
    return "engine"


def fault_of(e: BaseException, source: Source = "engine") -> Fault:
    """The fault an exception on a lane stands for: a :class:`FaultRaised` keeps its own."""
    if isinstance(e, FaultRaised):
        return e.fault
    return Fault(source, str(e))


class WriterHealth(Protocol):
    """What the monitor asks of the writer's client."""

    @property
    def proc(self) -> object: ...

    def poll(self) -> list[str]: ...

    def alive(self) -> bool: ...

    def buffer_fill(self) -> float: ...


class RendererHealth(Protocol):
    def check(self) -> str | None: ...


class HealthMonitor:
    """The session's faults (one path for all of them) and its periodic device checks."""

    def __init__(
        self,
        log: EventLog,
        samples_per_check: int,
        warn_fill: float,
        virtual: bool,
    ) -> None:
        self._log = log
        self.samples_per_check = samples_per_check
        self._warn_fill = warn_fill
        self._virtual = virtual
        #: The first fault: the one the run stops on and the final event names.
        self.fault: Fault | None = None
        self.laser: LaserState = "off"
        self._laser_on = False
        self._reported: set[tuple[str, str]] = set()
        self._fill_warned = False
        self.watch: LaserWatch | None = None

    # -- the one path --------------------------------------------------------------------
    def report(self, sample: int, fault: Fault, *, log: bool = True, once: bool = False) -> None:
        """A fault: logged (``log``; ``once``: a standing fault is logged the first time
        only), and the run's fault if it is the first."""
        if once:
            key = (fault.source, fault.message)
            if key in self._reported:
                return
            self._reported.add(key)
        if log:
            self._log(sample, "fault", fault.message, fault.source)
        if fault.laser_may_be_on:
            self.laser = "unknown"
        if self.fault is None:
            self.fault = fault

    def final_fault(self) -> Fault | None:
        """The "session failed" record: the first fault's source, its message prefixed."""
        f = self.fault
        return None if f is None else Fault(f.source, f"session failed: {f.message}")

    # -- periodic checks (the record lane) -------------------------------------------------
    def check(self, sample: int, writer: WriterHealth, renderer: RendererHealth) -> None:
        for err in writer.poll():
            self._log(sample, "fault", f"writer: {err}", "writer")
            self.report(sample, Fault("writer", err), log=False)
        if writer.proc is not None and not writer.alive():
            msg = "the writer process died; the file holds everything up to its last flush"
            self.report(sample, Fault("writer", msg), log=False)
        if problem := renderer.check():
            self.report(sample, Fault("renderer", problem), once=True)
        if self.watch is not None and (problem := self.watch.check(sample, self.samples_per_check)):
            self.report(sample, Fault("laser", problem, laser_may_be_on=True), once=True)
        # In virtual time the image lane waits for a free slot (back-pressure), so a full ring
        # only means the simulation outran the writer: nothing can be dropped, and saying "the
        # disk is not keeping up" there would be a false alarm in every test session.
        fill = 0.0 if self._virtual else writer.buffer_fill()
        if fill >= self._warn_fill and not self._fill_warned:
            self._fill_warned = True
            self._log(
                sample,
                "warning",
                f"writer buffer {fill:.0%} full: the disk is not keeping up; volumes will be "
                "dropped (and recorded) if it fills",
                "writer",
            )
        elif fill < self._warn_fill / 2:
            self._fill_warned = False

    # -- the laser -------------------------------------------------------------------------
    def laser_on(self, laser: Laser, power_mw: float, threaded: bool) -> None:
        """Switch the laser on and start watching it (the state is unknown until it answers)."""
        self.laser = "unknown"  # a failed on() may have half-worked
        with as_fault("laser", laser_may_be_on=True):
            laser.on(power_mw)
        self._laser_on = True
        self.laser = "on"
        self._log(0, "info", f"laser on at {power_mw:g} mW", "laser")
        self.watch = LaserWatch(laser, threaded=threaded)

    def laser_off(self, laser: Laser, sample: int) -> None:
        """Laser off, first on every stop; "off" only when the driver confirmed it."""
        if self.watch is not None:
            self.watch.stop()
        before = len(laser.off_failures)
        confirmed = True
        try:
            laser.off()
        except Exception as e:  # off() must not raise; if it does, say so loudly
            confirmed = False
            msg = f"laser may still be on: laser off failed: {e}"
            self.report(sample, Fault("laser", msg, laser_may_be_on=True))
        for msg in laser.off_failures[before:]:
            confirmed = False
            self.report(sample, Fault("laser", f"laser may still be on: {msg}", True))
        # "laser off" only when the driver confirmed it: after a failed off it would be a lie
        if confirmed:
            if self._laser_on:
                self._log(sample, "info", "laser off", "laser")
            self.laser = "off"
        else:
            self.laser = "unknown"
        self._laser_on = False


class LaserWatch:
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
