"""Runs an :class:`~rig.engine.Engine` on a worker thread and hands its live data to the GUI.

The engine calls its listeners from its lanes after every DAQ chunk (~100 times
a second) and for every event. Those calls only append to deques and return:
no Qt call, no lock the GUI holds, no copy larger than a preview. The GUI
drains the deques on its own timer (<= 30 Hz), so it never slows the closed
loop; when the GUI falls behind, the oldest chunks are dropped and counted.
Only the run's start and end cross threads as Qt signals (queued).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from acquisition.swims import BOUT_DTYPE
from gui._qt import QtCore
from gui._session_file import volume_stride
from rig.engine import Engine, LiveChunk, RunState, describe_error
from rig.errors import ZaprigError
from rig.events import Event
from rig.readout import LiveRow

__all__ = ["EngineRunner", "LiveBatch"]


@dataclass(frozen=True, slots=True)
class LiveBatch:
    """Everything that arrived since the GUI last looked."""

    chunks: list[LiveChunk]
    bouts: np.ndarray  # BOUT_DTYPE, every bout (never dropped)
    frame: np.void | None  # the newest stimulus frame record
    volume: tuple[int, np.ndarray] | None  # (t, subsampled volume), newest only
    dropped_chunks: int  # chunks the GUI never saw, in total
    events: list[Event] = field(default_factory=list)  # every event since the last batch
    #: The live readout's rows since the last batch (the newest ``max_readout`` at most).
    readout: list[LiveRow] = field(default_factory=list)


class EngineRunner(QtCore.QObject):
    """Owns one session's worker thread. Make a new session by calling :meth:`start` again."""

    #: The session file exists and the devices are open (its path).
    armed = QtCore.pyqtSignal(str)
    #: The run could not start or hit an error (a message that says what and what to do).
    failed = QtCore.pyqtSignal(str)
    #: The thread is done; the final state's value ("complete", "stopped", "aborted", "failed").
    finished = QtCore.pyqtSignal(str)

    def __init__(
        self,
        max_chunks: int = 512,
        volume_interval_s: float = 0.5,
        max_side: int = 256,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._max_chunks = max_chunks
        self._volume_interval_s = volume_interval_s
        self._max_side = max_side
        self._reset()

    def _reset(self) -> None:
        self._chunks: deque[LiveChunk] = deque(maxlen=self._max_chunks)
        self._bouts: deque[np.ndarray] = deque(maxlen=4096)
        # events are never dropped: the event log must show every one the file holds
        self._events: deque[Event] = deque()
        # ~1 row per volume; a GUI frozen for a minute keeps the newest 64
        self._readout: deque[LiveRow] = deque(maxlen=64)
        self._frame: np.void | None = None
        self._volume: tuple[int, np.ndarray] | None = None
        self._volume_at = -np.inf
        self._pushed = 0
        self._taken = 0
        self._stop_after: int | None = None
        self.final_state: RunState | None = None
        self.error = ""

    # -- control (GUI thread) ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, engine: Engine) -> None:
        """Arm and run ``engine`` on a new thread; returns at once."""
        if self.running:
            raise ZaprigError("a session is already running: stop it before starting another")
        self._reset()
        self.engine = engine
        engine.subscribe(self._on_chunk)
        engine.subscribe_volumes(self._on_volume)
        engine.subscribe_events(self._events.append)
        engine.subscribe_readout(self._readout.append)
        self._thread = threading.Thread(target=self._run, name="zaprig-engine", daemon=False)
        self._thread.start()

    def request_stop(self, reason: str = "stopped by the user") -> None:
        """Abort between two chunks (the session ends ``aborted``, laser off, file closed)."""
        if self.engine is not None:
            self.engine.request_stop(reason)

    def stop_after_condition(self) -> int | None:
        """Let the current condition finish, then stop (``stopped``); returns that condition.

        None: not running.

        The engine's loop lane acts on it at the condition's last chunk, so the block
        ends within one chunk of its planned end whatever the GUI is doing. Stopping
        in the last condition lets the run complete.
        """
        eng = self.engine
        if eng is None or not self.running:
            return None
        c = max(0, eng.status().condition)
        self._stop_after = c
        name = eng.timeline.protocol.conditions[c].name
        eng.request_clean_stop(
            f"stopped by the user at the end of condition {c} ({name})", after_condition=c
        )
        return c

    @property
    def stopping_after(self) -> int | None:
        return self._stop_after

    def add_note(self, text: str) -> None:
        if self.engine is None or not self.running:
            raise ZaprigError("notes are recorded into a running session: start one first")
        self.engine.add_note(text)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join the thread; True if it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def take(self) -> LiveBatch:
        """Drain what the engine handed over since the last call (GUI thread)."""
        chunks: list[LiveChunk] = []
        while True:
            try:
                chunks.append(self._chunks.popleft())
            except IndexError:
                break
        bouts: list[np.ndarray] = []
        while True:
            try:
                bouts.append(self._bouts.popleft())
            except IndexError:
                break
        events: list[Event] = []
        while True:
            try:
                events.append(self._events.popleft())
            except IndexError:
                break
        readout: list[LiveRow] = []
        while True:
            try:
                readout.append(self._readout.popleft())
            except IndexError:
                break
        self._taken += len(chunks)
        volume, self._volume = self._volume, None
        return LiveBatch(
            chunks=chunks,
            bouts=np.concatenate(bouts) if bouts else np.zeros(0, dtype=BOUT_DTYPE),
            frame=self._frame,
            volume=volume,
            dropped_chunks=max(0, self._pushed - self._taken - len(self._chunks)),
            events=events,
            readout=readout,
        )

    # -- engine thread ----------------------------------------------------------------------
    def _run(self) -> None:
        eng = self.engine
        assert eng is not None
        try:
            eng.arm()
        except Exception as e:
            if not isinstance(e, ZaprigError):
                traceback.print_exc()
            self.error = describe_error(e)
            self.final_state = RunState.FAILED
            self.failed.emit(f"the session could not start: {self.error}")
            self.finished.emit(RunState.FAILED.value)
            return
        self.armed.emit(str(eng.path))
        try:
            final = eng.run()
        except Exception as e:
            # the engine has already closed the file as 'failed'; this is a bug to report
            traceback.print_exc()
            self.error = describe_error(e)
            final = RunState.FAILED
            self.failed.emit(f"the run stopped on an internal error: {self.error}")
        self.final_state = final
        self.finished.emit(final.value)

    def _on_chunk(self, chunk: LiveChunk) -> None:
        self._chunks.append(chunk)
        self._pushed += 1
        if len(chunk.new_bouts):
            self._bouts.append(chunk.new_bouts)
        if len(chunk.frames):
            self._frame = chunk.frames[-1]

    def _on_volume(self, t: int, volume: np.ndarray) -> None:
        now = time.monotonic()
        if now - self._volume_at < self._volume_interval_s:
            return
        self._volume_at = now
        s = volume_stride(volume.shape[1:], self._max_side)
        # the engine's buffer is only valid during this call: keep a small copy
        self._volume = (t, volume[:, ::s, ::s].copy())
