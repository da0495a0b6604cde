"""One owner per session file: the writer holds an OS lock for as long as it records.

A file has many names: a symlink, a hard link in another folder, a bind mount, a
path through ``..``. So the lock is keyed on what the file *is*, twice:

- ``<real path>.lock`` beside the file's resolved path (symlinks and ``..`` resolved),
  taken before the file exists, so two runs never create the same file;
- ``<lock dir>/<st_dev>-<st_ino>.lock`` (the lock dir is ``$ZAPRIG_LOCK_DIR``, or
  ``zaprig-locks`` in the system's temporary folder), taken as soon as the file exists:
  every name of the file, hard links and bind paths included, stats to the same device
  and inode, so every name meets this lock.

Each is ``flock`` on the lock file (released by the kernel when its holder ends, however
it ends) plus a JSON line naming the host, the ``zaprig`` process, the process that
holds the file and what it is doing, so other commands can say who owns the file. A
lock file that nobody holds is left by a crash: it means nothing and is removed by
``zaprig recover``.

Every command that writes a session file takes the lock (:func:`exclusive`): the writer
for the whole run; ``recover``, ``recover --salvage`` (on its source) and a note added
after a run for as long as they write. One that finds the lock held is refused with
the holder's name.

Why not HDF5's own file locking: an SWMR writer gives it up once SWMR mode
starts, and it cannot say which process holds the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.core.clock import utc_now_iso
from rig.core.errors import SessionFileError

__all__ = [
    "CannotLock",
    "LockInfo",
    "SessionLock",
    "exclusive",
    "identity_lock_path",
    "live_owner",
    "lock_path",
    "refuse_if_live",
]


def lock_path(session: str | Path) -> Path:
    """The lock beside the file's real path: every symlink and ``..`` path resolves to it."""
    p = Path(os.path.realpath(session))
    return p.with_name(p.name + ".lock")


def lock_dir() -> Path:
    return Path(os.environ.get("ZAPRIG_LOCK_DIR") or tempfile.gettempdir()) / "zaprig-locks"


def identity_lock_path(session: str | Path) -> Path | None:
    """The lock keyed on the file's device and inode (None if the file does not exist)."""
    try:
        st = os.stat(session)
    except OSError:
        return None
    return lock_dir() / f"{st.st_dev:x}-{st.st_ino:x}.lock"


class CannotLock(SessionFileError):
    """The lock file cannot be made (a read-only disk, a folder we may not write)."""


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a session file, and what for."""

    pid: int
    writer_pid: int
    host: str
    since: str
    doing: str = "recording"

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (writer pid {self.writer_pid}, since {self.since})"


def _read_info(fd: int) -> LockInfo:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        d = json.loads(raw)
        return LockInfo(
            int(d["pid"]), int(d["writer_pid"]), str(d["host"]), str(d["since"]),
            str(d.get("doing", "recording")),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        # the owner is between taking the lock and writing its name
        return LockInfo(0, 0, "?", "?")


def _busy_message(session: Path, info: LockInfo, doing: str | None) -> str:
    if info.doing != "recording":
        return (
            f"{session}: zaprig {info.describe()} holds this file ({info.doing}); "
            "wait for it to finish, then try again"
        )
    if doing is None:  # a new run whose file name another run is creating
        return f"{session}: already being recorded by zaprig {info.describe()}; stop that run first"
    return (
        f"{session}: still being recorded by zaprig {info.describe()}; {doing} needs a "
        "finished file: wait for the run to end, or stop it (Ctrl-C in its terminal, "
        f"or kill -INT {info.pid})"
    )


def _take(path: Path, session: Path, doing: str | None) -> int:
    """``flock`` ``path`` exclusively without waiting; the fd, or a clear refusal."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # shared by every user of the machine
                path.parent.chmod(0o1777)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise CannotLock(f"{path}: cannot create the session lock: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _read_info(fd)
        os.close(fd)
        raise SessionFileError(_busy_message(session, info, doing)) from None
    return fd


class SessionLock:
    """Both locks of one session file, held by one process.

    The writer takes it before it creates the file (:meth:`acquire`) and calls
    :meth:`bind` once the file exists; a command that changes an existing file takes
    both at once through :func:`exclusive`.
    """

    def __init__(self, session: str | Path, owner_pid: int, doing: str = "recording") -> None:
        self.session = Path(session)
        self.path = lock_path(session)
        self.owner_pid = owner_pid
        self.doing = doing
        self._held: list[tuple[Path, int]] = []

    def _record(self, fd: int) -> None:
        record = {
            "pid": self.owner_pid,
            "writer_pid": os.getpid(),
            "host": socket.gethostname(),
            "since": utc_now_iso(),
            "doing": self.doing,
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)

    def _hold(self, path: Path, refusing: str | None) -> None:
        fd = _take(path, self.session, refusing)
        self._held.append((path, fd))
        self._record(fd)

    def acquire(self, refusing: str | None = None) -> None:
        """Take the lock beside the real path (and the identity lock if the file exists)."""
        try:
            self._hold(self.path, refusing)
            self.bind(refusing)
        except SessionFileError:
            self.release()
            raise

    def bind(self, refusing: str | None = None) -> None:
        """Take the identity lock, now that the file exists (nothing if it does not)."""
        ident = identity_lock_path(self.session)
        if ident is not None and all(p != ident for p, _ in self._held):
            self._hold(ident, refusing)

    def release(self) -> None:
        """Remove the lock files while still holding them, so nobody sees a half-released lock."""
        for path, fd in reversed(self._held):
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
        self._held.clear()


@contextlib.contextmanager
def exclusive(session: str | Path, doing: str, only_reads: bool = False) -> Iterator[None]:
    """Hold ``session`` for a command that changes it (``doing``: "recovering", ...).

    Refused with the holder's name if a run records the file, or another command
    changes it, under any of its names. A stale lock (a crash left it) is taken over.
    ``only_reads`` (salvage's source): where no lock can be made (a damaged disk mounted
    read-only), nobody can be writing there either; a live owner is still refused.
    """
    lk = SessionLock(session, os.getpid(), doing=doing)
    try:
        lk.acquire(refusing=doing)
    except CannotLock:
        if not only_reads:
            raise
        refuse_if_live(session, doing)
    try:
        yield
    finally:
        lk.release()


def _holder(lp: Path) -> LockInfo | None:
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


def _candidates(session: str | Path) -> list[Path]:
    out = [lock_path(session)]
    p = Path(session)
    if (beside := p.with_name(p.name + ".lock")) != out[0]:
        out.append(beside)  # a lock taken by an older zaprig beside the name it was given
    if (ident := identity_lock_path(session)) is not None:
        out.append(ident)
    return out


def live_owner(session: str | Path) -> LockInfo | None:
    """The live process holding ``session`` under any of its names, or None (no lock, or a
    stale one left by a crash)."""
    for lp in _candidates(session):
        if (info := _holder(lp)) is not None:
            return info
    return None


def refuse_if_live(session: str | Path, doing: str) -> None:
    """Commands that need a finished file (export, report) call this first."""
    info = live_owner(session)
    if info is not None:
        raise SessionFileError(_busy_message(Path(session), info, doing))
