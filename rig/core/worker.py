"""One way to run a worker process: the writer, the readout and the renderer all use it.

This module is the parent's side (:class:`Worker`) and the one place to import from; the
child's side (:class:`WorkerContext` and the bootstrap that runs in the spawned process) is in
:mod:`rig.core._worker_child` and the messages both sides exchange (with :func:`dispatch`
and the log of every message) in :mod:`rig.core._worker_messages`. The split follows the
process boundary: each file is the code one process runs, plus the vocabulary they share.

A :class:`Worker` (the parent's side) spawns its child with the ``spawn`` start
method, so the child starts clean (no Qt, no copied locks). The child's entry
point gets a :class:`WorkerContext` and the worker's own arguments::

    def main(ctx: WorkerContext, path: str) -> None:
        ...                             # open what the worker needs
        ctx.ready(MyReady(path))        # the handshake: Worker.start() returns it
        while (msg := ctx.receive(0.2)) is not None or not ctx.stop_requested:
            ...

    w = Worker("writer", main, path, inbox=4096)
    ready = w.start(timeout_s=30)       # WorkerError if it failed or was not ready in time
    w.send(Data(...))                   # never waits (False: the inbox is full)
    w.receive_all(handlers)             # {message type: handler}, one table per receiver
    w.stop(timeout_s=10)                # bounded: stop, join, terminate, kill

What every worker gets, said once here:

- **Messages** are frozen dataclasses (subclasses of :class:`Message`) on two
  ``multiprocessing`` queues, an inbox and an outbox, and the receiver dispatches each
  with one table ``{message type: handler}`` (:func:`dispatch`). Every message sent or
  received is logged on the ``zaprig.worker`` logger: data at DEBUG, lifecycle
  (:class:`Lifecycle`: ready, stop, failed) at INFO. A child logs to stderr at the level
  its parent's ``zaprig.worker`` logger had, if the parent's logging was set up.
- **Ready handshake**: :meth:`Worker.start` waits (bounded) for the child's :class:`Ready`.
- **Error report**: an exception that ends the child's main reaches the parent as
  :class:`Failed` (its type, message and traceback); :meth:`Worker.start` raises it as a
  :class:`WorkerError`, later it is :attr:`Worker.failure` and goes to the handler table.
- **Parent watch**: a thread of the child notices when its parent is gone, runs the
  worker's :meth:`~WorkerContext.on_parent_death` hook (the writer closes its file
  ``failed``) and ends the child. A child never outlives the process that ran it.
- **Stop signals**: the child ignores Ctrl-C, SIGTERM and SIGHUP
  (:func:`rig.core.stopping.ignore_stop_signals`): the parent stops it, in order.
- **Bounded stop**: :meth:`Worker.stop` sends :class:`Stop` and sets the stop flag, takes
  the child's last messages while it finishes, and after ``timeout_s`` terminates it, then
  kills it. No wait is unbounded, on either side: a queue whose reader is gone would block
  its feeder thread, and multiprocessing joins that thread at exit, forever; so the
  parent's inbox and, after a bounded wait, the child's outbox are let go
  (``cancel_join_thread``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from rig.core._worker_child import WorkerContext, _child_main, _Spec
from rig.core._worker_messages import (
    _STOP,
    Failed,
    Handlers,
    Lifecycle,
    Message,
    Ready,
    Stop,
    WorkerError,
    _log_message,
    _put,
    dispatch,
)

__all__ = [
    "BACKGROUND_NICE",
    "Failed",
    "Handlers",
    "Lifecycle",
    "Message",
    "Ready",
    "Stop",
    "Worker",
    "WorkerContext",
    "WorkerError",
    "dispatch",
]

log = logging.getLogger("zaprig.worker")

#: The nice value a background worker adds to its parent's (``Worker(nice=BACKGROUND_NICE)``):
#: the live readout, whose rows are skipped when late. At the dataset's size on two CPUs,
#: with the writer past the page cache (acquisition/writer/_direct.py), the readout was the
#: largest user of a CPU (0.4-0.5 of one) and the app's 50 ms timer waited for a CPU: late
#: by 35.5-60.3 ms at p99 at nice 0, by 23.4-30.8 ms at nice +10, with the same readout rows
#: shown and no volume dropped (benchmarks/gui_fullsize.py, back to back). Against one busy
#: ordinary thread, nice +10 still gets a tenth of a CPU, and any CPU left idle.
BACKGROUND_NICE = 10

#: After ``terminate``, how long :meth:`Worker.stop` waits for the exit before ``kill``.
TERMINATE_WAIT_S = 0.5
#: After ``kill`` (and after a failure report), how long it waits for the exit.
SIGNAL_WAIT_S = 2.0


class Worker:
    """A worker process seen from its parent: start, send, receive, stop, kill.

    ``inbox``/``outbox`` bound the two queues (0: unbounded). ``daemon``: multiprocessing
    kills a daemon child when the parent exits normally; a non-daemon one is waited for.
    ``nice``: the child adds it to its nice value as it starts (:data:`BACKGROUND_NICE` for
    work whose results may be skipped), so the interactive threads run first when both are
    ready.
    """

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        *args: Any,
        inbox: int = 0,
        outbox: int = 0,
        daemon: bool = True,
        nice: int = 0,
    ) -> None:
        self.name = name
        self._nice = nice
        self._target = target
        self._args = args
        self._daemon = daemon
        self.ctx: SpawnContext = mp.get_context("spawn")
        self._inbox: Any = self.ctx.Queue(maxsize=inbox)
        self._outbox: Any = self.ctx.Queue(maxsize=outbox)
        self._stop: Any = self.ctx.Event()
        self.proc: SpawnProcess | None = None
        #: The child's report of why it ended, once received.
        self.failure: Failed | None = None
        #: The child's ready message, once received.
        self.ready: Ready | None = None
        self._stopped = False

    # -- state ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the child to exit (a bounded pause)."""
        if self.proc is not None:
            self.proc.join(timeout_s)

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout_s: float, handlers: Handlers | None = None) -> Ready:
        """Spawn the child and wait up to ``timeout_s`` for its :class:`Ready`.

        Messages before it go to ``handlers``. :class:`WorkerError` if the child reported a
        failure, exited, or was not ready in time (then it is left running: the caller stops
        it, or goes on without it).
        """
        if self.proc is not None:
            raise RuntimeError(f"{self.name}: start() called twice; make a new Worker")
        level = log.getEffectiveLevel() if logging.getLogger().hasHandlers() else None
        spec = _Spec(
            self.name,
            self._target,
            self._args,
            self._inbox,
            self._outbox,
            self._stop,
            os.getpid(),
            level,
            self._nice,
        )
        proc = self.ctx.Process(
            target=_child_main, args=(spec,), name=f"zaprig-{self.name}", daemon=self._daemon
        )
        self.proc = proc
        proc.start()
        log.info("%s: spawned (pid %s)", self.name, proc.pid)
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.receive(min(0.1, max(0.0, deadline - time.monotonic())))
            if isinstance(msg, Ready):
                self.ready = msg
                return msg
            if isinstance(msg, Failed):
                self.failure = msg
                proc.join(SIGNAL_WAIT_S)
                raise WorkerError(f"{self.name}: {msg.message}", msg)
            if msg is not None:
                if handlers is not None:
                    dispatch(handlers, msg, self.name)
                continue
            if not proc.is_alive():
                # its last words may have arrived just before it exited
                late = self.receive(0.2)
                if isinstance(late, Failed):
                    self.failure = late
                    raise WorkerError(f"{self.name}: {late.message}", late)
                raise WorkerError(
                    f"{self.name}: the process exited with code {proc.exitcode} before it was ready"
                )
            if time.monotonic() >= deadline:
                raise WorkerError(f"{self.name}: not ready after {timeout_s:g} s")

    def send(self, msg: Message, timeout: float | None = 0) -> bool:
        """To the child. ``timeout``: 0 (default) never waits, None waits; False if full."""
        _log_message(self.name, "<-", msg)
        if _put(self._inbox, msg, timeout):
            return True
        log.debug("%s: inbox full, %s not sent", self.name, type(msg).__name__)
        return False

    def receive(self, timeout: float = 0.0) -> Message | None:
        """The child's next message (waiting up to ``timeout``), or None."""
        try:
            msg: Message = (
                self._outbox.get(timeout=timeout) if timeout > 0 else self._outbox.get_nowait()
            )
        except (queue.Empty, OSError, ValueError, EOFError):
            return None
        _log_message(self.name, "->", msg)
        if isinstance(msg, Failed):
            self.failure = msg
        elif isinstance(msg, Ready):
            self.ready = msg
        return msg

    def receive_all(self, handlers: Handlers, wait_s: float = 0.0, limit: int = 100_000) -> int:
        """Dispatch every message waiting (the first may be waited for ``wait_s``); how many."""
        n = 0
        msg = self.receive(wait_s)
        while msg is not None:
            dispatch(handlers, msg, self.name)
            n += 1
            if n >= limit:
                break
            msg = self.receive()
        return n

    def stop(
        self,
        timeout_s: float,
        handlers: Handlers | None = None,
        request: Message | None = _STOP,
    ) -> bool:
        """End the child, bounded; True if it ended by itself within ``timeout_s``.

        Sends ``request`` (None: the caller already sent its own last message) and sets the
        stop flag, then waits for the exit while taking the child's messages into
        ``handlers`` (None: someone else reads them), then terminates, then kills.
        """
        proc = self.proc
        if proc is None or self._stopped:
            return proc is None or proc.exitcode == 0
        self._stopped = True
        self._stop.set()
        if request is not None and proc.is_alive():
            self.send(request, timeout=1.0)
        deadline = time.monotonic() + timeout_s
        while proc.is_alive() and time.monotonic() < deadline:
            if handlers is not None:
                self.receive_all(handlers)
            proc.join(0.02)
        if handlers is not None:
            self.receive_all(handlers)
        ended = not proc.is_alive()
        if not ended:
            log.info("%s: did not stop within %g s; terminating", self.name, timeout_s)
            proc.terminate()  # the child ignores SIGTERM unless its main changed that
            proc.join(TERMINATE_WAIT_S)
        if proc.is_alive():
            log.info("%s: did not terminate; killing", self.name)
            proc.kill()
            proc.join(SIGNAL_WAIT_S)
        log.info("%s: stopped (exit code %s)", self.name, proc.exitcode)
        self._let_go()
        return ended

    def kill(self) -> None:
        """SIGKILL the child now (fault injection; :meth:`stop` is the orderly way)."""
        if self.proc is not None and self.proc.is_alive():
            log.info("%s: killed", self.name)
            self.proc.kill()

    def _let_go(self) -> None:
        """The child is gone: what it never read must not hold this process at its exit."""
        self._inbox.cancel_join_thread()
        self._inbox.close()
