"""One way to run a worker process: the writer, the readout and the renderer all use it.

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

import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import pickle
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from rig.core.errors import ZaprigError
from rig.core.stopping import ignore_stop_signals

__all__ = [
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

#: How often the child's watch thread looks for its parent.
PARENT_POLL_S = 0.2
#: The longest a child waits, at its end, for the parent to take its last messages.
CHILD_FLUSH_S = 10.0
#: The same after the child's main failed (its report is the one message that matters).
FAILED_FLUSH_S = 1.0
#: After ``terminate``, how long :meth:`Worker.stop` waits for the exit before ``kill``.
TERMINATE_WAIT_S = 0.5
#: After ``kill`` (and after a failure report), how long it waits for the exit.
SIGNAL_WAIT_S = 2.0


# -- messages ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """Base of every message between a process and its worker; logged at DEBUG."""


@dataclass(frozen=True)
class Lifecycle(Message):
    """A message about the worker's life rather than its data; logged at INFO."""


@dataclass(frozen=True)
class Ready(Lifecycle):
    """The child can work. A worker may subclass it to say more (the renderer: vsync)."""


@dataclass(frozen=True)
class Stop(Lifecycle):
    """Finish what was sent before this, then return from the worker's main."""


@dataclass(frozen=True, eq=False)
class Failed(Lifecycle):
    """The child's main raised: what (``TypeName: message``), the message alone, where
    (the traceback), and the exception itself when it could cross (None if not picklable)."""

    worker: str
    error: str
    message: str
    traceback: str
    exception: BaseException | None = None

    @classmethod
    def from_exception(cls, worker: str, exc: BaseException) -> Failed:
        text = str(exc)
        last = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            pickle.loads(pickle.dumps(exc))
            crossing: BaseException | None = exc
        except Exception:
            crossing = None
        return cls(worker, last, str(exc), tb, crossing)


_STOP = Stop()
#: A receiver's one dispatch table: each message type to the function that handles it.
Handlers = Mapping[type[Any], Callable[[Any], object]]


class WorkerError(ZaprigError):
    """A worker process failed to start or reported its failure; :attr:`failure` says how."""

    def __init__(self, message: str, failure: Failed | None = None) -> None:
        super().__init__(message)
        self.failure = failure


def _describe(msg: object) -> str:
    """A short account of a message for the log (array shapes, not their contents)."""
    if not dataclasses.is_dataclass(msg):
        return repr(msg)
    parts = []
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        shape = getattr(v, "shape", None)
        if shape is not None:
            text = f"array{tuple(shape)}"
        elif isinstance(v, (bytes, bytearray)):
            text = f"<{len(v)} bytes>"
        elif isinstance(v, dict):
            text = "{" + ", ".join(map(str, v)) + "}"
        else:
            text = repr(v)
            if len(text) > 200:
                text = text[:200] + "..."
        parts.append(f"{f.name}={text}")
    return f"{type(msg).__name__}({', '.join(parts)})"


def _log_message(worker: str, arrow: str, msg: object) -> None:
    level = logging.INFO if isinstance(msg, Lifecycle) else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "%s %s %s", worker, arrow, _describe(msg))


def dispatch(handlers: Handlers, msg: object, worker: str = "") -> bool:
    """Call the table's handler for ``msg``'s type (or its nearest base's); False if none.

    A message no table knows is logged (WARNING) and dropped: the receiver goes on.
    """
    handler = handlers.get(type(msg))
    if handler is None:
        for base in type(msg).__mro__[1:]:
            handler = handlers.get(base)
            if handler is not None:
                break
        else:
            log.warning("%s: no handler for %s; dropped", worker, _describe(msg))
            return False
    handler(msg)
    return True


def _put(q: Any, msg: object, timeout: float | None) -> bool:
    """``None`` waits for room, 0 never waits, else waits that long; False if it found none."""
    try:
        if timeout == 0:
            q.put_nowait(msg)
        else:
            q.put(msg, timeout=timeout)
    except queue.Full:
        return False
    return True


# -- the child's side -------------------------------------------------------------------------
class WorkerContext:
    """What a worker's main gets as its first argument: its queues, the stop flag, its parent.

    Built by the child's bootstrap; a test may build one over ``queue.Queue`` objects to run a
    worker's main on a thread.
    """

    def __init__(
        self,
        name: str,
        inbox: Any,
        outbox: Any,
        stop: Any,
        parent_pid: int,
    ) -> None:
        self.name = name
        self.parent_pid = parent_pid
        self._inbox = inbox
        self._outbox = outbox
        self._stop = stop
        self._on_parent_death: Callable[[], None] | None = None

    def ready(self, msg: Ready | None = None) -> None:
        """Tell the parent the worker can work (:meth:`Worker.start` returns ``msg``)."""
        self.send(msg if msg is not None else Ready())

    def send(self, msg: Message, timeout: float | None = None) -> bool:
        """To the parent. ``timeout``: None waits for room, 0 never waits; False if full."""
        _log_message(self.name, "->", msg)
        if _put(self._outbox, msg, timeout):
            return True
        log.debug("%s: outbox full, %s dropped", self.name, type(msg).__name__)
        return False

    def receive(self, timeout: float | None = None) -> Message | None:
        """The parent's next message, or None if none came within ``timeout``."""
        try:
            msg: Message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        _log_message(self.name, "<-", msg)
        return msg

    @property
    def stop_requested(self) -> bool:
        """The parent asked the worker to stop (:meth:`Worker.stop`), message or not."""
        return bool(self._stop.is_set())

    def parent_alive(self) -> bool:
        return os.getppid() == self.parent_pid

    def on_parent_death(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` (on the watch thread) when the parent is gone, before the child ends."""
        self._on_parent_death = hook

    def _watch_parent(self) -> None:
        while self.parent_alive():
            time.sleep(PARENT_POLL_S)
        log.info("%s: parent process %d is gone; ending", self.name, self.parent_pid)
        code = 0
        try:
            if self._on_parent_death is not None:
                self._on_parent_death()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


@dataclass(frozen=True)
class _Spec:
    """What the child's bootstrap gets (pickled into the spawned process)."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    inbox: Any
    outbox: Any
    stop: Any
    parent_pid: int
    log_level: int | None


def _configure_child_logging(level: int | None) -> None:
    if level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def _bounded_join_feeder(q: Any, timeout_s: float) -> bool:
    """Close ``q`` and wait up to ``timeout_s`` for its feeder to hand over what it holds.

    ``join_thread`` alone waits until the reader takes it, forever if the reader is gone.
    """
    q.close()
    t = threading.Thread(target=q.join_thread, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        q.cancel_join_thread()
        return False
    return True


def _child_main(spec: _Spec) -> None:
    """The bootstrap in the child: signals, logging, the parent watch, the main, the report."""
    ignore_stop_signals()
    _configure_child_logging(spec.log_level)
    ctx = WorkerContext(spec.name, spec.inbox, spec.outbox, spec.stop, spec.parent_pid)
    threading.Thread(
        target=ctx._watch_parent, name=f"{spec.name}-parent-watch", daemon=True
    ).start()
    log.info("%s: started (pid %d)", spec.name, os.getpid())
    code = 0
    try:
        spec.target(ctx, *spec.args)
    except BaseException as exc:  # reported to the parent, which says it its own way
        code = 1
        ctx.send(Failed.from_exception(spec.name, exc), timeout=1.0)
    # after a failure, exit soon: the parent learns of it from the exit too
    if not _bounded_join_feeder(spec.outbox, FAILED_FLUSH_S if code else CHILD_FLUSH_S):
        log.info("%s: the parent did not take the last messages", spec.name)
    log.info("%s: ended (exit code %d)", spec.name, code)
    if code:
        sys.exit(code)


# -- the parent's side ------------------------------------------------------------------------
class Worker:
    """A worker process seen from its parent: start, send, receive, stop, kill.

    ``inbox``/``outbox`` bound the two queues (0: unbounded). ``daemon``: multiprocessing
    kills a daemon child when the parent exits normally; a non-daemon one is waited for.
    """

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        *args: Any,
        inbox: int = 0,
        outbox: int = 0,
        daemon: bool = True,
    ) -> None:
        self.name = name
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
