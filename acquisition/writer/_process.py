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
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from acquisition.writer._direct import DirectVolumes
from acquisition.writer._messages import (
    Attrs,
    Close,
    Closed,
    Dropped,
    InjectDiskFull,
    Live,
    LiveLabels,
    Progress,
    Records,
    Traces,
    Volume,
    WriterProblem,
    WriterReady,
)
from acquisition.writer._ring import FREE, VolumeRing
from rig.core.clock import utc_now_iso
from rig.core.errors import SessionFileError
from rig.core.events import Event, event_columns
from rig.core.layout import LIVE_TABLES, TABLES, columns_to_write, create_session_file
from rig.core.live_layout import append_live_row, set_live_labels
from rig.core.lock import SessionLock
from rig.core.worker import Handlers, Stop, WorkerContext, dispatch

__all__ = ["writer_main"]


class _Writer:
    def __init__(self, ctx: WorkerContext, f: h5py.File, ring: VolumeRing, flush_s: float) -> None:
        self.ctx = ctx
        self.f = f
        self.ring = ring
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
        self.closing = False
        self.raw = f["volumes/raw"]
        #: Whole volumes past the page cache where the file and the disk allow it
        self.direct = DirectVolumes(f.filename, self.raw)
        self.start = f["volumes/start_sample"]
        self.plane = f["volumes/plane_sample"]
        self.marker = f["volumes/marker_sample"]
        self.stream = f["stimuli_and_ephys"]
        #: Per table group: its column datasets and their lengths, looked up once
        self._columns: dict[str, tuple[dict[str, h5py.Dataset], dict[str, int]]] = {}
        #: The one dispatch table of the engine's messages
        self.handlers: Handlers = {
            Records: self._records,
            Volume: self._volume,
            Dropped: self._dropped,
            Traces: self._traces,
            Live: self._live,
            LiveLabels: self._live_labels,
            Attrs: self._attrs,
            InjectDiskFull: self._inject_disk_full,
            Close: self._close,
            Stop: self._stop,
        }
        #: (table, the rows' columns, only_existing) -> the columns to write, checked once
        self._checked: dict[tuple[str, tuple[str, ...], bool], tuple[str, ...]] = {}

    def _records(self, msg: Records) -> None:
        if msg.stream is not None:
            self._stream(msg.stream)
        for path, rows in msg.tables:
            self.append(path, rows)

    def _stream(self, rows: np.ndarray) -> None:
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

    def _volume(self, msg: Volume) -> None:
        self._volume_meta(msg.t, msg.start, msg.planes, msg.marker)
        volume = self.ring.slot(msg.slot)
        if not self.direct.write(msg.t, volume):
            self.raw[msg.t] = volume
        self.ring.states[msg.slot] = FREE
        self.volumes_written += 1
        self.bytes_written += self.ring.slot_bytes
        if msg.missing:
            self.f.attrs["frames_missing"] = int(self.f.attrs.get("frames_missing", 0)) + len(
                msg.missing
            )

    def _dropped(self, msg: Dropped) -> None:
        # the chunk is left unwritten: it reads as zeros and costs no disk
        self._volume_meta(msg.t, msg.start, msg.planes, msg.marker)
        self.append(
            "volumes/dropped",
            {"volume": np.array([msg.t]), "reason": np.array([msg.reason], dtype=object)},
        )

    def _traces(self, msg: Traces) -> None:
        for name, rows in (("traces", msg.traces), ("dff", msg.dff)):
            if rows is None or f"ground_truth/{name}" not in self.f:
                continue
            tr = self.f[f"ground_truth/{name}"]
            n0 = tr.shape[0]
            tr.resize((n0 + len(rows), tr.shape[1]))
            tr[n0:] = rows

    def _live(self, msg: Live) -> None:
        append_live_row(self.f["live"], msg.row)

    def _live_labels(self, msg: LiveLabels) -> None:
        set_live_labels(self.f["live/labels"], msg.ids, msg.positions_zyx)

    def _attrs(self, msg: Attrs) -> None:
        for k, v in msg.values.items():
            self.f.attrs[k] = v

    def _inject_disk_full(self, msg: InjectDiskFull) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (injected fault)")

    def _close(self, msg: Close) -> None:
        for k, v in msg.attrs.items():
            self.f.attrs[k] = v
        self.closing = True

    def _stop(self, msg: Stop) -> None:
        self.closing = True

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
        self.ctx.send(
            Progress(self.volumes_written, self.bytes_written, self.stream_rows, time.time())
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


def writer_main(
    ctx: WorkerContext,
    path: str,
    create_kwargs: dict[str, Any],
    ring_spec: dict[str, Any],
    states: Any,
    flush_s: float,
) -> None:
    """The writer process's main (run by :class:`rig.core.worker.Worker`).

    A file that cannot be made raises :class:`SessionFileError`: the engine's start fails
    with its message. Other errors are reported as :class:`WriterProblem` and end the
    writer with the file readable up to its last flush.
    """
    ring = VolumeRing(ring_spec["shape"], ring_spec["n_slots"], ring_spec["name"], states)
    # One owner per file: the lock is taken before the file exists and held until it is closed.
    owner = SessionLock(path, ctx.parent_pid)
    try:
        owner.acquire()
        try:
            f = create_session_file(Path(path), **create_kwargs)
        except FileExistsError:
            owner.release()
            raise SessionFileError(
                f"{path}: exists already; a session file is never overwritten"
            ) from None
        except OSError as e:
            owner.release()
            raise SessionFileError(f"{path}: cannot create the session file: {e}") from None
        try:
            owner.bind()  # the file exists now: every other name of it meets the lock too
        except SessionFileError:
            f.close()
            owner.release()
            raise
    except BaseException:
        ring.close()
        raise
    w = _Writer(ctx, f, ring, flush_s)
    finishing = threading.Lock()

    def orphaned() -> None:
        """The engine died (perhaps half-way through a message): close the file ourselves.

        On the parent watch's thread; h5py serialises calls, so closing from here is safe.
        """
        with finishing:
            try:
                _finish_orphaned(w, "engine process died; file closed by the writer")
                w.f.close()
            finally:
                w.direct.close()
                ring.close()
                owner.release()

    ctx.on_parent_death(orphaned)
    ctx.ready(WriterReady(path, w.direct.mode))
    handlers = w.handlers
    try:
        while not w.closing:
            msg = ctx.receive(0.2)
            if msg is not None:
                dispatch(handlers, msg, ctx.name)
            w.maybe_flush()
    except OSError as e:
        full = e.errno == errno.ENOSPC or "No space" in str(e)
        reason = "disk full" if full else f"write failed: {e}"
        ctx.send(WriterProblem(f"{path}: {reason}; the file holds everything up to the last flush"))
        try:
            f.attrs["status"] = "failed"
            f.attrs["ended_at"] = utc_now_iso()
            f.flush()
        except Exception:  # the disk may refuse even this; the SWMR file stays readable
            pass
    finally:
        # an error other than the disk's goes on to the worker's report (with its traceback)
        try:
            f.close()
        except Exception as e:  # reported, never raised: the process is ending
            ctx.send(WriterProblem(f"{path}: close failed: {e}"))
        w.direct.close()
        ring.close()
        owner.release()
    if w.closing:
        ctx.send(Closed(w.volumes_written, w.bytes_written))
