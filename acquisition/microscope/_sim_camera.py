"""An externally triggered light-sheet camera written in Python for pymmcore-plus's ``UniMMCore``.

It lets the Micro-Manager backend run through a real MMCore (its sequence
acquisition, circular buffer and metadata) with no hardware. Like a real
sCMOS in external-trigger mode, it exposes one frame per trigger pulse and
nothing otherwise; the pulses arrive through :meth:`TriggeredCamera.fire`
(or by writing the ``SimulatedTriggerPulses`` property), which stands in for
the TTL cable from the DAQ.

Each frame is filled with its hardware frame number + 1 (so a frame that lands
in the wrong plane is visible, and 0 means "never written"), and carries the
camera's own frame counter and timestamp in its metadata, as sCMOS cameras do.
Faults to exercise the backend's checks:

* ``drop_frames``: exposures that are counted but never delivered (a frame lost
  in transfer: a gap in the frame counter);
* ``spurious_pulses_after``: trigger pulses followed by a second, spurious pulse
  (a noisy trigger line: one more frame than the DAQ sent);
* ``stop_after``: the camera goes silent after this many exposures (a stall).

In ``Internal`` trigger mode it free-runs at its exposure time, as a real
camera left in the wrong mode would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice, pymm_property

__all__ = ["CAMERA_TIME_KEY", "FRAME_COUNTER_KEY", "TriggeredCamera"]

#: Metadata key of the camera's hardware frame counter (exposures since arming, from 0).
FRAME_COUNTER_KEY = "CameraFrameCounter"
#: Metadata key of the camera's own exposure timestamp, microseconds since arming.
CAMERA_TIME_KEY = "CameraTimestamp-us"

TRIGGER_MODES = ("External", "Internal")


def _parse_ints(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.replace(";", ",").split(",") if part.strip())


def _format_ints(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


class TriggeredCamera(CameraDevice):
    """A 16-bit camera that exposes one frame per external trigger pulse."""

    def __init__(
        self,
        width: int = 128,
        height: int = 80,
        *,
        drop_frames: Iterable[int] = (),
        spurious_pulses_after: Iterable[int] = (),
        stop_after: int | None = None,
    ) -> None:
        super().__init__()
        self._shape = (int(height), int(width))
        self._exposure_ms = 5.0
        self._mode = "External"
        self._drop = frozenset(drop_frames)
        self._spurious = frozenset(spurious_pulses_after)
        self._stop_after = stop_after
        self._cond = threading.Condition()
        self._pending = 0  # pulses received and not yet exposed
        self._pulses = 0  # real pulses from the DAQ since arming
        self._counter = 0  # exposures since arming: the hardware frame counter
        self._armed = False
        self._generation = 0
        self._t0_ns = time.perf_counter_ns()

    # ------------------------------------------------------------------ the wire
    def fire(self, n: int = 1) -> None:
        """``n`` trigger pulses arrive on the camera's trigger input."""
        if n <= 0:
            return
        with self._cond:
            for _ in range(n):
                self._pending += 1
                if self._pulses in self._spurious:
                    self._pending += 1
                self._pulses += 1
            self._cond.notify_all()

    @property
    def pulses_received(self) -> int:
        """Real trigger pulses since the sequence was armed."""
        with self._cond:
            return self._pulses

    @property
    def exposures(self) -> int:
        """Exposures made since arming: the hardware frame counter's next value."""
        with self._cond:
            return self._counter

    # ------------------------------------------------------------- MM properties
    @pymm_property(name="TriggerMode", allowed_values=TRIGGER_MODES, property_type=str)
    def trigger_mode(self) -> str:
        """External: one frame per trigger pulse. Internal: free-running."""
        return self._mode

    @trigger_mode.setter  # type: ignore[no-redef]
    def trigger_mode(self, value: str) -> None:
        with self._cond:
            self._mode = str(value)
            self._cond.notify_all()

    @pymm_property(name="SimulatedTriggerPulses", property_type=int, limits=(0, 1_000_000))
    def simulated_trigger_pulses(self) -> int:
        """Read: pulses received since arming. Write n: n pulses arrive (the simulated wire)."""
        return self.pulses_received

    @simulated_trigger_pulses.setter  # type: ignore[no-redef]
    def simulated_trigger_pulses(self, value: int) -> None:
        self.fire(int(value))

    @pymm_property(name="SimulatedDropFrames", property_type=str)
    def simulated_drop_frames(self) -> str:
        """Exposure numbers whose frames are lost after exposure, e.g. ``"3,17"``."""
        return _format_ints(self._drop)

    @simulated_drop_frames.setter  # type: ignore[no-redef]
    def simulated_drop_frames(self, value: str) -> None:
        self._drop = _parse_ints(str(value))

    @pymm_property(name="SimulatedStopAfter", property_type=int, limits=(-1, 2**31 - 1))
    def simulated_stop_after(self) -> int:
        """The camera goes silent after this many exposures (-1: never)."""
        return -1 if self._stop_after is None else self._stop_after

    @simulated_stop_after.setter  # type: ignore[no-redef]
    def simulated_stop_after(self, value: int) -> None:
        v = int(value)
        self._stop_after = None if v < 0 else v

    # ------------------------------------------------------------ CameraDevice
    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self._exposure_ms = float(exposure)

    def shape(self) -> tuple[int, int]:
        return self._shape

    def dtype(self) -> DTypeLike:
        return np.uint16

    def shutdown(self) -> None:
        with self._cond:
            self._armed = False
            self._cond.notify_all()

    def start_sequence(
        self,
        n: int | None,
        get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray],
    ) -> Iterator[Mapping[str, Any]]:
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._pending = self._pulses = self._counter = 0
            self._armed = True
            self._t0_ns = time.perf_counter_ns()
        return self._frames(n, get_buffer, generation)

    def _frames(
        self,
        n: int | None,
        get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray],
        generation: int,
    ) -> Iterator[Mapping[str, Any]]:
        # UniMMCore iterates this generator on its AcquisitionThread and stops a
        # sequence by setting that thread's ``stop_event``; a camera waiting for
        # a trigger must watch it, or stopSequenceAcquisition would wait 2 s and
        # leave the thread behind.
        stop = getattr(threading.current_thread(), "stop_event", None)
        produced = 0
        while n is None or produced < n:
            exposure = self._next_exposure(stop, generation)
            if exposure is None:
                return
            k, t_us = exposure
            if k in self._drop or (self._stop_after is not None and k >= self._stop_after):
                continue
            buf = get_buffer(self._shape, np.uint16)
            buf.fill((k % 65535) + 1)
            yield {FRAME_COUNTER_KEY: str(k), CAMERA_TIME_KEY: str(t_us)}
            produced += 1

    def _next_exposure(
        self, stop: threading.Event | None, generation: int
    ) -> tuple[int, int] | None:
        """Wait for the next exposure: (frame counter, timestamp in µs), or None when stopped."""
        with self._cond:
            while True:
                if (stop is not None and stop.is_set()) or not self._armed:
                    return None
                if generation != self._generation:  # re-armed by a newer sequence
                    return None
                if self._mode == "External":
                    if self._pending > 0:
                        self._pending -= 1
                        break
                    # Short waits so a stop request is seen within ~20 ms.
                    self._cond.wait(0.02)
                else:
                    self._cond.wait(max(self._exposure_ms, 1.0) / 1000.0)
                    if self._mode != "External":
                        break
            k = self._counter
            self._counter += 1
            t_us = (time.perf_counter_ns() - self._t0_ns) // 1000
        return k, t_us
