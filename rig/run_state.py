"""The run's states and the status snapshot the runner gives progress bars and the GUI."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["RunState", "RunStatus"]


class RunState(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETE = "complete"
    #: Ended early on purpose, at the end of a condition block (the blocks recorded are whole).
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAILED = "failed"


#: The file's ``status`` attribute for each final state.
FILE_STATUS = {
    RunState.COMPLETE: "complete",
    RunState.STOPPED: "stopped",
    RunState.ABORTED: "aborted",
    RunState.FAILED: "failed",
}


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A snapshot for progress bars and the GUI's session bar."""

    state: RunState
    sample: int
    end_sample: int
    volumes_acquired: int
    volumes_expected: int
    condition: int
    condition_name: str
    bouts: int
    dropped_frames: int
    dropped_volumes: int
    writer_fill: float
    warnings: int
    path: str
    sample_rate_hz: float = 6000.0
    #: Camera planes never delivered (left as zeros in their volume), as the file counts them.
    dropped_planes: int = 0
    #: Faults only (``warnings`` counts warnings only).
    faults: int = 0
    #: What the laser driver last confirmed: "on", "off", or "unknown" (it may still be on).
    laser: str = "off"

    @property
    def elapsed_s(self) -> float:
        return self.sample / self.sample_rate_hz

    @property
    def remaining_s(self) -> float:
        return max(0, self.end_sample - self.sample) / self.sample_rate_hz
