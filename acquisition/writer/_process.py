"""The writer process: everything that reaches the disk goes through here.

h5py holds the GIL while it writes, so it lives in its own process and the
engine's closed loop never waits for the disk. It receives messages in order
on one queue (stream rows, table rows, events, attributes, volume-slot handles),
writes them, flushes at least every ``flush_interval_s`` (so a crash loses at
most that much), and reports progress and errors on a second queue.

If the engine process disappears, the writer finishes the file itself with
status ``failed`` and says why in ``/events``.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from acquisition.writer._ring import FREE, VolumeRing
from rig.core.clock import utc_now_iso
from rig.core.errors import SessionFileError
from rig.core.events import Event, event_columns
from rig.core.layout import LIVE_TABLES, TABLES, columns_to_write, create_session_file
from rig.core.live_layout import append_live_row, set_live_labels
from rig.core.lock import SessionLock
from rig.core.stopping import ignore_stop_signals

__all__ = ["writer_main"]


class _Writer:
    def __init__(self, f: h5py.File, ring: VolumeRing, status: mp.Queue, flush_s: float) -> None:
        self.f = f
        self.ring = ring
        self.status = status
        self.flush_s = flush_s
        # also flush every flush_s of *recorded* time, so crash safety holds in virtual time
        self.flush_rows = max(
            1, int(flush_s * float(f["stimuli_and_ephys"].attrs["sample_rate_hz"]))
        )
        self.rows_at_flush = 0
        self.last_flush = time.monotonic()
        self.volumes_written = 0
        self.bytes_written = 0
        self.stream_rows = 0
        self.raw = f["volumes/raw"]
        self.start = f["volumes/start_sample"]
        self.plane = f["volumes/plane_sample"]
        self.marker = f["volumes/marker_sample"]
        self.stream = f["stimuli_and_ephys"]
        #: Per table group: its column datasets and their lengths, looked up once
        self._columns: dict[str, tuple[dict[str, h5py.Dataset], dict[str, int]]] = {}
        #: (table, the rows' columns, only_existing) -> the columns to write, checked once
        self._checked: dict[tuple[str, tuple[str, ...], bool], tuple[str, ...]] = {}

    def handle(self, msg: tuple[Any, ...]) -> bool:
        kind = msg[0]
        if kind == "stream":
            rows = msg[1]
            n0 = self.stream.shape[0]
            self.stream.resize((n0 + len(rows), 10))
            self.stream[n0:] = rows[:, :10]
            if rows.shape[1] > 10:
                # the photodiode and other extra inputs, on the same sample index
                a = self.f["analog_inputs"]
                a.resize((n0 + len(rows), a.shape[1]))
                a[n0:] = rows[:, 10:]
            self.stream_rows += len(rows)
            self.bytes_written += rows.nbytes
        elif kind == "table":
            self.append(msg[1], msg[2])
        elif kind == "volume":
            _, slot, t, start, planes, marker, missing = msg
            self._volume_meta(t, start, planes, marker)
            self.raw[t] = self.ring.slot(slot)
            self.ring.states[slot] = FREE
            self.volumes_written += 1
            self.bytes_written += self.ring.slot_bytes
            if missing:
                self.f.attrs["frames_missing"] = int(self.f.attrs.get("frames_missing", 0)) + len(
                    missing
                )
        elif kind == "dropped":
            _, t, start, planes, marker, reason = msg
            # the chunk is left unwritten: it reads as zeros and costs no disk
            self._volume_meta(t, start, planes, marker)
            self.append(
                "volumes/dropped",
                {"volume": np.array([t]), "reason": np.array([reason], dtype=object)},
            )
        elif kind == "traces":
            for name, rows in (("traces", msg[1]), ("dff", msg[2] if len(msg) > 2 else None)):
                if rows is None or f"ground_truth/{name}" not in self.f:
                    continue
                tr = self.f[f"ground_truth/{name}"]
                n0 = tr.shape[0]
                tr.resize((n0 + len(rows), tr.shape[1]))
                tr[n0:] = rows
        elif kind == "live":
            append_live_row(self.f["live"], msg[1])
        elif kind == "live_labels":
            set_live_labels(self.f["live/labels"], msg[1], msg[2])
        elif kind == "attrs":
            for k, v in msg[1].items():
                self.f.attrs[k] = v
        elif kind == "inject" and msg[1] == "disk_full":
            raise OSError(errno.ENOSPC, "No space left on device (injected fault)")
        elif kind == "flush":
            self.flush()
        elif kind == "close":
            for k, v in msg[1].items():
                self.f.attrs[k] = v
            return False
        return True

    def append(
        self, path: str, rows: dict[str, np.ndarray] | np.ndarray, only_existing: bool = False
    ) -> None:
        """``append_columns`` on the table at ``path``, its datasets and lengths kept.

        h5py's group lookup and ``shape`` cost more than the write itself for the few
        rows a message holds (the frames table has ~25 columns): they were most of the
        writer's time. Only this process appends to the session's tables while it runs.
        The columns are checked as the appender checks them (``columns_to_write``, against
        the layout's ``TABLES`` and ``LIVE_TABLES``), once per kind of message.
        """
        cached = self._columns.get(path)
        if cached is None:
            if path not in TABLES and path not in LIVE_TABLES:
                raise ValueError(f"{path}: not a table of the session layout")
            g = self.f[path]
            sets = {k: v for k, v in g.items() if isinstance(v, h5py.Dataset)}
            cached = self._columns[path] = (sets, {k: v.shape[0] for k, v in sets.items()})
        sets, lengths = cached
        given = rows.dtype.names if isinstance(rows, np.ndarray) else tuple(rows.keys())
        assert given
        n = len(rows[given[0]])
        key = (path, tuple(given), only_existing)
        names = self._checked.get(key)
        if names is None:
            names = self._checked[key] = columns_to_write(path, sets, given, only_existing)
        if n == 0:
            return
        for name in names:
            d = sets[name]
            old = lengths[name]
            d.resize((old + n,))
            d[old:] = rows[name]
            lengths[name] = old + n

    def _volume_meta(self, t: int, start: int, planes: np.ndarray, marker: int) -> None:
        n = t + 1
        if self.raw.shape[0] < n:
            self.raw.resize((n, *self.raw.shape[1:]))
            self.start.resize((n,))
            self.plane.resize((n, self.plane.shape[1]))
            self.marker.resize((n,))
        self.start[t] = start
        self.plane[t] = planes
        self.marker[t] = marker

    def flush(self) -> None:
        self.f.flush()
        self.last_flush = time.monotonic()
        self.rows_at_flush = self.stream_rows
        self.status.put(
            ("progress", self.volumes_written, self.bytes_written, self.stream_rows, time.time())
        )

    def maybe_flush(self) -> None:
        if (
            time.monotonic() - self.last_flush >= self.flush_s
            or self.stream_rows - self.rows_at_flush >= self.flush_rows
        ):
            self.flush()


def _finish_orphaned(w: _Writer, why: str) -> None:
    """The engine is gone: close the file honestly so nothing recorded is lost."""
    event = Event(int(w.stream_rows), time.time(), "fault", why, source="writer")
    w.append("events", event_columns([event]), only_existing=True)
    w.f.attrs["status"] = "failed"
    w.f.attrs["ended_at"] = utc_now_iso()


def _orphan_watch(
    w: _Writer, ring: VolumeRing, parent_pid: int, lock: threading.Lock, owner: SessionLock
) -> None:
    """Finish the file if the engine dies.

    Runs on its own thread because the engine may die half-way through sending a
    message, leaving the main thread blocked forever in the queue's read.
    h5py serialises calls, so closing the file from here is safe.
    """
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    with lock:
        try:
            _finish_orphaned(w, "engine process died; file closed by the writer")
            w.f.close()
        finally:
            ring.close()
            owner.release()
            os._exit(0)


def writer_main(
    path: str,
    create_kwargs: dict[str, Any],
    ring_spec: dict[str, Any],
    states: Any,
    inbox: mp.Queue,
    status: mp.Queue,
    flush_s: float,
    parent_pid: int,
) -> None:
    """Entry point of the writer process."""
    # Ctrl-C and SIGTERM reach the whole process group: the engine stops us, in order.
    ignore_stop_signals()
    ring = VolumeRing(ring_spec["shape"], ring_spec["n_slots"], ring_spec["name"], states)
    # One owner per file: the lock is taken before the file exists and held until it is closed.
    owner = SessionLock(path, parent_pid)
    try:
        owner.acquire()
    except SessionFileError as e:
        status.put(("error", str(e)))
        return
    try:
        f = create_session_file(Path(path), **create_kwargs)
    except FileExistsError:
        owner.release()
        status.put(("error", f"{path}: exists already; a session file is never overwritten"))
        return
    except OSError as e:
        owner.release()
        status.put(("error", f"{path}: cannot create the session file: {e}"))
        return
    try:
        owner.bind()  # the file exists now: every other name of it meets the lock too
    except SessionFileError as e:
        f.close()
        owner.release()
        status.put(("error", str(e)))
        return
    w = _Writer(f, ring, status, flush_s)
    status.put(("ready", path))
    closing_normally = False
    finishing = threading.Lock()
    threading.Thread(
        target=_orphan_watch, args=(w, ring, parent_pid, finishing, owner), daemon=True
    ).start()
    try:
        while True:
            try:
                msg = inbox.get(timeout=0.2)
            except queue.Empty:
                w.maybe_flush()
                continue
            if not w.handle(msg):
                closing_normally = True
                break
            w.maybe_flush()
    except OSError as e:
        full = e.errno == errno.ENOSPC or "No space" in str(e)
        reason = "disk full" if full else f"write failed: {e}"
        status.put(("error", f"{path}: {reason}; the file holds everything up to the last flush"))
        try:
            f.attrs["status"] = "failed"
            f.attrs["ended_at"] = utc_now_iso()
            f.flush()
        except Exception:  # the disk may refuse even this; the SWMR file stays readable
            pass
    except Exception:
        status.put(("error", f"writer crashed:\n{traceback.format_exc()}"))
    finally:
        try:
            f.close()
        except Exception as e:  # reported, never raised: the process is ending
            status.put(("error", f"{path}: close failed: {e}"))
        ring.close()
        owner.release()
    if closing_normally:
        status.put(("closed", w.volumes_written, w.bytes_written))
