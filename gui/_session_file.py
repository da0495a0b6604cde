"""Reading the newest volume from the session file while the writer records it (SWMR).

The engine hands the GUI its fast streams and its events directly (events never
come from the file: a read that races the writer could lose them). Volumes come
from the file only when the engine has not handed one over for a while.

The file is opened afresh for every read (about 2 ms), through the one reader
(``rig.session.SessionReader.live``: bounded SWMR reads, the format checked):
an SWMR reader that stays open keeps the file's end-of-allocation from when it opened. A read that
races the writer's flush fails with ``OSError`` now and then; it is retried on
the next tick, and only a run of failures is reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rig.core.errors import SessionFileError
from rig.session import SessionReader

__all__ = ["LiveSessionFile", "volume_stride"]

#: Consecutive failed reads before the GUI says that the file cannot be read.
FAILURES_TO_REPORT = 5


def volume_stride(shape_yx: tuple[int, ...], max_side: int) -> int:
    """Spatial step that keeps a preview at most ``max_side`` pixels on its long side."""
    return max(1, -(-max(shape_yx) // max_side))


class LiveSessionFile:
    """The newest volume of a session file that may still be growing."""

    def __init__(self, path: str | Path, max_side: int = 256) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.last_volume = -1
        self.failures = 0

    def read_volume(self) -> tuple[int, np.ndarray] | None:
        """(t, subsampled (z, y, x)) of the newest volume, if there is a new one."""
        if not self.path.exists():
            return None
        try:
            # bounded SWMR reads (never wait on a damaged file); a foreign one is refused
            with SessionReader.live(self.path) as r:
                volume = self._volume(r)
        except (OSError, SessionFileError) as e:
            self.failures += 1
            if self.failures % FAILURES_TO_REPORT == 0:
                raise SessionFileError(
                    f"{self.path}: {self.failures} live reads failed in a row ({e}); the "
                    "recording continues, the live view of the file is paused"
                ) from None
            return None
        self.failures = 0
        return volume

    def _volume(self, r: SessionReader) -> tuple[int, np.ndarray] | None:
        t_n, _, y, x = r.shape_tzyx
        t = t_n - 1
        if t < 0 or t == self.last_volume:
            return None
        vol = r.volume(t, volume_stride((y, x), self.max_side))
        self.last_volume = t
        return t, vol
