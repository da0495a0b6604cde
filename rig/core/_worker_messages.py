"""The messages between a process and its worker, and how each is logged and dispatched.

Split from :mod:`rig.core.worker` (which re-exports every public name here) because both sides
of the process boundary need them: the parent's :class:`~rig.core.worker.Worker` and the
child's :class:`~rig.core._worker_child.WorkerContext` send, receive, log and dispatch the same
frozen dataclasses. This module depends on neither side.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import queue
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rig.core.errors import ZaprigError

log = logging.getLogger("zaprig.worker")


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
