"""The microscope interface: a camera in a hardware-triggered sequence, assembled into volumes.

The DAQ triggers every plane; the camera delivers one frame per trigger. A
microscope backend writes each frame straight into the volume buffer the
writer lends it (:class:`VolumeSink`), so full-size volumes are never copied in
the engine, and reports frames that went missing or arrived extra as events.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from acquisition._device import Device
from rig.core.timeline import Timeline

__all__ = ["Microscope", "MicroscopeEvent", "VolumeSink"]


@dataclass(frozen=True, slots=True)
class MicroscopeEvent:
    """Something the engine must log (and, for ``fault``, act on)."""

    kind: Literal["info", "warning", "fault"]
    message: str
    volume: int = -1
    #: The DAQ sample at which it was found, when the camera knows it (the simulated one
    #: does, on the loop lane); -1: logged at the loop's sample when the image lane reports
    #: it, which in virtual time can be a volume or two later.
    sample: int = -1


class VolumeSink(Protocol):
    """Where finished volumes go (the writer's shared-memory ring)."""

    def acquire(self, t: int) -> np.ndarray | None:
        """A writable uint16 (z, y, x) buffer for volume ``t``, or None when full (drop it)."""

    def commit(self, t: int, missing_planes: tuple[int, ...] = ()) -> None:
        """Hand volume ``t`` to the writer; ``missing_planes`` were not delivered (left zero)."""

    def discard(self, t: int) -> None:
        """Give back the buffer of a volume that will not be committed."""


class Microscope(Device):
    """A light-sheet camera driven by external (DAQ) triggers."""

    @property
    @abstractmethod
    def shape_zyx(self) -> tuple[int, int, int]:
        """Volume shape."""

    @abstractmethod
    def open(self) -> None:
        """Connect to the camera; raise DeviceError if it is missing."""

    @abstractmethod
    def start(self, timeline: Timeline, sink: VolumeSink) -> None:
        """Arm a triggered sequence of ``timeline.n_volumes * planes`` frames."""

    @abstractmethod
    def on_triggers(self, plane_index: np.ndarray, samples: np.ndarray) -> None:
        """The DAQ fired these plane triggers (global plane index, sample) during the last chunk.

        A simulated camera exposes its frames here; a real camera is triggered by
        the wire and may use this only to check what it received.
        """

    @abstractmethod
    def poll(self) -> list[MicroscopeEvent]:
        """Move arrived frames into volumes; report missing/extra frames and faults.

        Runs on the image lane (rig/lanes), beside the loop; :meth:`on_triggers` runs on
        the loop lane and must stay cheap (bookkeeping, never image data).
        """

    #: Seconds this microscope spent making or moving frames on the image lane, as timed
    #: by the clock given to :meth:`use_cost_clock` (0 where it keeps no count).
    render_seconds: float = 0.0

    def use_cost_clock(self, clock: Callable[[], float]) -> None:
        """Time its own work (:attr:`render_seconds`) with ``clock`` (the benchmarks' cost
        breakdown: a thread's CPU time); a microscope that keeps no count ignores it."""

    @property
    def backlog(self) -> int:
        """Volumes triggered but not yet moved by :meth:`poll` (virtual time keeps it small)."""
        return 0

    @property
    @abstractmethod
    def volumes_done(self) -> int:
        """Volumes committed to the sink so far (including ones with missing planes)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the sequence; commit what is complete."""

    @abstractmethod
    def close(self) -> None:
        """Release the camera."""
