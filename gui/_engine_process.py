"""Runs a session's :class:`~rig.engine.Engine` in its own process and hands its live data to the GUI.

On a thread, the engine shared the GIL with Qt and pyqtgraph: a long repaint
delayed the closed loop, and the loop's bursts froze the window. In its own
process (spawned, so it starts clean of Qt), neither can take the other's
interpreter. The app talks to it by commands (stop, clean stop, note) and hears
back by messages (armed, events, bouts, readout rows, status, failed,
finished) over two one-way pipes; the fast streams (tail, swim power,
velocity, gain, frames) and the newest preview volume arrive through shared
memory (``gui._shared_live``). See ``gui._engine_child`` for the other side,
including why a dead app ends the session ``stopped`` and never ``failed``.

:class:`EngineRunner` keeps the interface the window used with the thread: the
same signals, :meth:`~EngineRunner.take` for the live timer, and ``engine``,
a read-only view (:class:`EngineView`) of the session with its newest status.
Every wait on the other process is bounded.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from acquisition.swims import BOUT_DTYPE
from gui._engine_child import EngineSpec, run_engine_process
from gui._qt import QtCore
from gui._readout_rows import ShownRow
from gui._session_file import volume_stride
from gui._shared_live import ChunkRing, LiveShape, VolumePreview, VolumeSlot
from rig.core.clock import VirtualClock
from rig.core.errors import ZaprigError
from rig.core.events import Event
from rig.engine import Engine, LiveChunk, RunState, RunStatus
from rig.lanes import thread_off_engine_cpus

__all__ = ["EngineRunner", "EngineView", "LiveBatch"]

#: The app looks for the engine's messages this often (its own timer, so the runner's
#: signals fire whether or not the window's timers run).
POLL_MS = 30
#: Messages taken per poll at most (a backlog is worked off over a few polls).
MAX_MESSAGES = 4000
#: How long the app waits for the engine process to exit after its last message.
JOIN_S = 10.0


@dataclass(frozen=True, slots=True)
class LiveBatch:
    """Everything that arrived since the GUI last looked."""

    chunks: list[LiveChunk]
    bouts: np.ndarray  # BOUT_DTYPE, every bout (never dropped)
    frame: np.void | None  # the newest stimulus frame record
    #: The newest volume's max projection, levels and one plane (made by the engine process).
    volume: VolumePreview | None
    dropped_chunks: int  # chunks the GUI never saw, in total
    events: list[Event] = field(default_factory=list)  # every event since the last batch
    #: The live readout's rows since the last batch (the newest 64 at most).
    readout: list[ShownRow] = field(default_factory=list)


class EngineView:
    """The app's read-only picture of the engine in the other process.

    The plan (rig, protocol, timeline, output folder) is the app's own unarmed
    :class:`~rig.engine.Engine`, built from the same inputs as the one that
    runs; what changes (status, path, bytes written) comes from the messages.
    """

    def __init__(self, plan: Engine) -> None:
        self.rig = plan.rig
        self.protocol = plan.protocol
        self.timeline = plan.timeline
        self.out_dir = plan.out_dir
        self.path: Path | None = None
        self.live_labels: tuple[np.ndarray, np.ndarray] | None = None
        self.bytes_written = 0
        self.stopping_step = ""
        self._status = plan.status()

    def status(self) -> RunStatus:
        """The newest status the engine sent (every 0.2 s while it runs)."""
        return self._status


def live_shape(plan: Engine, max_side: int, capacity: int) -> LiveShape:
    z, y, x = plan.rig.microscope.shape_zyx
    s = volume_stride((y, x), max_side)
    return LiveShape(plan.rig.daq.chunk_samples, capacity, (z, -(-y // s), -(-x // s)), s)


class EngineRunner(QtCore.QObject):
    """Owns one session's engine process. Make a new session by calling :meth:`start` again."""

    #: The session file exists and the devices are open (its path).
    armed = QtCore.pyqtSignal(str)
    #: The run could not start or hit an error: (a message that says what and what to do,
    #: the event source it comes from: the lamp it lights).
    failed = QtCore.pyqtSignal(str, str)
    #: The session is over; the final state's value ("complete", "stopped", "aborted", "failed").
    finished = QtCore.pyqtSignal(str)

    def __init__(
        self,
        max_chunks: int = 512,
        volume_interval_s: float = 0.5,
        max_side: int = 256,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine: EngineView | None = None
        self._max_chunks = max_chunks
        self._volume_interval_s = volume_interval_s
        self._max_side = max_side
        self._proc: mp.process.BaseProcess | None = None
        self._commands: Connection | None = None
        self._messages: Connection | None = None
        self._ring: ChunkRing | None = None
        self._volume: VolumeSlot | None = None
        self._volume_planes = 1
        #: While a real-time session runs: the window's thread kept off the engine's CPU
        self._cpus = contextlib.ExitStack()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._reset()

    def _reset(self) -> None:
        self._bouts: deque[np.ndarray] = deque()
        # events are never dropped: the event log must show every one the file holds
        self._events: deque[Event] = deque()
        self._readout: deque[ShownRow] = deque(maxlen=64)
        self._stop_after: int | None = None
        self._ended = False
        #: The loop's lag per chunk (ms), when started with ``time_loop`` (after the end).
        self.loop_lag_ms: np.ndarray | None = None
        self.final_state: RunState | None = None
        self.error = ""

    # -- control ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """From :meth:`start` until :attr:`finished` is emitted."""
        return self._proc is not None and not self._ended

    @property
    def pid(self) -> int | None:
        """The engine process's id (None before the first start)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, plan: Engine, notes: tuple[str, ...] = (), time_loop: bool = False) -> None:
        """Run the session ``plan`` describes in a new engine process; returns at once.

        ``plan`` is an unarmed engine (it is never armed here): the other process
        builds its own from the same inputs. ``notes`` are logged at the first chunk.
        """
        if self.running:
            raise ZaprigError("a session is already running: stop it before starting another")
        self.close()
        self._reset()
        self.engine = EngineView(plan)
        shape = live_shape(plan, self._max_side, self._max_chunks)
        self._ring = ChunkRing(shape)
        self._volume = VolumeSlot(shape)
        self._volume_planes = shape.volume_zyx[0]
        spec = EngineSpec(
            rig=plan.rig,
            protocol=plan.protocol,
            out_dir=plan.out_dir,
            clock="virtual" if isinstance(plan.clock, VirtualClock) else "realtime",
            seed=plan.seed,
            fish=dict(plan.setup.fish_meta),
            session_name=plan.setup.session_name,
            rig_source=plan.setup.rig_source,
            label_file=plan.setup.label_file,
            notes=tuple(notes),
            time_loop=time_loop,
        )
        ctx = mp.get_context("spawn")
        cmd_read, cmd_write = ctx.Pipe(duplex=False)
        msg_read, msg_write = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=run_engine_process,
            args=(
                spec,
                cmd_read,
                msg_write,
                self._ring.name,
                self._volume.name,
                shape,
                self._volume_interval_s,
            ),
            name="zaprig-engine",
            daemon=False,  # the engine starts the writer's process; and it outlives a crashed app
        )
        proc.start()
        if spec.clock == "realtime":
            # off the CPU the engine's real-time lanes hold (the engine inherited ours above)
            self._cpus.enter_context(thread_off_engine_cpus())
        # only the engine holds these ends: its death reads as end-of-file here, ours there
        cmd_read.close()
        msg_write.close()
        self._proc, self._commands, self._messages = proc, cmd_write, msg_read
        self._timer.start()

    def _send(self, *msg: object) -> None:
        if self._commands is None or not self.running:
            return
        # the engine process may be gone: poll() reports how it ended
        with contextlib.suppress(OSError, ValueError):
            self._commands.send(msg)

    def request_stop(self, reason: str = "stopped by the user") -> None:
        """Abort between two chunks (the session ends ``aborted``, laser off, file closed)."""
        self._send("stop", reason)

    def stop_after_condition(self) -> int | None:
        """Let the current condition finish, then stop (``stopped``); returns that condition.

        None: not running. The engine's loop lane acts on it at the condition's last
        chunk, so the block ends within one chunk of its planned end whatever the GUI
        is doing. Stopping in the last condition lets the run complete.
        """
        eng = self.engine
        if eng is None or not self.running:
            return None
        c = max(0, eng.status().condition)
        self._stop_after = c
        name = eng.protocol.conditions[c].name
        self._send("clean_stop", f"stopped by the user at the end of condition {c} ({name})", c)
        return c

    @property
    def stopping_after(self) -> int | None:
        return self._stop_after

    def add_note(self, text: str) -> None:
        if self.engine is None or not self.running:
            raise ZaprigError("notes are recorded into a running session: start one first")
        self._send("note", text)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait (bounded, default 10 s) until the session is over and its process has exited."""
        if self._proc is None:
            return True
        deadline = JOIN_S if timeout_s is None else timeout_s
        end = time.monotonic() + deadline
        while not self._ended and time.monotonic() < end:
            self.poll()  # emits finished when the engine says so (or dies)
            if not self._ended:
                self._proc.join(0.02)
        self._proc.join(max(0.0, end - time.monotonic()))
        return self._ended and not self._proc.is_alive()

    def close(self) -> None:
        """Free the shared memory of the last session (after its final :meth:`take`)."""
        self._timer.stop()
        self._cpus.close()
        for part in (self._ring, self._volume):
            if part is not None:
                part.close()
        self._ring = self._volume = None
        for conn in (self._commands, self._messages):
            if conn is not None:
                conn.close()
        self._commands = self._messages = None

    # -- messages ---------------------------------------------------------------------------
    def poll(self) -> None:
        """Take the engine's messages; notice an engine process that died without a word."""
        conn = self._messages
        if conn is None or self._ended:
            return
        for _ in range(MAX_MESSAGES):
            try:
                if not conn.poll(0):
                    break
                msg = conn.recv()
            except (EOFError, OSError):
                break
            self._dispatch(msg)
            if self._ended:
                return
        proc = self._proc
        if proc is not None and not proc.is_alive() and not self._drain_pending(conn):
            self.error = f"the engine process ended unexpectedly (exit code {proc.exitcode})"
            self.failed.emit(
                f"{self.error}; the file may be incomplete: zaprig recover --salvage "
                f"{self.engine.path if self.engine and self.engine.path else '<file>'}",
                "engine",
            )
            self._end(RunState.FAILED)

    @staticmethod
    def _drain_pending(conn: Connection) -> bool:
        try:
            return conn.poll(0)
        except (EOFError, OSError):
            return False

    def _dispatch(self, msg: tuple[object, ...]) -> None:
        kind, eng = msg[0], self.engine
        assert eng is not None
        if kind == "event":
            self._events.append(msg[1])  # type: ignore[arg-type]
        elif kind == "bouts":
            self._bouts.append(msg[1])  # type: ignore[arg-type]
        elif kind == "readout":
            self._readout.append(msg[1])  # type: ignore[arg-type]
        elif kind == "labels":
            eng.live_labels = msg[1]  # type: ignore[assignment]
        elif kind == "status":
            eng._status = msg[1]  # type: ignore[assignment]
            eng.bytes_written = int(msg[2])  # type: ignore[call-overload]
            eng.stopping_step = str(msg[3])
        elif kind == "armed":
            eng.path = Path(str(msg[1]))
            self.armed.emit(str(msg[1]))
        elif kind == "failed":
            self.error = str(msg[1])
            self.failed.emit(self.error, str(msg[2]) if len(msg) > 2 else "engine")
        elif kind == "loop_lag":
            self.loop_lag_ms = np.asarray(msg[1])
        elif kind == "finished":
            self._end(RunState(str(msg[1])))

    def _end(self, final: RunState) -> None:
        self.final_state = final
        self._ended = True
        self._cpus.close()
        self._timer.stop()
        self.finished.emit(final.value)

    # -- live data --------------------------------------------------------------------------
    def take(self, plane: int = -1) -> LiveBatch:
        """Everything the engine handed over since the last call (GUI thread); a new volume
        comes as its max projection and ``plane`` (-1: the middle one)."""
        self.poll()
        chunks: list[LiveChunk] = []
        frame = None
        lost = 0
        if self._ring is not None:
            for s in self._ring.take():
                n, e, f = int(s["n_tail"]), int(s["n_power"]), int(s["n_frames"])
                frames = s["frames"][:f]
                chunks.append(
                    LiveChunk(
                        int(s["s0"]),
                        s["tail"][:n],
                        s["power"][:e],
                        s["power_samples"][:e],
                        s["threshold"],
                        float(s["velocity"]),
                        float(s["gain"]),
                        int(s["condition"]),
                        bool(s["swimming"]),
                        np.zeros(0, BOUT_DTYPE),
                        frames,
                    )
                )
                if f:
                    frame = frames[-1]
            lost = self._ring.lost
        volume = None
        if self._volume is not None:
            z = plane if plane >= 0 else self._volume_planes // 2
            volume = self._volume.take(z)
        bouts = list(self._bouts)
        self._bouts.clear()
        events = list(self._events)
        self._events.clear()
        readout = list(self._readout)
        self._readout.clear()
        return LiveBatch(
            chunks=chunks,
            bouts=np.concatenate(bouts) if bouts else np.zeros(0, dtype=BOUT_DTYPE),
            frame=frame,
            volume=volume,
            dropped_chunks=lost,
            events=events,
            readout=readout,
        )
