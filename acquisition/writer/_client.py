"""The engine's side of the writer: batches small records, lends volume buffers, never blocks.

Stream rows and table rows are gathered and sent in batches (about every 0.1 s
of samples), each batch one message, so inter-process overhead stays small even
in virtual time.
Volumes travel through the shared-memory :class:`VolumeRing`; only a slot
number crosses the queue. If the queue is full the writer is far behind: the
batch is kept and a warning raised, never a wait in the closed loop.

Two lanes use one client: the record lane sends records, the image lane lends and
commits volumes. One lock keeps the batches and the queue's order whole; it is
held for bookkeeping only, never while a volume is copied or a slot waited for.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.tables import concat_records
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
    TableRows,
    Traces,
    Volume,
    WriterProblem,
    WriterReady,
)
from acquisition.writer._process import writer_main
from acquisition.writer._ring import QUEUED, VolumeRing
from acquisition.writer._spec import WriterSpec
from rig.core.errors import SessionFileError
from rig.core.events import Event, event_columns
from rig.core.worker import Failed, Handlers, Message, Worker, WorkerError

__all__ = ["WriterClient", "concat_records"]


class WriterClient:
    """Implements the microscope's ``VolumeSink`` and the engine's record sink."""

    def __init__(
        self,
        path: Path,
        spec: WriterSpec | Mapping[str, Any],
        n_slots: int,
        flush_interval_s: float = 1.0,
        batch_samples: int = 600,
        wait_for_buffers: bool = False,
    ) -> None:
        self.path = Path(path)
        self.spec = spec if isinstance(spec, WriterSpec) else WriterSpec.from_mapping(spec)
        shape = self.spec.shape_zyx
        self.ring = VolumeRing(shape, n_slots)
        self._flush_s = flush_interval_s
        self._batch_samples = batch_samples
        # In virtual time nothing is real-time, so wait for the disk instead of dropping.
        self._wait = wait_for_buffers
        self._stream: list[np.ndarray] = []
        self._stream_n = 0
        self._tables: dict[str, list[Any]] = defaultdict(list)
        self._slots: dict[int, int] = {}
        self._volume_meta: dict[int, tuple[int, np.ndarray, int]] = {}
        self._backlog: list[Message] = []
        self._lock = threading.RLock()
        self._worker: Worker | None = None
        #: The writer's messages, one handler each
        self._handlers: Handlers = {
            Progress: self._on_progress,
            Closed: self._on_closed,
            WriterProblem: self._on_problem,
            Failed: self._on_failed,
        }
        self._new_errors: list[str] = []
        self.errors: list[str] = []
        self.volumes_written = 0
        self.bytes_written = 0
        self.volumes_dropped = 0
        #: Camera planes committed as missing (left as zeros): the file's ``frames_missing``.
        self.planes_missing = 0
        self.closed = False
        self.closed_ok = False  # the writer itself reported a clean close
        #: Called with (t, volume) just before a volume goes to the writer (live views).
        self.on_commit: Callable[[int, np.ndarray], None] | None = None
        #: Called with (t, slot) once a volume is queued for the writer (the readout lane).
        self.on_queued: Callable[[int, int], None] | None = None
        #: How the writer puts volumes on the disk, once started ("direct ..." or "buffered ...")
        self.volume_writes = ""
        #: Virtual time: may a free slot be refilled yet? (the readout may still be reading it)
        self.slot_ready: Callable[[int], bool] | None = None

    # -- life cycle -------------------------------------------------------------------------
    @property
    def proc(self) -> Any:
        """The writer's process (None before :meth:`start`)."""
        return self._worker.proc if self._worker is not None else None

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the process and wait until the file exists (fails before any device starts)."""
        self._worker = Worker(
            "writer",
            writer_main,
            str(self.path),
            self.spec.create_kwargs(),
            self.ring.spec(),
            self.ring.states,
            self._flush_s,
            inbox=4096,
            daemon=False,
        )
        try:
            ready = self._worker.start(timeout_s)
        except WorkerError as e:
            failure = e.failure
            self._worker.stop(5.0 if failure is not None else 0.0, request=None)
            self.ring.close()
            if failure is not None and isinstance(failure.exception, SessionFileError):
                raise SessionFileError(failure.message) from None
            why = f" ({failure.error})" if failure is not None else ""
            raise SessionFileError(f"{self.path}: the writer process did not start{why}") from None
        if isinstance(ready, WriterReady):
            self.volume_writes = ready.volume_writes

    def close(self, final_attrs: dict[str, Any], timeout_s: float = 120.0) -> None:
        """Send everything still pending, set the final attributes, wait for the file to close."""
        if self.closed:
            return
        worker = self._worker
        assert worker is not None, "start() first"
        if worker.alive():
            with self._lock:
                self._flush()
                self._send(Close(final_attrs), force=True)
        # the writer's own end: it closes the file after the Close message, in order
        if not worker.stop(timeout_s, self._handlers, request=None):
            self.errors.append(
                "writer did not finish in time; killed (file readable up to last flush)"
            )
        # the last status messages may still be in the pipe after the process ended
        self.poll(wait_s=0.5 if worker.exitcode == 0 else 0.0)
        self._backlog.clear()
        self.ring.close()
        self.closed = True

    def kill(self) -> None:
        """For fault injection: the writer process dies."""
        if self._worker is not None:
            self._worker.kill()

    def inject_disk_full(self) -> None:
        """For fault injection: the writer's next write fails with ENOSPC."""
        with self._lock:
            self._flush()
            self._send(InjectDiskFull(), force=True)

    def alive(self) -> bool:
        return self._worker is not None and self._worker.alive()

    # -- records -----------------------------------------------------------------------------
    def stream(self, rows: np.ndarray) -> None:
        """Rows (n, 10 + k): the 10-row stream, then the rig's k extra analog inputs."""
        with self._lock:
            self._stream.append(rows)
            self._stream_n += len(rows)
            if self._stream_n >= self._batch_samples:
                self.flush()

    def table(self, path: str, rows: np.ndarray | dict[str, np.ndarray]) -> None:
        with self._lock:
            self._tables[path].append(rows)

    def event(self, event: Event) -> None:
        with self._lock:
            self._tables["events"].append(event_columns([event]))

    def traces(self, traces: np.ndarray, dff: np.ndarray | None = None) -> None:
        """Ground-truth traces (t, neurons) of a simulated brain, and their true ΔF/F."""
        with self._lock:
            self.flush()
            d = None if dff is None else np.asarray(dff, dtype=np.float32)
            self._send(Traces(np.asarray(traces, dtype=np.float32), d))

    def live(self, row: dict[str, Any]) -> None:
        """One volume's live readout: a row of each ``/live/...`` dataset (rig/readout)."""
        with self._lock:
            self._send(Live(row))

    def live_labels(self, ids: np.ndarray, positions_zyx: np.ndarray) -> None:
        """The readout's labels, once known (cells detected on the reference volume)."""
        with self._lock:
            self._send(LiveLabels(ids, positions_zyx))

    def attrs(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._send(Attrs(values), force=True)

    def flush(self) -> None:
        """Send batched stream and table rows (call once per chunk or so)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        """The stream rows and every table's rows gathered so far, as one message."""
        stream = None
        if self._stream:
            stream = np.concatenate(self._stream) if len(self._stream) > 1 else self._stream[0]
            self._stream.clear()
            self._stream_n = 0
        tables: list[tuple[str, TableRows]] = []
        for path, parts in self._tables.items():
            if not parts:
                continue
            if isinstance(parts[0], np.ndarray):
                merged: Any = concat_records(parts)
            else:
                merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            parts.clear()
            tables.append((path, merged))
        if stream is not None or tables:
            self._send(Records(stream, tuple(tables)))

    def _send(self, msg: Message, force: bool = False) -> None:
        """Queue a message without waiting; ``force`` (closing, attributes) may wait, in order."""
        worker = self._worker
        assert worker is not None, "start() first"
        if force and not worker.alive():
            return  # nobody will read it: waiting for room would only delay the stop
        wait = 10.0 if force else 0.0
        while self._backlog:
            if not worker.send(self._backlog[0], timeout=wait):
                break
            self._backlog.pop(0)
        if self._backlog:
            self._backlog.append(msg)
            return
        if not worker.send(msg, timeout=wait):
            self._backlog.append(msg)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    # -- VolumeSink ---------------------------------------------------------------------------
    def set_volume_meta(self, t: int, start: int, planes: np.ndarray, marker: int) -> None:
        """Where volume ``t``'s plane triggers and its volume-start marker are on the DAQ clock."""
        with self._lock:
            self._volume_meta[t] = (start, planes, marker)

    def acquire(self, t: int) -> np.ndarray | None:
        ready = self.slot_ready if self._wait else None
        slot = self.ring.take_free(ready)
        if slot is None and self._wait:
            self.flush()
            while slot is None and self._worker is not None and self._worker.alive():
                self._worker.join(0.002)
                slot = self.ring.take_free(ready)
        with self._lock:
            if slot is None:
                self.volumes_dropped += 1
                start, planes, marker = self._volume_meta.pop(t)
                self._flush()
                self._send(Dropped(t, start, planes, marker, "writer buffer full"))
                return None
            self._slots[t] = slot
        return self.ring.slot(slot)

    def commit(self, t: int, missing_planes: tuple[int, ...] = ()) -> None:
        with self._lock:
            slot = self._slots.pop(t)
            start, planes, marker = self._volume_meta.pop(t)
            self.planes_missing += len(missing_planes)
        if self.on_commit is not None:
            self.on_commit(t, self.ring.slot(slot))
        with self._lock:
            self.ring.states[slot] = QUEUED
            # records before the volume, so the file's tables stay in time order
            self._flush()
            self._send(Volume(slot, t, start, planes, marker, missing_planes))
        if self.on_queued is not None:
            self.on_queued(t, slot)

    def discard(self, t: int) -> None:
        with self._lock:
            slot = self._slots.pop(t, None)
            if slot is not None:
                self.ring.states[slot] = 0

    def buffer_fill(self) -> float:
        return self.ring.in_use() / self.ring.n_slots

    # -- status -------------------------------------------------------------------------------
    def poll(self, wait_s: float = 0.0) -> list[str]:
        """Take the writer's status messages; return new error messages.

        ``wait_s`` > 0 waits that long for the writer's final "closed" report.
        """
        if self._worker is not None:
            self._worker.receive_all(self._handlers, 0.0 if self.closed_ok else wait_s)
        new, self._new_errors = self._new_errors, []
        self.errors.extend(new)
        return new

    def _on_progress(self, msg: Progress) -> None:
        self.volumes_written, self.bytes_written = msg.volumes_written, msg.bytes_written

    def _on_closed(self, msg: Closed) -> None:
        self.volumes_written, self.bytes_written = msg.volumes_written, msg.bytes_written
        self.closed_ok = True

    def _on_problem(self, msg: WriterProblem) -> None:
        self._new_errors.append(msg.message)

    def _on_failed(self, msg: Failed) -> None:
        self._new_errors.append(f"writer crashed:\n{msg.traceback}")
