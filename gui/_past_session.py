"""Reading a finished (or interrupted) session file for the app's views, read-only.

"Open session…" shows a past file in the same views a live session uses: the
last seconds of the tail signal and of the stimulus, every bout, the last
volume, and the event log. Only those slices are read, so a two-hour file opens
as fast as a short one. The file is opened read-only through the project's one
reader (``rig.session.open_session``) and closed before this returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.swims import BOUT_DTYPE
from gui._session_file import volume_stride
from rig.events import Event
from rig.session import ROW, open_session, read_table
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
    with open_session(p) as f:
        stream = f["stimuli_and_ephys"]
        fs = float(stream.attrs["sample_rate_hz"])
        n = int(stream.shape[0])
        s0 = max(0, n - int(window_s * fs))
        rows = stream[s0:n] if n else np.zeros((0, 10), np.float32)
        tail = np.asarray(rows[:, [ROW["tail_left"], ROW["tail_right"]]], dtype=np.float32)
        condition = int(rows[-1, ROW["condition"]]) - 1 if len(rows) else -1
        frames = _frames(f["stimulus/frames"], s0)
        b = read_table(f["behavior/bouts"])
        bouts = np.zeros(len(b.get("start_sample", ())), dtype=BOUT_DTYPE)
        for name in BOUT_DTYPE.names or ():
            if name in b:
                bouts[name] = b[name]
        conds = read_table(f["protocol/conditions"])
        proto = json.loads(str(f.attrs.get("protocol", "{}")))
        names = [str(c.get("name", "")) for c in proto.get("conditions", [])]
        if not names:
            names = [str(x) for x in conds.get("name", [])]
        raw = f["volumes/raw"]
        volume = None
        if raw.shape[0]:
            t = raw.shape[0] - 1
            s = volume_stride(raw.shape[2:], max_side)
            volume = (t, np.asarray(raw[t, :, ::s, ::s]))
        ev = read_table(f["events"])
        n_ev = len(ev.get("sample", []))
        sources = ev.get("source", ["engine"] * n_ev)  # files before events had a source
        events = [
            Event(int(s_), float(w), str(k), str(m), str(src))
            for s_, w, k, m, src in zip(
                ev.get("sample", []),
                ev.get("wall_time", []),
                ev.get("kind", []),
                ev.get("message", []),
                sources,
                strict=True,
            )
        ]
    return PastSession(p, fs, s0, tail, frames, bouts, condition, names, volume, events)
