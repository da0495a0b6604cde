"""The record lane: everything the loop produced, turned into the session's records.

The loop lane hands over each chunk as it was read (tail, TTL read-back), the
frames the renderer reported and the bouts the detector closed, and goes back to
the DAQ. Here, on a thread of its own, they become the dataset's 10-row stream,
the conditions table and the stimulus and bout tables, sent to the writer process
(the record lane's other half, which owns the HDF5 file); the engine's health
checks and live views run here too.

:class:`StreamRecorder` builds the rows: rows 0-2 as measured, row 4 from the
timeline, rows 3 and 5-9 from the displayed frames (docs/stimulus-rows.md).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, cast

import numpy as np

from acquisition.tables import concat_records
from acquisition.writer import WriterClient
from rig.core.layout import ROW
from rig.core.timeline import Timeline
from stimuli.state import FRAME_DTYPE, empty_frame

__all__ = ["ChunkRecord", "RecordLane", "StreamRecorder"]

#: Stimulus rows where no frame of row 4's condition is known (zeros, outside any condition).
_NO_FRAME = empty_frame()
_NO_FRAME["condition"] = -1
_STIM_ROWS = ("param3", "param4", "param5", "stim_id", "velocity", "gain")


class ChunkRecord(NamedTuple):
    """One DAQ chunk as the loop lane saw it (the arrays are the lane's own: keep them).

    A named tuple, not a frozen dataclass: one is made per chunk on the loop lane, and a
    frozen dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost ~3 us of it.
    """

    s0: int
    chunk: np.ndarray  # (n, inputs) float32 as read
    frames: np.ndarray  # FRAME_DTYPE, reported by the renderer during this chunk
    bouts: np.ndarray  # BOUT_DTYPE, ended during this chunk
    swimming: bool
    var: np.ndarray  # (evals, 2) windowed tail variance; live views get its swim power
    power_samples: np.ndarray
    threshold: np.ndarray
    velocity: float
    gain: float

    @property
    def s1(self) -> int:
        return self.s0 + len(self.chunk)


class StreamRecorder:
    """Builds ``/stimuli_and_ephys`` rows and ``/protocol/conditions`` from chunks and frames."""

    def __init__(
        self, timeline: Timeline, writer: WriterClient, condition_names: list[str]
    ) -> None:
        self.tl = timeline
        self.w = writer
        self.names = condition_names
        self._pending: list[tuple[int, np.ndarray]] = []
        self._frames = np.zeros(0, dtype=FRAME_DTYPE)
        self._new_frames: list[np.ndarray] = []  # added since the last emit, joined there
        self._held: np.void = _NO_FRAME
        self.last_condition = -1

    def add(self, s0: int, chunk: np.ndarray, frames: np.ndarray) -> None:
        if len(frames):
            self._new_frames.append(frames)
        self._pending.append((s0, chunk))

    def emit(self, final: bool) -> None:
        """Write the rows of chunks whose displayed frames are all known.

        Rows 3 and 5-9 hold the state of the newest displayed frame, except that
        they never show another condition than row 4 does: from a condition's
        onset (inside its first plane) until its first frame flips they hold that
        first frame's state (docs/stimulus-rows.md). All ready chunks are written
        as one block (they are consecutive samples): in virtual time the lane
        takes many chunks at once, and per-chunk numpy calls were its whole cost.
        """
        tl = self.tl
        if self._new_frames:  # one join per batch, not one per chunk
            self._frames = concat_records([self._frames, *self._new_frames])
            self._new_frames.clear()
        known = int(self._frames["flip_sample"][-1]) if len(self._frames) else -1
        ready = 0
        for s0, chunk in self._pending:
            if not final and known < s0 + len(chunk) - 1:
                break
            ready += 1
        if not ready:
            return
        block, self._pending = self._pending[:ready], self._pending[ready:]
        s0 = block[0][0]
        chunk = block[0][1] if ready == 1 else np.concatenate([c for _, c in block])
        n = min(len(chunk), tl.end_sample - s0)
        if n <= 0:
            return
        samples = np.arange(s0, s0 + n)
        # the 10 rows, then the photodiode and extra inputs (/analog_inputs)
        rows = np.zeros((n, 10 + chunk.shape[1] - 3), dtype=np.float32)
        rows[:, 10:] = chunk[:n, 3:]
        rows[:, ROW["tail_left"]] = chunk[:n, 0]
        rows[:, ROW["tail_right"]] = chunk[:n, 1]
        rows[:, ROW["trigger"]] = chunk[:n, 2]
        cond = np.searchsorted(tl.condition_start_samples, samples, side="right")
        cond[cond > tl.n_conditions] = 0
        rows[:, ROW["condition"]] = cond
        held = self._held_frames(samples, cond - 1)
        for name in _STIM_ROWS:
            rows[:, ROW[name]] = held[name]
        self.w.stream(rows)

    def _held_frames(self, samples: np.ndarray, condition: np.ndarray) -> dict[str, np.ndarray]:
        """The stimulus fields of the frame whose state each sample holds (see :meth:`emit`).

        ``condition`` is row 4's 0-based condition at each sample (-1 outside the
        protocol). Frames older than the newest one at or before the last sample are
        forgotten afterwards. Works on indices into ``[frames..., held, none]`` and
        gathers only the fields the rows need (``np.where`` on records re-promotes every
        field, and gathering whole 26-field records was most of this method's time).
        """
        fr = self._frames
        nf = len(fr)
        table = np.empty(nf + 2, dtype=FRAME_DTYPE)
        table[:nf] = fr
        table[nf] = self._held
        table[nf + 1] = _NO_FRAME
        k = np.searchsorted(fr["flip_sample"], samples, side="right") - 1
        idx = np.where(k >= 0, k, nf)
        stale = table["condition"][idx] != condition
        if stale.any():
            j = k[stale] + 1
            ok = j < nf
            ok[ok] = fr["condition"][j[ok]] == condition[stale][ok]
            idx[stale] = np.where(ok, j, nf + 1)
        last = int(k[-1])
        if last >= 0:
            self._held = cast(np.void, fr[last])
            self._frames = fr[last:]
        return {name: table[name][idx] for name in _STIM_ROWS}

    def conditions(self, s1: int, on_start: Callable[[int, int, str], None]) -> None:
        """Table rows for conditions that ended by ``s1``; ``on_start(sample, c, name)``."""
        tl = self.tl
        c = tl.condition_at(min(s1, tl.end_sample - 1))
        while self.last_condition < c:
            nxt = self.last_condition + 1
            if nxt > 0:
                self.condition_row(nxt - 1, int(tl.condition_start_samples[nxt]))
            if nxt < tl.n_conditions:
                on_start(int(tl.condition_start_samples[nxt]), nxt, self.names[nxt])
            self.last_condition = nxt

    def condition_row(self, c: int, stop_sample: int) -> None:
        tl = self.tl
        a = tl.condition_bounds[c]
        b = tl.condition_bounds[c + 1]
        if stop_sample < int(tl.condition_start_samples[c + 1]):
            b = int(np.searchsorted(tl.volume_starts, stop_sample, side="left"))
        self.w.table(
            "protocol/conditions",
            {
                "name": np.array([self.names[c]], dtype=object),
                "index": np.array([c], dtype=np.int32),
                "start_volume": np.array([a], dtype=np.int64),
                "stop_volume": np.array([b], dtype=np.int64),
                "start_sample": np.array([tl.condition_start_samples[c]], dtype=np.int64),
                "stop_sample": np.array([stop_sample], dtype=np.int64),
            },
        )


class RecordLane:
    """A worker thread that hands every :class:`ChunkRecord` to ``handle`` in order.

    ``handle`` gets all the records waiting at once (a list, oldest first): in real
    time that is usually one, in virtual time up to the loop's lead (64 chunks), so
    the lane's per-call overhead is paid once per batch, not once per chunk.
    """

    def __init__(
        self, handle: Callable[[list[ChunkRecord]], None], threaded: bool = True, batch: int = 64
    ) -> None:
        self._handle = handle
        #: False in virtual time: nothing is real-time there, and a thread of its own only
        #: made the two lanes hand the GIL to each other ~3 times a chunk (a fifth of the
        #: engine's CPU went on switching); the loop calls ``handle`` every ``batch`` chunks.
        self.threaded = threaded
        self._batch = batch
        self._queue: deque[ChunkRecord] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="zaprig-record-lane", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        if self.threaded:
            self._thread.start()

    def submit(self, rec: ChunkRecord) -> None:
        """Never waits in real time (the loop lane calls it); inline, handles a full batch."""
        if not self.threaded:
            self._queue.append(rec)
            if len(self._queue) >= self._batch:
                self._handle_inline()
            return
        with self._cond:
            self._queue.append(rec)
            self._cond.notify()

    @property
    def backlog(self) -> int:
        return len(self._queue) + self._busy

    def wait_below(self, n: int, timeout_s: float = 5.0) -> None:
        """Virtual time only: hold the loop until fewer than ``n`` chunks wait here."""
        if not self.threaded:
            return  # inline: never more than one batch waits
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._queue) < n or self.error is not None or self._stop, timeout_s
            )

    def alive(self) -> bool:
        return self._thread.is_alive() if self.threaded else self.error is None

    def _handle_inline(self) -> None:
        if self.error is not None or not self._queue:
            return
        batch = list(self._queue)
        self._queue.clear()
        try:
            self._handle(batch)
        except BaseException as e:  # reported by the loop, as the thread's errors are
            self.error = e

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop)
                if not self._queue and self._stop:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._handle(batch)
            except BaseException as e:
                self.error = e
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Handle what is queued, then end; False if the thread did not end in time."""
        if not self.threaded:
            self._handle_inline()
            self._stop = True
            return True
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
