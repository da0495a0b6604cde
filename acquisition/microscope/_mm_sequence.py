"""Reading a triggered camera sequence: MMCore's circular buffer, drained into volumes.

Split from :mod:`acquisition.microscope._mmcore` by job: :class:`SequenceReader` is the part
of :class:`~acquisition.microscope._mmcore.MMCoreMicroscope` that runs while the camera
streams: it pops every frame waiting in the circular buffer, works out its frame number
(the camera's hardware counter, Micro-Manager's ImageNumber, or arrival order), hands it to
the volume assembler, records it, and checks for extra frames, a stalled camera, an
overflowed buffer and frames that never came. The microscope class owns the core, the
config and the life cycle (open, start, poll, stop) and sets the state read here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

import numpy as np

from acquisition.microscope._assembler import VolumeAssembler, describe_frames
from acquisition.microscope._base import MicroscopeEvent
from acquisition.microscope._mm_connect import MMCore
from rig.core.config import MicroscopeConfig

__all__ = ["FRAME_RECORD_DTYPE", "SequenceReader"]

#: One row per armed frame: what arrived, with the camera's own numbers.
FRAME_RECORD_DTYPE = np.dtype(
    [
        ("received", "?"),
        ("counter", "<i8"),  # frame number used to place it (hardware counter or ImageNumber)
        ("camera_time_us", "<f8"),  # the camera's timestamp, NaN if it gives none
        ("core_time_ms", "<f8"),  # MMCore's ElapsedTime-ms when it received the frame
    ]
)

_IMAGE_NUMBER = "ImageNumber"
_ELAPSED = "ElapsedTime-ms"


class SequenceReader:
    """The sequence-reading half of :class:`~acquisition.microscope._mmcore.MMCoreMicroscope`.

    A mixin: the microscope sets the core, the config and the per-run state declared here.
    """

    # Set by the microscope at construction.
    _core: MMCore
    _cfg: MicroscopeConfig
    _counter_key: str | None
    _counter_origin: int | None
    _timestamp_key: str | None
    _stall_s: float
    _settle_s: float
    _monotonic: Callable[[], float]

    # Per-run state, reset by _reset_run_state() at every start().
    _z: int
    _n_total: int
    _plane_samples: np.ndarray
    _fs: float
    _records: np.ndarray
    _assembler: VolumeAssembler | None  # frames -> volumes (shared with every camera)
    _received: int  # frames popped from the core
    _accounted: int  # frame numbers seen so far: highest + 1
    _index_key: str | None  # the metadata key frames are numbered by ("" = arrival order)
    _index_base: int
    _n_triggered: int  # triggers the DAQ reported (global plane index + 1)
    _latest_sample: int  # DAQ sample of the newest reported trigger
    _extra: int  # frames beyond the triggers (spurious pulses)
    _extra_reported: int
    _ahead_since: int | None  # DAQ sample since when frames outnumber triggers
    _stall_reported: bool
    _overflow_reported: bool
    _link_fault_reported: bool
    _last_frame_wall: float

    @property
    def _located(self) -> bool:
        """Whether frames are placed by the camera's own counter (losses located exactly)."""
        return self._counter_key is not None and self._index_key == self._counter_key

    def _drain(self, events: list[MicroscopeEvent]) -> int:
        """Move every frame waiting in the circular buffer into its volume; return how many."""
        n = 0
        try:
            while self._core.getRemainingImageCount() > 0:
                image, md = self._core.popNextImageAndMD()
                self._take(image, md, events)
                n += 1
        except Exception as e:
            if not self._link_fault_reported:
                self._link_fault_reported = True
                events.append(
                    MicroscopeEvent("fault", f"lost the camera's frames from Micro-Manager: {e}")
                )
        return n

    def _frame_number(self, md: Mapping[str, Any], events: list[MicroscopeEvent]) -> int:
        if self._index_key is None:
            if self._counter_key is not None and self._counter_key in md:
                self._index_key = self._counter_key
                first = int(md[self._counter_key])
                self._index_base = first if self._counter_origin is None else self._counter_origin
                how = f"the camera's hardware frame counter ({self._counter_key!r})"
            elif _IMAGE_NUMBER in md:
                self._index_key = _IMAGE_NUMBER
                how = (
                    "Micro-Manager's ImageNumber (no hardware frame counter in the metadata: a "
                    "trigger the camera misses can be counted but not located)"
                )
            else:
                self._index_key = ""
                how = "arrival order (no frame numbers in the metadata)"
            events.append(MicroscopeEvent("info", f"frames are placed by {how}"))
        if self._index_key:
            with suppress(KeyError, TypeError, ValueError):
                return int(md[self._index_key]) - self._index_base
        return self._received - 1

    def _take(
        self, image: np.ndarray, md: Mapping[str, Any], events: list[MicroscopeEvent]
    ) -> None:
        self._received += 1
        i = self._frame_number(md, events)
        h, w = self._cfg.height, self._cfg.width
        if image.shape != (h, w):
            events.append(
                MicroscopeEvent(
                    "fault",
                    f"the camera sent a {image.shape} frame; the rig config expects ({h}, {w})",
                )
            )
            return
        assert self._assembler is not None
        if not self._assembler.put(i, image):
            return
        self._accounted = max(self._accounted, i + 1)
        rec = self._records[i]
        rec["received"] = True
        rec["counter"] = i + self._index_base
        rec["camera_time_us"] = self._float_tag(md, self._timestamp_key)
        rec["core_time_ms"] = self._float_tag(md, _ELAPSED)

    @staticmethod
    def _float_tag(md: Mapping[str, Any], key: str | None) -> float:
        if key is None:
            return float("nan")
        try:
            return float(md[key])
        except (KeyError, TypeError, ValueError):
            return float("nan")

    def _check_extra(self, events: list[MicroscopeEvent], *, final: bool) -> None:
        """More frames than triggers, for longer than a frame's normal latency."""
        surplus = self._accounted - self._n_triggered - self._extra_reported
        if surplus <= 0:
            self._ahead_since = None
            return
        if self._ahead_since is None:
            self._ahead_since = self._latest_sample
        settled = self._latest_sample - self._ahead_since >= self._settle_s * self._fs
        if not (settled or final):
            return
        self._extra_reported += surplus
        self._extra += surplus
        self._ahead_since = None
        last = self._accounted - 1
        events.append(
            MicroscopeEvent(
                "warning",
                f"extra frame{'s' if surplus > 1 else ''}: the camera made {self._accounted} "
                f"frames for {self._n_triggered} triggers ({surplus} more, by "
                f"{describe_frames([last], self._z)}); a spurious trigger shifts the planes "
                "after it: check the trigger cable",
                volume=last // self._z,
            )
        )

    def _check_stall(self, events: list[MicroscopeEvent]) -> None:
        if self._stall_reported or self._n_triggered <= self._accounted:
            return
        next_trigger = int(self._plane_samples[self._accounted])
        daq_wait_s = (self._latest_sample - next_trigger) / self._fs
        wall_wait_s = self._monotonic() - self._last_frame_wall
        if daq_wait_s > self._stall_s and wall_wait_s > self._stall_s:
            self._stall_reported = True
            waiting = self._n_triggered - self._accounted
            last = (
                f"the last frame was {describe_frames([self._accounted - 1], self._z)}"
                if self._accounted
                else "no frame has arrived since the sequence started"
            )
            events.append(
                MicroscopeEvent(
                    "fault",
                    f"camera stopped delivering frames: none for {wall_wait_s:.1f} s while the "
                    f"DAQ sent {waiting} triggers ({last}); check the camera, its trigger cable "
                    "and that it is in external trigger mode",
                    volume=self._accounted // self._z,
                )
            )

    def _check_overflow(self, events: list[MicroscopeEvent]) -> None:
        if self._overflow_reported:
            return
        try:
            overflowed = self._core.isBufferOverflowed()
        except Exception:
            return  # a broken link is reported by _drain
        if overflowed:
            self._overflow_reported = True
            events.append(
                MicroscopeEvent(
                    "fault",
                    "Micro-Manager's circular buffer overflowed and the sequence stopped: frames "
                    "were lost. Give it more memory (Tools > Options > Sequence buffer size) and "
                    "make sure nothing else is holding the engine up",
                )
            )

    def _report_undelivered(self, events: list[MicroscopeEvent]) -> None:
        """At stop: triggers that never got a frame."""
        if self._n_triggered <= self._accounted:
            return
        if self._located:
            return  # the assembler names the missing planes when it settles their volumes
        lost = list(range(self._accounted, self._n_triggered))
        what = (
            f"{len(lost)} frame{'s' if len(lost) > 1 else ''} (which planes is unknown "
            "without a hardware frame counter: the planes after a missed trigger were "
            "filled one frame early)"
        )
        events.append(
            MicroscopeEvent(
                "warning",
                f"missing frames at stop: {what} were triggered but never arrived",
                volume=lost[0] // self._z,
            )
        )
