"""One owner per session file: the writer holds an OS lock for as long as it records.

The lock is ``<session>.h5.lock`` beside the file: ``flock`` on it (released by
the kernel when the writer process ends, however it ends) plus a JSON line naming
the host, the ``zaprig run`` process and the writer process, so other commands can
say who owns the file. A lock file that nobody holds is left by a crash: it
means nothing and is removed by ``zaprig recover``.

Why not HDF5's own file locking: an SWMR writer gives it up once SWMR mode
starts, and it cannot say which process holds the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from rig.clock import utc_now_iso
from rig.errors import SessionFileError

__all__ = ["LockInfo", "SessionLock", "live_owner", "lock_path", "refuse_if_live"]


def lock_path(session: str | Path) -> Path:
    p = Path(session)
    return p.with_name(p.name + ".lock")


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who records a session file."""

    pid: int
    writer_pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (writer pid {self.writer_pid}, since {self.since})"


def _read_info(fd: int) -> LockInfo:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        d = json.loads(raw)
        return LockInfo(int(d["pid"]), int(d["writer_pid"]), str(d["host"]), str(d["since"]))
    except (ValueError, KeyError, TypeError):
        # the owner is between taking the lock and writing its name
        return LockInfo(0, 0, "?", "?")


class SessionLock:
    """Taken by the writer process before it creates the file; released when it closes it."""

    def __init__(self, session: str | Path, owner_pid: int) -> None:
        self.session = Path(session)
        self.path = lock_path(session)
        self.owner_pid = owner_pid
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise SessionFileError(f"{self.path}: cannot create the session lock: {e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(fd)
            os.close(fd)
            raise SessionFileError(
                f"{self.session}: already being recorded by zaprig {info.describe()}; "
                "pick another file name or stop that run first"
            ) from None
        record = {
            "pid": self.owner_pid,
            "writer_pid": os.getpid(),
            "host": socket.gethostname(),
            "since": utc_now_iso(),
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file while still holding it, so nobody sees a half-released lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def live_owner(session: str | Path) -> LockInfo | None:
    """The live process recording ``session``, or None (no lock, or a stale one left by a crash)."""
    lp = lock_path(session)
    try:
        fd = os.open(lp, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def remove_stale_lock(session: str | Path) -> None:
    """Delete a lock file nobody holds (a crash left it); a live one is never touched."""
    if live_owner(session) is None:
        with contextlib.suppress(OSError):
            lock_path(session).unlink()


def refuse_if_live(session: str | Path, doing: str) -> None:
    """Commands that need a finished file (recover, export, report) call this first."""
    info = live_owner(session)
    if info is not None:
        raise SessionFileError(
            f"{session}: still being recorded by zaprig {info.describe()}; {doing} needs a "
            "finished file: wait for the run to end, or stop it (Ctrl-C in its terminal, "
            f"or kill -INT {info.pid})"
        )
