"""Reading the newest volume from the session file while the writer records it (SWMR).

The engine hands the GUI its fast streams and its events directly (events never
come from the file: a read that races the writer could lose them). Volumes come
from the file only when the engine has not handed one over for a while.

The file is opened afresh for every read (about 2 ms): an SWMR reader that
stays open keeps the file's end-of-allocation from when it opened. A read that
races the writer's flush fails with ``OSError`` now and then; it is retried on
the next tick, and only a run of failures is reported.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from rig.core.errors import SessionFileError
from rig.session import ATTEMPTS_LIVE, FORMAT, open_swmr_bounded

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
            # bounded SWMR reads (rig/session/_damage.py): never wait on a damaged file
            with open_swmr_bounded(self.path, ATTEMPTS_LIVE) as f:
                if str(f.attrs.get("format", "")) != FORMAT:
                    raise SessionFileError(f"{self.path}: not a zaprig session file")
                volume = self._volume(f)
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

    def _volume(self, f: h5py.File) -> tuple[int, np.ndarray] | None:
        raw = f["volumes/raw"]
        t = raw.shape[0] - 1
        if t < 0 or t == self.last_volume:
            return None
        s = volume_stride(raw.shape[2:], self.max_side)
        vol = raw[t, :, ::s, ::s] if s > 1 else raw[t]
        self.last_volume = t
        return t, np.asarray(vol)
