"""Stopping a run from outside: signals to the run's process and to its children.

A terminal's Ctrl-C, ``timeout``, ``kill -- -PGID`` and a service manager send
their signal to the whole process group, so the writer, the renderer and the
laser guard get it as well as the engine. If they obeyed it, the file would be
left half-written while the engine still tries to close it. So the children
ignore SIGINT, SIGTERM and SIGHUP (:func:`ignore_stop_signals`) and the engine
alone reacts (:class:`StopOnSignals`): it asks the run to stop between chunks,
then stops its children in order (laser, devices, renderer, writer).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopOnSignals", "ignore_stop_signals", "start_resource_tracker"]

#: The signals that mean "stop now, cleanly" (SIGHUP: the terminal went away).
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def ignore_stop_signals() -> None:
    """For child processes: only the engine decides when they stop."""
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread / not supported
            signal.signal(sig, signal.SIG_IGN)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, deaf to SIGHUP.

    The tracker (a process of the run's group) unlinks the run's shared memory and
    semaphores if the run dies. Python makes it ignore SIGINT and SIGTERM, not SIGHUP: a
    SIGHUP to the group (the terminal closed) killed it, the next release started a new
    one that had never seen the names, and it printed a ``KeyError: '/mp-...'`` traceback
    for each, while the dead one's semaphores stayed in /dev/shm. An ignored signal stays
    ignored across fork and exec, so the tracker started here never sees SIGHUP.
    """
    from multiprocessing import resource_tracker

    try:
        old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to protect it from here
        resource_tracker.ensure_running()
        return
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, old)


class StopOnSignals:
    """While active, a stop signal calls ``request_stop(reason)`` once; later ones call
    ``still_stopping()`` (which should say what is still being saved) instead of killing us.

    Used as a context manager around arming and running, so a signal at any moment,
    even while the session file is being created, ends the run ``aborted``.
    """

    def __init__(
        self, request_stop: Callable[[str], None], still_stopping: Callable[[], str]
    ) -> None:
        self._request_stop = request_stop
        self._still_stopping = still_stopping
        self._old: dict[signal.Signals, Any] = {}
        self.received: list[str] = []
        #: The first stop signal's number (None: none came); the CLI exits 128 + it, as a
        #: shell reports a process a signal ended (130 after Ctrl-C, however many).
        self.first_signal: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        self.received.append(name)
        if len(self.received) == 1:
            self.first_signal = int(signum)
            self._request_stop(f"stopped by {name}")
            _say(f"zaprig: {name}: stopping; the session file is being closed as 'aborted'")
        else:
            _say(f"zaprig: {name} again: {self._still_stopping()}")

    def __enter__(self) -> StopOnSignals:
        start_resource_tracker()  # before any shared memory or queue exists
        for sig in STOP_SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.received:
            # Stopping because of a signal: the run has stopped, its file is closed and the
            # process is on its way out. A repeated signal (Ctrl-C pressed three times) must
            # not kill it with a signal death instead of the run's exit status. Ignored, not
            # handled: the interpreter's finalization resets Python-level handlers to the
            # default action (a late Ctrl-C then ended the process with -2), but keeps SIG_IGN.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _say(message: str) -> None:
    """Tell the terminal; after SIGHUP there may be none, and that must not stop the stop."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)
