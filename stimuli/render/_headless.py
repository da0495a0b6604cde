"""The headless renderer: frames at exact refresh times on the DAQ clock, no window.

Serves virtual-time runs and machines without a display. A frame flipping at
sample ``f`` is made when the last chunk ending strictly before ``f`` has been
processed, from the closed-loop state as of that chunk: the same causality as a
real renderer that draws from the newest state before its flip.
"""

from __future__ import annotations

import math

import numpy as np

from rig.core.config import SyncPatchConfig
from stimuli.closed_loop import LoopState
from stimuli.render._base import Renderer
from stimuli.render.frames import FrameMaker
from stimuli.schedule import Schedule
from stimuli.state import FRAME_DTYPE

__all__ = ["HeadlessRenderer"]


#: "No frame flipped in this chunk": one shared, read-only empty table.
_NO_FRAMES = np.zeros(0, dtype=FRAME_DTYPE)
_NO_FRAMES.flags.writeable = False


class HeadlessRenderer(Renderer):
    def __init__(self, refresh_hz: float, sync_patch: SyncPatchConfig | None = None) -> None:
        self.refresh_hz = refresh_hz
        self.sync_patch = sync_patch
        self._maker: FrameMaker | None = None
        self._next_frame = 0
        self._fs = 6000.0
        # frames made since the last collect(), written straight into the rows of a table
        # (zeroed when collected): no record per frame made, then copied into a new array
        self._pending = np.zeros(4, dtype=FRAME_DTYPE)
        self._n_pending = 0
        # its bytes: copied and zeroed as bytes (a structured copy goes field by field, ~15x slower)
        self._pending_raw = self._pending.view(np.uint8).reshape(4, FRAME_DTYPE.itemsize)
        self._dead = False

    def start(self, timeline: Schedule, sample_rate_hz: float) -> None:
        self._maker = FrameMaker(timeline)
        self._maker.set_frame_rate(self.refresh_hz)
        self._maker.set_sync_patch(self.sync_patch)
        self._fs = sample_rate_hz
        self._next_frame = 0

    def _flip_sample(self, k: int) -> int:
        return math.floor(k * self._fs / self.refresh_hz + 0.5)

    def publish(self, loop: LoopState, sample: int, chunk_samples: int) -> None:
        assert self._maker is not None, "start() first"
        if self._dead:
            return
        # flips in (sample, sample + chunk]: a flip exactly at `sample` happens as this state
        # is published, too late to show it, so the previous publish made that frame
        horizon = sample + chunk_samples
        while (f := self._flip_sample(self._next_frame)) <= horizon:
            if self._n_pending == len(self._pending):
                more = np.zeros(len(self._pending), dtype=FRAME_DTYPE)
                self._pending = np.concatenate([self._pending, more])
                self._pending_raw = self._pending.view(np.uint8).reshape(-1, FRAME_DTYPE.itemsize)
            self._maker.make_into(self._pending[self._n_pending], self._next_frame, f, loop)
            self._n_pending += 1
            self._next_frame += 1

    def collect(self) -> np.ndarray:
        k = self._n_pending
        if not k:
            return _NO_FRAMES
        out = np.frombuffer(bytearray(self._pending_raw[:k].tobytes()), dtype=FRAME_DTYPE)
        self._pending_raw[:k] = 0
        self._n_pending = 0
        return out

    @property
    def dropped_frames(self) -> int:
        return 0

    def kill(self) -> None:
        self._dead = True

    def check(self) -> str | None:
        return "renderer stopped showing frames (it died)" if self._dead else None

    def stop(self) -> None:
        self._pending_raw[: self._n_pending] = 0
        self._n_pending = 0
