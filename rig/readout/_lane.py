"""The readout lane, engine side: starts the readout process, tells it which slot holds which
volume, and hands its rows on (to the file, the live views and brain-triggered steps).

Nothing here waits on the loop lane's behalf. :meth:`ReadoutLane.submit` is
called by the image lane after a volume is committed and never blocks in real
time (a full inbox skips the volume, counted). Results are collected on a
thread of this lane. In virtual time nothing is real-time, so the image lane
refills only slots the readout has read (:meth:`slot_released`, given to the
writer client as ``slot_ready``)
and every volume gets its row, the same in every run.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from acquisition.writer import VolumeRing
from rig.core.events import Kind
from rig.core.worker import BACKGROUND_NICE, Failed, Handlers, Ready, Worker, WorkerError, dispatch
from rig.readout._compute import LabelIndex, LiveRow
from rig.readout._messages import Labels, Read, Row, Skipped
from rig.readout._process import readout_main
from rig.readout._state import ReadoutSettings

__all__ = ["ReadoutLane"]


class ReadoutLane:
    def __init__(
        self,
        settings: ReadoutSettings,
        ring: VolumeRing,
        labels: LabelIndex | None,
        virtual: bool,
        on_row: Callable[[LiveRow], None],
        on_labels: Callable[[np.ndarray, np.ndarray], None],
        on_problem: Callable[[Kind, str], None],
    ) -> None:
        self.settings = settings
        self.ring = ring
        self.labels = labels
        self.virtual = virtual
        self._on_row = on_row
        self._on_labels = on_labels
        self._on_problem = on_problem
        self._worker: Worker | None = None
        #: The newest request the readout is done with (it no longer reads that slot).
        self._done: Any = mp.get_context("spawn").RawValue("q", -1)
        self._seq = 0
        self._slot_seq = [-1] * ring.n_slots
        self._collector = threading.Thread(
            target=self._collect, name="zaprig-readout-lane", daemon=True
        )
        self._stopping = threading.Event()
        #: The readout's messages, one handler each
        self._handlers: Handlers = {
            Row: self._on_row_msg,
            Labels: lambda m: self._on_labels(m.ids, m.positions_zyx),
            Skipped: self._on_skipped,
            Failed: self._on_failed,
            Ready: lambda m: None,  # a late handshake (after start gave up waiting)
        }
        self.rows = 0
        self.skipped = 0
        #: The first volume read out (those before it, past the reference, went by while the
        #: reference was built and, in detect mode, its cells were found).
        self.first_row: int | None = None
        self.error: str | None = None
        #: CPU seconds of the readout per volume (rows only), for the cost figures.
        self.seconds: list[float] = []

    @property
    def proc(self) -> Any:
        """The readout's process (None before :meth:`start`)."""
        return self._worker.proc if self._worker is not None else None

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start the process and wait until it can read volumes (a spawned process imports
        numpy and scipy first: seconds, during which every volume would be skipped).

        False if it was not ready in time (the run goes on; its volumes are skipped).
        """
        self._worker = worker = Worker(
            "readout",
            readout_main,
            self.ring.spec(),
            self.ring.states,
            self.ring.generations,
            self.settings,
            self.labels,
            self._done,
            inbox=max(4, 2 * self.ring.n_slots),
            outbox=64,
            nice=BACKGROUND_NICE,  # a late row is skipped; a late window is a frozen app
        )
        try:
            worker.start(timeout_s)
            ok = True
        except WorkerError as e:
            if e.failure is not None:
                self._on_failed(e.failure)
            ok = False
        self._collector.start()
        return ok

    def alive(self) -> bool:
        return self._worker is not None and self._worker.alive()

    # -- the image lane's side ---------------------------------------------------------------
    def submit(self, t: int, slot: int) -> None:
        """Volume ``t`` was committed in ``slot`` (called right after the commit)."""
        worker = self._worker
        assert worker is not None, "start() first"
        msg = Read(self._seq, slot, t, int(self.ring.generations[slot]))
        if not worker.send(msg, timeout=30.0 if self.virtual and worker.alive() else 0):
            self.skipped += 1
            return
        self._slot_seq[slot] = self._seq
        self._seq += 1

    def slot_released(self, slot: int) -> bool:
        """True when the readout is done with what ``slot`` held (or cannot read it anymore)."""
        return self._done.value >= self._slot_seq[slot] or not self.alive()

    # -- results ----------------------------------------------------------------------------
    def _collect(self) -> None:
        worker = self._worker
        assert worker is not None
        while True:
            msg = worker.receive(0.1)
            if msg is None:
                if self._stopping.is_set() and not worker.alive():
                    return
                continue
            try:
                dispatch(self._handlers, msg, worker.name)
            except Exception as e:  # a broken consumer must not end the collection
                self._on_problem("warning", f"readout results: {type(e).__name__}: {e}")

    def _on_row_msg(self, msg: Row) -> None:
        row = msg.row
        self.rows += 1
        if self.first_row is None:
            self.first_row = row.volume
        self.seconds.append(row.seconds)
        self._on_row(row)

    def _on_skipped(self, msg: Skipped) -> None:
        self.skipped += 1

    def _on_failed(self, msg: Failed) -> None:
        self.error = msg.traceback
        self._on_problem("warning", f"the readout stopped: {msg.error}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Let the readout finish what it was given (bounded), then end it; True if it ended."""
        self._stopping.set()
        if self._worker is None:
            return True
        # the collector takes the results meanwhile
        ended = self._worker.stop(timeout_s)
        self._collector.join(5.0)
        return ended
