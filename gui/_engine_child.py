"""The engine process the control app starts: one session, watched by the app, never held by it.

The app (``gui._engine_process.EngineProcess``) spawns this with two one-way
pipes and two shared-memory blocks:

- **commands** in (``stop``, ``clean_stop``, ``note``): a thread here reads them;
- **messages** out (``armed``, ``event``, ``bouts``, ``readout``, ``labels``,
  ``status``, ``failed``, ``finished``): the engine's listeners only append to
  a deque, and a sender thread does the blocking ``send``. A slow app therefore
  slows nobody but that thread;
- **live data** (chunks and the newest preview volume with its max projection)
  in shared memory (``gui._shared_live``), written by the listeners without waiting.

What the window draws is made here, not in the window: the preview's max
projection and levels (``VolumeSlot.put``), and each readout row reduced to
what the Brain readout tab draws (``gui._readout_rows.shown_row``: grouped
rasters instead of five 70,000-value arrays).

Only the write end of the message pipe is in this process, so when the app
dies a send fails at once instead of filling a pipe nobody reads; the read end
of the command pipe then reads end-of-file. Either way (and if this process is
re-parented) the session is ended as a clean stop: the file closes ``stopped``,
everything recorded is kept, the laser goes off. The app's death never makes a
session ``failed``.

This module imports no Qt: the engine process must not load a second GUI
toolkit (PsychoPy brings its own window), and must start fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from gui._readout_rows import shown_row
from gui._shared_live import ChunkRing, LiveShape, VolumeSlot
from rig.core.config import RigConfig
from stimuli.protocol import Protocol

__all__ = ["PARENT_GONE", "EngineSpec", "run_engine_process"]

#: The reason written into the file when the app dies mid-session.
PARENT_GONE = "the control app ended unexpectedly; the session was stopped cleanly"
#: How often the app gets a status snapshot (its session bar redraws at 5 Hz).
STATUS_S = 0.2
#: The longest the engine process waits for the app to take its last messages.
FLUSH_S = 5.0


@dataclass(frozen=True)
class EngineSpec:
    """What the engine process needs to build the app's :class:`~rig.engine.Engine` again."""

    rig: RigConfig
    protocol: Protocol
    out_dir: Path
    clock: str  # "realtime" or "virtual"
    seed: int = 0
    fish: dict[str, Any] = field(default_factory=dict)
    session_name: str | None = None
    rig_source: str = ""
    label_file: str | None = None
    notes: tuple[str, ...] = ()  # notes typed before Start (logged at the first chunk)
    #: Time the loop (benchmarks/gui_fullsize.py): how old each chunk's newest sample is when
    #: its state reaches the renderer; sent as a ``loop_lag`` message (ms) at the end.
    time_loop: bool = False


class _LoopTimer:
    """Wraps the renderer's publish: the loop's lag behind the wall clock, per chunk.

    The same measure as benchmarks/closed_loop_latency.py's headless runs (newest
    sample on the DAQ clock minus the chunk's sample, at publish), so the two compare.
    """

    def __init__(self, eng: Any, capacity: int = 1_000_000) -> None:
        self.ages = np.zeros(capacity, np.float32)
        self.n = 0
        dev, clock, fs = eng.devices, eng.clock, eng.rig.daq.sample_rate_hz
        publish = dev.renderer.publish

        def timed(loop: Any, sample: int, chunk_samples: int) -> None:
            publish(loop, sample, chunk_samples)
            if self.n < capacity:
                self.ages[self.n] = (clock.current_sample() - sample) * 1e3 / fs
                self.n += 1

        dev.renderer.publish = timed

    def values(self) -> np.ndarray:
        return self.ages[: self.n].copy()


class _Outbox:
    """Messages to the app. ``put`` never blocks; a thread does the sends."""

    def __init__(self, conn: Connection, on_gone: Any) -> None:
        self.conn = conn
        self.on_gone = on_gone
        self.q: deque[tuple[Any, ...]] = deque()
        self.wake = threading.Event()
        self.closed = False
        self.gone = False
        self.thread = threading.Thread(target=self._loop, name="app-sender", daemon=True)
        self.thread.start()

    def put(self, *msg: Any) -> None:
        if not self.gone:
            self.q.append(msg)
            self.wake.set()

    def _loop(self) -> None:
        while True:
            self.wake.wait(0.5)
            self.wake.clear()
            while self.q:
                msg = self.q.popleft()
                try:
                    self.conn.send(msg)
                except (OSError, EOFError, ValueError):
                    self.gone = True
                    self.q.clear()
                    self.on_gone()
                    return
            if self.closed and not self.q:
                return

    def flush(self, timeout_s: float) -> None:
        """Send what is queued, for at most ``timeout_s`` (an app that stopped reading is left)."""
        self.closed = True
        self.wake.set()
        self.thread.join(timeout_s)


def run_engine_process(
    spec: EngineSpec,
    commands: Connection,
    messages: Connection,
    ring_name: str,
    volume_name: str,
    shape: LiveShape,
    volume_interval_s: float,
) -> None:
    """The engine process's main: arm, run, report; end cleanly if the app goes away."""
    # Ctrl-C in the app's terminal reaches the whole process group: the app decides, not us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from rig.core.errors import ZaprigError
    from rig.engine import Engine, RunState, describe_error
    from rig.health import source_of

    parent = os.getppid()
    ring = ChunkRing(shape, ring_name)
    vslot = VolumeSlot(shape, volume_name)
    gone = threading.Event()
    engine: list[Any] = []  # the engine, once built (the app may die before that)

    def parent_gone() -> None:
        if not gone.is_set():
            gone.set()
            if engine:
                engine[0].request_clean_stop(PARENT_GONE)

    out = _Outbox(messages, parent_gone)
    try:
        eng = Engine(
            spec.rig,
            spec.protocol,
            out_dir=spec.out_dir,
            clock=spec.clock,
            seed=spec.seed,
            fish=spec.fish,
            session_name=spec.session_name,
            rig_source=spec.rig_source,
            label_file=spec.label_file,
        )
    except Exception as e:
        msg = f"the session could not start: {describe_error(e)}"
        out.put("failed", msg, source_of(e))
        out.put("finished", RunState.FAILED.value)
        out.flush(FLUSH_S)
        return
    for text in spec.notes:
        eng.add_note(text)
    engine.append(eng)
    if gone.is_set():
        eng.request_clean_stop(PARENT_GONE)
    stride = shape.volume_stride
    volume_at = [-np.inf]

    def on_chunk(ch: Any) -> None:
        ring.put(
            ch.s0,
            ch.tail,
            ch.power,
            ch.power_samples,
            ch.threshold,
            ch.velocity,
            ch.gain,
            ch.condition,
            ch.swimming,
            ch.frames,
        )
        if len(ch.new_bouts):
            out.put("bouts", np.array(ch.new_bouts))

    def on_volume(t: int, volume: np.ndarray) -> None:
        now = time.monotonic()
        if now - volume_at[0] < volume_interval_s:
            return
        volume_at[0] = now
        vslot.put(t, volume[:, ::stride, ::stride])

    labels_sent = [False]

    def on_readout(row: Any) -> None:
        if not labels_sent[0] and eng.live_labels is not None:
            labels_sent[0] = True
            out.put("labels", eng.live_labels)
        out.put("readout", shown_row(row))

    eng.subscribe(on_chunk)
    eng.subscribe_volumes(on_volume)
    eng.subscribe_events(lambda ev: out.put("event", ev))
    eng.subscribe_readout(on_readout)

    def commands_loop() -> None:
        while not gone.is_set():
            try:
                if commands.poll(0.5):
                    msg = commands.recv()
                elif os.getppid() != parent:
                    raise EOFError
                else:
                    continue
            except (OSError, EOFError):
                parent_gone()
                return
            kind = msg[0]
            if kind == "stop":
                eng.request_stop(msg[1])
            elif kind == "clean_stop":
                eng.request_clean_stop(msg[1], after_condition=msg[2])
            elif kind == "note":
                eng.add_note(msg[1])

    def status_loop() -> None:
        while not done.wait(STATUS_S):
            _status(out, eng)

    done = threading.Event()
    threading.Thread(target=commands_loop, name="app-commands", daemon=True).start()
    final = RunState.FAILED
    timer: _LoopTimer | None = None
    try:
        eng.arm()
    except Exception as e:
        if not isinstance(e, ZaprigError):
            traceback.print_exc()
        # the device that did not open (the health monitor has its fault), else by type
        fault = eng.health.fault
        source = fault.source if fault is not None else source_of(e)
        out.put("failed", f"the session could not start: {describe_error(e)}", source)
    else:
        timer = _LoopTimer(eng) if spec.time_loop else None
        out.put("armed", str(eng.path))
        threading.Thread(target=status_loop, name="app-status", daemon=True).start()
        try:
            final = eng.run()
        except Exception as e:
            # the engine has already closed the file as 'failed'; this is a bug to report
            traceback.print_exc()
            msg = f"the run stopped on an internal error: {describe_error(e)}"
            out.put("failed", msg, "engine")
            final = RunState.FAILED
    done.set()
    if timer is not None:
        out.put("loop_lag", timer.values())
    _status(out, eng)
    out.put("finished", final.value)
    out.flush(FLUSH_S)
    for closing in (ring.close, vslot.close, messages.close, commands.close):
        with contextlib.suppress(Exception):
            closing()


def _status(out: _Outbox, eng: Any) -> None:
    w = eng.writer
    out.put(
        "status",
        eng.status(),
        int(w.bytes_written) if w is not None else 0,
        eng.stopping_step,
    )
