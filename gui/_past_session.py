"""Reading a finished (or interrupted) session file for the app's views, read-only.

"Open session…" shows a past file in the same views a live session uses: the
last seconds of the tail signal and of the stimulus, every bout, the last
volume, and the event log. Only those slices are read, so a two-hour file opens
as fast as a short one. The file is opened read-only through the project's one
reader (``rig.session.SessionReader``) and closed before this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.swims import BOUT_DTYPE
from gui._session_file import volume_stride
from rig.events import Event
from rig.session import ROW, SessionReader, read_table
from stimuli.state import FRAME_DTYPE

__all__ = ["PastSession", "read_past_session"]


@dataclass(frozen=True, slots=True)
class PastSession:
    path: Path
    sample_rate_hz: float
    s0: int  # first sample of ``tail``
    tail: np.ndarray  # (n, 2) V
    frames: np.ndarray  # FRAME_DTYPE, the frames shown in that stretch
    bouts: np.ndarray  # BOUT_DTYPE, all of them
    condition: int  # 0-based condition at the end (-1: outside the protocol)
    condition_names: list[str]
    volume: tuple[int, np.ndarray] | None
    events: list[Event]


def _frames(group: object, lo: int) -> np.ndarray:
    table = read_table(group)  # type: ignore[arg-type]
    n = len(table.get("flip_sample", ()))
    out = np.zeros(n, dtype=FRAME_DTYPE)
    for name in FRAME_DTYPE.names or ():
        if name in table:
            out[name] = table[name]
    # the frame in force at ``lo`` and every later one
    k = max(0, int(np.searchsorted(out["flip_sample"], lo, side="right")) - 1)
    return out[k:]


def read_past_session(path: str | Path, window_s: float, max_side: int = 256) -> PastSession:
    """The slices of a session file the live views draw (raises ``SessionFileError``)."""
    p = Path(path)
    with SessionReader(p) as r:
        fs, n = r.sample_rate_hz, r.n_samples
        s0 = max(0, n - int(window_s * fs))
        rows = r.stream[s0:n] if n else np.zeros((0, 10), np.float32)
        tail = np.asarray(rows[:, [ROW["tail_left"], ROW["tail_right"]]], dtype=np.float32)
        condition = int(rows[-1, ROW["condition"]]) - 1 if len(rows) else -1
        frames = _frames(r.file["stimulus/frames"], s0)
        b = r.bouts
        bouts = np.zeros(len(b.get("start_sample", ())), dtype=BOUT_DTYPE)
        for name in BOUT_DTYPE.names or ():
            if name in b:
                bouts[name] = b[name]
        names = [str(c.get("name", "")) for c in r.protocol.get("conditions", [])]
        if not names:
            names = list(r.condition_names)
        t = r.shape_tzyx[0] - 1
        volume = None
        if t >= 0:
            volume = (t, r.volume(t, volume_stride(r.shape_tzyx[2:], max_side)))
        events = r.events
    return PastSession(p, fs, s0, tail, frames, bouts, condition, names, volume, events)
