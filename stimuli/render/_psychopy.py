"""The PsychoPy renderer: a process that owns the stimulus window, and its engine-side client.

PsychoPy needs its own main thread and GL context, so the window lives in a
spawned process. The engine :meth:`PsychopyRenderer.publish` es the newest
closed-loop state into a small shared-memory block (a seqlock: newest value
wins, neither side ever waits). Every frame the renderer process reads that
block, estimates the DAQ sample of its coming flip from the (DAQ sample,
``time.monotonic()``) pairs it has seen, makes the frame record with the same
:class:`~stimuli.render.frames.FrameMaker` as the headless renderer, draws it,
flips, and sends the record back (with the flip's measured DAQ sample) on a
bounded queue; when the queue is full the record is dropped and counted.

The process paces itself at ``refresh_hz`` on ``time.monotonic()``: a display
with vsync blocks in ``flip()``, a virtual one (Xvfb) does not, so without
vsync it sleeps until each frame's slot. A flip later than half a frame after
its slot missed it; the slots it missed are counted as dropped frames.

:func:`xvfb_display` starts a private virtual X display, for machines without
a screen (tests, benchmarks, demos).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import select
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from typing import Any

import numpy as np

from rig.core.config import DisplayConfig
from rig.core.errors import DeviceError
from rig.core.worker import Failed, Handlers, Message, Ready, Worker, WorkerContext, WorkerError
from stimuli.closed_loop import LoopState
from stimuli.render._base import Renderer
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE, blank_frame

__all__ = ["LoopStateBlock", "PsychopyRenderer", "SampleClock", "VirtualDisplay", "xvfb_display"]

_STATE_FIELDS = (
    "seq",
    "velocity",
    "position_mm",
    "heading_deg",
    "gain",
    "swimming",
    "updated_sample",
    "sample",
    "stamp",
    "condition",
    "trigger_sample",
)
# Counters the renderer process writes and the engine reads (one writer each).
_SHOWN, _DROPPED, _LOST, _N_COUNTERS = 0, 1, 2, 3


class LoopStateBlock:
    """The newest closed-loop state in shared memory, guarded by a sequence counter.

    One writer (the engine) and one reader (the renderer). The writer makes the
    counter odd, writes, and makes it even again; the reader retries while the
    counter is odd or changed under it. Neither ever blocks the other.
    """

    def __init__(self, ctx: SpawnContext) -> None:
        self._buf: Any = ctx.RawArray("d", len(_STATE_FIELDS))

    def write(self, loop: LoopState, sample: int, stamp: float) -> None:
        b = self._buf
        seq = b[0]
        b[0] = seq + 1.0
        b[1] = loop.velocity
        b[2] = loop.position_mm
        b[3] = loop.heading_deg
        b[4] = loop.gain
        b[5] = 1.0 if loop.swimming else 0.0
        b[6] = float(loop.updated_sample)
        b[7] = float(sample)
        b[8] = stamp
        b[9] = float(loop.condition)
        b[10] = float(loop.trigger_sample)
        b[0] = seq + 2.0

    def read(self) -> tuple[int, LoopState, int, float] | None:
        """(sequence number, state, DAQ sample, monotonic stamp), or None before the first write."""
        b = self._buf
        for _ in range(1000):
            seq = b[0]
            if seq % 2.0:
                continue
            values = b[1:]
            if b[0] != seq:
                continue
            if seq == 0.0:
                return None
            loop = LoopState(
                velocity=values[0],
                position_mm=values[1],
                heading_deg=values[2],
                gain=values[3],
                swimming=values[4] != 0.0,
                updated_sample=int(values[5]),
                condition=int(values[8]),
                trigger_sample=int(values[9]),
            )
            return int(seq) // 2, loop, int(values[6]), values[7]
        # Only a writer stalled mid-write can get here; the previous state stays on screen.
        return None


class SampleClock:
    """Maps ``time.monotonic()`` onto DAQ samples from (sample, stamp) pairs.

    A pair says that by ``stamp`` at least ``sample`` samples had been acquired,
    so ``sample + (t - stamp) * fs`` is a lower bound of the sample at ``t``;
    the tightest bound over the last ``window_s`` is the estimate. The window
    lets the estimate follow the drift between the DAQ's and the computer's clocks.
    """

    def __init__(self, sample_rate_hz: float, window_s: float = 2.0) -> None:
        self.fs = sample_rate_hz
        self.window_s = window_s
        # (stamp, sample - fs * stamp), offsets decreasing: the front is the window's maximum.
        self._offsets: deque[tuple[float, float]] = deque()

    @property
    def ready(self) -> bool:
        return bool(self._offsets)

    def add(self, sample: int, stamp: float) -> None:
        offset = sample - self.fs * stamp
        while self._offsets and self._offsets[-1][1] <= offset:
            self._offsets.pop()
        self._offsets.append((stamp, offset))
        while self._offsets[0][0] < stamp - self.window_s:
            self._offsets.popleft()

    def sample_at(self, t: float) -> int:
        return math.floor(self._offsets[0][1] + self.fs * t + 0.5)


@dataclass(frozen=True)
class _Job:
    """Everything the renderer process needs (pickled into the spawned process)."""

    display: DisplayConfig
    timeline: Schedule
    sample_rate_hz: float
    n_dots: int
    realtime_priority: bool
    state: LoopStateBlock
    counters: Any


@dataclass(frozen=True)
class RendererReady(Ready):
    """The window is open: whether flips wait for the display, and whether it got priority."""

    vsync: bool
    realtime: bool


@dataclass(frozen=True)
class Frame(Message):
    """One shown frame's record (FRAME_DTYPE bytes, its flip's DAQ sample filled in)."""

    record: bytes


def _has_vsync(win: Any, period: float, flips: int = 12) -> bool:
    """Whether ``flip()`` waits for the display's refresh (it does not under Xvfb)."""
    win.flip()
    stamps = []
    for _ in range(flips):
        win.flip()
        stamps.append(time.monotonic())
    return float(np.median(np.diff(stamps))) > 0.5 * period


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _renderer_main(ctx: WorkerContext, job: _Job) -> None:
    """The renderer process (under :class:`rig.core.worker.Worker`: signals, parent watch and
    error report are the worker's): open the window, then draw, pace, flip and report until
    told to stop. Its end waits (bounded) for the engine to take the records still queued."""
    _render_loop(ctx, job)


def _render_loop(ctx: WorkerContext, job: _Job) -> None:
    # The drawing module needs an X display at import, so it is imported here only.
    from stimuli.render._psychopy_draw import FrameDrawer, open_window
    from stimuli.render.frames import FrameMaker

    display = job.display
    period = 1.0 / display.refresh_hz
    rushed = False
    if job.realtime_priority:
        from psychopy import core

        # Before the window, so the GL driver's threads inherit the priority too.
        rushed = bool(core.rush(True))
    win = open_window(display)
    try:
        drawer = FrameDrawer(win, display, n_dots=job.n_dots)
        drawer.warm_up()
        maker = FrameMaker(job.timeline)
        maker.set_frame_rate(display.refresh_hz)
        maker.set_sync_patch(display.sync_patch)
        clock = SampleClock(job.sample_rate_hz)
        vsync = _has_vsync(win, period)
        ctx.ready(RendererReady(vsync, rushed))
        counters = job.counters
        black = blank_frame()
        loop = LoopState()
        last_seq = 0
        frame = 0
        last_flip_sample = -1
        t0 = time.monotonic() + period
        slot = 0
        while not ctx.stop_requested:
            slot_t = t0 + slot * period
            got = job.state.read()
            if got is not None and got[0] != last_seq:
                last_seq, loop, sample, stamp = got
                clock.add(sample, stamp)
            live = clock.ready
            rec = maker.make(frame, clock.sample_at(slot_t), loop) if live else black
            drawer.draw(rec)
            if not vsync:
                drawer.finish()
                _sleep_until(slot_t)
            win.flip()
            t = time.monotonic()
            late = t - slot_t
            missed = math.floor(late / period + 0.5) if late > 0.5 * period else 0
            if vsync:
                # The display sets the pace: the next slot is one refresh after this flip.
                t0, slot = t + period, 0
            else:
                slot += 1 + missed
            if not live:
                continue
            # Log when the frame really appeared, on the DAQ clock.
            flip_sample = max(clock.sample_at(t), last_flip_sample + 1)
            rec["flip_sample"] = flip_sample
            last_flip_sample = flip_sample
            counters[_DROPPED] += missed
            counters[_SHOWN] += 1
            frame += 1
            if not ctx.send(Frame(rec.tobytes()), timeout=0):
                counters[_LOST] += 1
        drawer.draw(black)
        win.flip()
    finally:
        win.close()


class PsychopyRenderer(Renderer):
    """Shows the protocol on the projector through PsychoPy in a process of its own.

    ``n_dots`` must match the protocol's random-dot stimuli (the frame record does
    not carry the dot count). ``queue_frames`` bounds the frames waiting for
    :meth:`collect`: at 60 Hz, 600 frames give the engine 10 s of slack.
    ``realtime_priority`` asks the OS to run the renderer before ordinary
    processes (PsychoPy's ``core.rush``); it needs the permission to (on Linux,
    CAP_SYS_NICE or an rtprio limit) and the run goes on without it if refused:
    :attr:`realtime` says which.
    """

    def __init__(
        self,
        display: DisplayConfig,
        *,
        n_dots: int = 300,
        realtime_priority: bool = True,
        queue_frames: int = 600,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.display = display
        self.n_dots = n_dots
        self.realtime_priority = realtime_priority
        self.queue_frames = queue_frames
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._worker: Worker | None = None
        self._job: _Job | None = None
        #: The renderer's messages, one handler each
        self._handlers: Handlers = {Frame: self._on_frame, Failed: self._on_failed}
        self._pending: list[bytes] = []
        self._stopping = False
        self._error: str | None = None
        #: Whether flips wait for the display's refresh, and whether the renderer got
        #: real-time priority (both known once started).
        self.vsync: bool | None = None
        self.realtime: bool | None = None

    # -- Renderer -----------------------------------------------------------------------------

    def start(self, timeline: Schedule, sample_rate_hz: float) -> None:
        if self._worker is not None:
            raise RuntimeError("PsychopyRenderer.start() called twice; make a new renderer")
        ctx = mp.get_context("spawn")
        job = _Job(
            display=self.display,
            timeline=timeline,
            sample_rate_hz=sample_rate_hz,
            n_dots=self.n_dots,
            realtime_priority=self.realtime_priority,
            state=LoopStateBlock(ctx),
            counters=ctx.RawArray("q", _N_COUNTERS),
        )
        self._job = job
        self._worker = Worker("renderer", _renderer_main, job, outbox=self.queue_frames)
        try:
            ready = self._worker.start(self.start_timeout_s, self._handlers)
        except WorkerError as e:
            if e.failure is not None:
                self._error = e.failure.error
            self.stop()
            why = self._error or (
                f"the process exited with code {self._worker.exitcode}"
                if self._worker.exitcode is not None
                else f"no window after {self.start_timeout_s:.0f} s"
            )
            raise DeviceError(
                f"display: the PsychoPy renderer did not start ({why}); check the display "
                "settings in the hardware config, or use display.backend = 'headless'"
            ) from None
        assert isinstance(ready, RendererReady)
        self.vsync, self.realtime = ready.vsync, ready.realtime

    def publish(self, loop: LoopState, sample: int, chunk_samples: int) -> None:
        assert self._job is not None, "start() first"
        self._job.state.write(loop, sample, time.monotonic())

    def collect(self) -> np.ndarray:
        if self._worker is not None:
            self._worker.receive_all(self._handlers)
        if not self._pending:
            return np.zeros(0, dtype=FRAME_DTYPE)
        out = np.frombuffer(b"".join(self._pending), dtype=FRAME_DTYPE).copy()
        self._pending.clear()
        return out[np.argsort(out["flip_sample"], kind="stable")]

    @property
    def dropped_frames(self) -> int:
        return int(self._job.counters[_DROPPED]) if self._job is not None else 0

    @property
    def frames_shown(self) -> int:
        """Frames flipped since the first published state."""
        return int(self._job.counters[_SHOWN]) if self._job is not None else 0

    @property
    def pid(self) -> int | None:
        """The renderer process's id (None before start)."""
        return self._worker.pid if self._worker is not None else None

    @property
    def lost_records(self) -> int:
        """Frames shown but not reported because :meth:`collect` fell behind (queue full)."""
        return int(self._job.counters[_LOST]) if self._job is not None else 0

    def kill(self) -> None:
        """Fault injection: the renderer process dies (SIGKILL), as a crash would."""
        if self._worker is not None:
            self._worker.kill()

    def check(self) -> str | None:
        worker = self._worker
        if worker is None or self._stopping or worker.exitcode is None:
            return None
        worker.receive_all(self._handlers)  # its last frames, and why it ended
        why = f": {self._error}" if self._error else ""
        return f"display: the PsychoPy renderer process died (exit code {worker.exitcode}){why}"

    def stop(self) -> None:
        if self._worker is None or self._stopping:
            return
        self._stopping = True
        # the process cannot exit while its queue holds records nobody reads: stop() takes them
        self._worker.stop(self.stop_timeout_s, self._handlers)

    # -- helpers ------------------------------------------------------------------------------

    def _on_frame(self, msg: Frame) -> None:
        self._pending.append(msg.record)

    def _on_failed(self, msg: Failed) -> None:
        self._error = msg.error


@dataclass(frozen=True)
class VirtualDisplay:
    """A running Xvfb: its DISPLAY name, its process id, and whether it got real-time priority."""

    name: str
    pid: int
    realtime: bool


def _raise_priority(pid: int) -> bool:
    """Real-time round-robin scheduling for a process, if this user may grant it."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(
            pid, os.SCHED_RR, os.sched_param(os.sched_get_priority_min(os.SCHED_RR))
        )
    except PermissionError:
        return False
    return True


@contextlib.contextmanager
def xvfb_display(screen: str = "1024x768x24", realtime: bool = False) -> Iterator[VirtualDisplay]:
    """Run a private Xvfb for the duration and yield it (its DISPLAY name, e.g. ``":5"``).

    Xvfb picks a free display number itself and reports it once it accepts
    connections (``-displayfd``), so there is no guessing and no polling.
    Sets ``DISPLAY`` while it runs (spawned processes inherit it) and restores it after.
    With ``realtime`` the X server is scheduled like the renderer under
    ``core.rush`` (where permitted): it stands in for display hardware, which
    does not wait for the CPU.
    """
    exe = shutil.which("Xvfb")
    if exe is None:
        raise DeviceError(
            "display: Xvfb is not installed, so no virtual display can be started; "
            "install it (apt-get install xvfb) or run where a display is available"
        )
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 20.0
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                raise DeviceError(
                    f"display: Xvfb did not start (exit code {proc.poll()}); "
                    "run `Xvfb -displayfd 1` by hand to see why"
                )
            number += chunk
        name = f":{int(number)}"
        rushed = _raise_priority(proc.pid) if realtime else False
        old = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = name
        try:
            yield VirtualDisplay(name, proc.pid, rushed)
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
