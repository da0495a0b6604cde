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

import contextlib
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from acquisition.writer import VolumeRing
from rig.core.events import Kind
from rig.readout._compute import LabelIndex, LiveRow
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
        self._ctx = mp.get_context("spawn")
        self.settings = settings
        self.ring = ring
        self.labels = labels
        self.virtual = virtual
        self._on_row = on_row
        self._on_labels = on_labels
        self._on_problem = on_problem
        self._inbox: Any = self._ctx.Queue(maxsize=max(4, 2 * ring.n_slots))
        self._outbox: Any = self._ctx.Queue(maxsize=64)
        self._done: Any = self._ctx.RawValue("q", -1)
        self._ready: Any = self._ctx.Event()
        self._seq = 0
        self._slot_seq = [-1] * ring.n_slots
        self._collector = threading.Thread(
            target=self._collect, name="zaprig-readout-lane", daemon=True
        )
        self._stopping = threading.Event()
        self.proc: Any = None
        self.rows = 0
        self.skipped = 0
        #: The first volume read out (those before it, past the reference, went by while the
        #: reference was built and, in detect mode, its cells were found).
        self.first_row: int | None = None
        self.error: str | None = None
        #: CPU seconds of the readout per volume (rows only), for the cost figures.
        self.seconds: list[float] = []

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start the process and wait until it can read volumes (a spawned process imports
        numpy and scipy first: seconds, during which every volume would be skipped).

        False if it was not ready in time (the run goes on; its volumes are skipped).
        """
        self.proc = self._ctx.Process(
            target=readout_main,
            name="zaprig-readout",
            args=(
                self.ring.spec(),
                self.ring.states,
                self.ring.generations,
                self.settings,
                self.labels,
                self._inbox,
                self._outbox,
                self._done,
                os.getpid(),
                self._ready,
            ),
            daemon=True,
        )
        self.proc.start()
        self._collector.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                return False
        return True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    # -- the image lane's side ---------------------------------------------------------------
    def submit(self, t: int, slot: int) -> None:
        """Volume ``t`` was committed in ``slot`` (called right after the commit)."""
        gen = int(self.ring.generations[slot])
        msg = (self._seq, slot, t, gen)
        try:
            if self.virtual and self.alive():
                self._inbox.put(msg, timeout=30.0)
            else:
                self._inbox.put_nowait(msg)
        except queue.Full:
            self.skipped += 1
            return
        self._slot_seq[slot] = self._seq
        self._seq += 1

    def slot_released(self, slot: int) -> bool:
        """True when the readout is done with what ``slot`` held (or cannot read it anymore)."""
        return self._done.value >= self._slot_seq[slot] or not self.alive()

    # -- results ----------------------------------------------------------------------------
    def _collect(self) -> None:
        while True:
            try:
                msg = self._outbox.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set() and not self.alive():
                    return
                continue
            except (OSError, ValueError, EOFError):
                return
            try:
                self._handle(msg)
            except Exception as e:  # a broken consumer must not end the collection
                self._on_problem("warning", f"readout results: {type(e).__name__}: {e}")

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "row":
            row: LiveRow = msg[1]
            self.rows += 1
            if self.first_row is None:
                self.first_row = row.volume
            self.seconds.append(row.seconds)
            self._on_row(row)
        elif kind == "labels":
            self._on_labels(msg[1], msg[2])
        elif kind == "skipped":
            self.skipped += 1
        elif kind == "error":
            self.error = msg[1]
            self._on_problem("warning", f"the readout stopped: {msg[1].strip().splitlines()[-1]}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Let the readout finish what it was given (bounded), then end it; True if it ended."""
        self._stopping.set()
        if self.proc is None:
            return True
        with contextlib.suppress(queue.Full):
            self._inbox.put(None, timeout=1.0)
        self.proc.join(timeout_s)
        ended = not self.proc.is_alive()
        if not ended:
            self.proc.kill()
            self.proc.join(5)
        self._collector.join(5.0)
        # whatever the process never read must not keep this process from exiting
        self._inbox.cancel_join_thread()
        self._inbox.close()
        return ended
