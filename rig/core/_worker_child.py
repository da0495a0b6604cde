"""The child's side of a worker process: its context and the bootstrap the spawned process runs.

Split from :mod:`rig.core.worker` (the parent's side, which re-exports :class:`WorkerContext`)
along the process boundary: everything here runs in the child: the stop-signal setup, its
logging, the parent watch thread, the worker's main and the failure report. ``_child_main``
is what ``spawn`` pickles by name, so it lives at this module's top level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rig.core._worker_messages import Failed, Message, Ready, _log_message, _put
from rig.core.stopping import ignore_stop_signals

log = logging.getLogger("zaprig.worker")

#: How often the child's watch thread looks for its parent.
PARENT_POLL_S = 0.2
#: The longest a child waits, at its end, for the parent to take its last messages.
CHILD_FLUSH_S = 10.0
#: The same after the child's main failed (its report is the one message that matters).
FAILED_FLUSH_S = 1.0


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
    nice: int = 0


def _lower_priority(name: str, nice: int) -> None:
    """Add ``nice`` to this process's nice value (``Worker(nice=...)``); refused: unchanged."""
    if nice <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(nice)
    except OSError as e:
        log.info("%s: could not lower its priority (%s)", name, e)
        return
    log.info("%s: runs at nice +%d, behind the window and the renderer", name, nice)


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
    _lower_priority(spec.name, spec.nice)
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
