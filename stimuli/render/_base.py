"""The renderer interface: shows frames on the projector (or nowhere) and reports them.

The engine :meth:`publish` es the newest closed-loop state after every DAQ chunk;
the renderer draws each frame from the newest state it has at that moment and
reports every displayed frame (with its flip time on the DAQ clock) through
:meth:`collect`. It never waits for the engine, and the engine never waits for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from stimuli.closed_loop import LoopState
from stimuli.schedule import Schedule

__all__ = ["Renderer"]


class Renderer(ABC):
    @abstractmethod
    def start(self, timeline: Schedule, sample_rate_hz: float) -> None:
        """Open the window (if any) and begin showing the protocol."""

    @abstractmethod
    def publish(self, loop: LoopState, sample: int, chunk_samples: int) -> None:
        """The closed-loop state as of DAQ ``sample`` (the end of the newest chunk)."""

    @abstractmethod
    def collect(self) -> np.ndarray:
        """Frames displayed since the last call (FRAME_DTYPE records, by flip_sample)."""

    @property
    @abstractmethod
    def dropped_frames(self) -> int:
        """Flips that missed their refresh slot so far."""

    def kill(self) -> None:
        """Fault injection: die as a crashed renderer would (the engine must notice)."""
        raise NotImplementedError(f"{type(self).__name__} does not support fault injection")

    def check(self) -> str | None:
        """A fault message if the renderer has died, else None."""
        return None

    @abstractmethod
    def stop(self) -> None:
        """Show black and close the window."""
