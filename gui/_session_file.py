"""Reading the session file while the writer process records it (HDF5 SWMR), for live views.

The engine hands the GUI its fast streams directly; what only the file has (the
event log, as recorded) and volumes, when the engine does not hand them over,
are read here about once a second.

The file is opened afresh for every read (about 2 ms): an SWMR reader that
stays open keeps the file's end-of-allocation from when it opened, and the
event table's strings (variable-length, in the file's global heap) written
after that cannot be read through it ("address of object past end of
allocation"). A read that races the writer's flush fails with ``OSError`` now
and then; it is retried on the next tick, and only a run of failures is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from rig.errors import SessionFileError
from rig.session import FORMAT

__all__ = ["EventRow", "LiveRead", "LiveSessionFile", "volume_stride"]

#: Consecutive failed reads before the GUI says that the file cannot be read.
FAILURES_TO_REPORT = 5
_EVENT_COLUMNS = ("sample", "wall_time", "kind", "message")


@dataclass(frozen=True, slots=True)
class EventRow:
    sample: int
    wall_time: float
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class LiveRead:
    events: list[EventRow] = field(default_factory=list)
    volume: tuple[int, np.ndarray] | None = None  # (t, subsampled (z, y, x))


def volume_stride(shape_yx: tuple[int, ...], max_side: int) -> int:
    """Spatial step that keeps a preview at most ``max_side`` pixels on its long side."""
    return max(1, -(-max(shape_yx) // max_side))


class LiveSessionFile:
    """New events and the newest volume of a session file that may still be growing."""

    def __init__(self, path: str | Path, max_side: int = 256) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.events_read = 0
        self.last_volume = -1
        self.failures = 0

    def read(self, want_volume: bool = True) -> LiveRead:
        """Events recorded since the last read and (if asked) the newest volume, if new."""
        if not self.path.exists():
            return LiveRead()
        try:
            with h5py.File(self.path, "r", libver="latest", swmr=True) as f:
                if str(f.attrs.get("format", "")) != FORMAT:
                    raise SessionFileError(f"{self.path}: not a zaprig session file")
                events = self._events(f)
                volume = self._volume(f) if want_volume else None
        except OSError as e:
            self.failures += 1
            if self.failures % FAILURES_TO_REPORT == 0:
                raise SessionFileError(
                    f"{self.path}: {self.failures} live reads failed in a row ({e}); the "
                    "recording continues, the live view of the file is paused"
                ) from None
            return LiveRead()
        self.failures = 0
        return LiveRead(events, volume)

    def _events(self, f: h5py.File) -> list[EventRow]:
        g = f["events"]
        # the writer grows the columns one after another: only rows every column has are whole
        n = min(g[c].shape[0] for c in _EVENT_COLUMNS)
        a = self.events_read
        if n <= a:
            return []
        samples = g["sample"][a:n]
        walls = g["wall_time"][a:n]
        kinds = g["kind"].asstr()[a:n]
        messages = g["message"].asstr()[a:n]
        self.events_read = n
        return [
            EventRow(int(s), float(w), str(k), str(m))
            for s, w, k, m in zip(samples, walls, kinds, messages, strict=True)
        ]

    def _volume(self, f: h5py.File) -> tuple[int, np.ndarray] | None:
        raw = f["volumes/raw"]
        t = raw.shape[0] - 1
        if t < 0 or t == self.last_volume:
            return None
        s = volume_stride(raw.shape[2:], self.max_side)
        vol = raw[t, :, ::s, ::s] if s > 1 else raw[t]
        self.last_volume = t
        return t, np.asarray(vol)
