"""Reading a finished (or interrupted) session file for the app's views, read-only.

"Open session…" shows a past file in the same views a live session uses: the
last minute of the tail signal, its swim power (the online detector replayed
over it, with a lead for its threshold), the stimulus, every bout, the last
volume, and the event log. Only those slices are read, so a two-hour file opens
as fast as a short one. The file is opened read-only through the project's one
reader (``rig.session.SessionReader``) and closed before this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.swims import BOUT_DTYPE, OnlineSwimDetector
from gui._session_file import volume_stride
from rig.core.events import Event
from rig.session import ROW, SessionReader, read_table
from stimuli.state import FRAME_DTYPE

__all__ = ["PastSession", "read_past_session"]

#: Seconds before the shown stretch fed to the detector first (its threshold window is 10 s).
LEAD_S = 12.0


@dataclass(frozen=True, slots=True)
class PastSession:
    path: Path
    sample_rate_hz: float
    s0: int  # first sample of ``tail``
    tail: np.ndarray  # (n, 2) V
    power: np.ndarray  # (e, 2) swim power in threshold units, as the live view draws it
    power_samples: np.ndarray  # (e,) sample of each power value
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


def _swim_power(tail: np.ndarray, t0: int, s0: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """The online detector replayed over ``tail`` (from sample ``t0``): power from ``s0`` on."""
    det = OnlineSwimDetector(fs)
    power, samples = [], []
    step = 600  # the detector's output does not depend on the chunk size
    for a in range(0, len(tail), step):
        det.process(tail[a : a + step].astype(np.float64), t0 + a)
        if len(det.last_eval_samples):
            power.append(det.last_power)
            samples.append(det.last_eval_samples)
    if not power:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    p, s = np.concatenate(power).astype(np.float32), np.concatenate(samples)
    keep = s >= s0
    return p[keep], s[keep]


def read_past_session(path: str | Path, window_s: float, max_side: int = 256) -> PastSession:
    """The slices of a session file the live views draw (raises ``SessionFileError``)."""
    p = Path(path)
    with SessionReader(p) as r:
        fs, n = r.sample_rate_hz, r.n_samples
        s0 = max(0, n - int(window_s * fs))
        t0 = max(0, s0 - int(LEAD_S * fs))  # the detector's threshold needs a lead
        rows = r.stream[t0:n] if n else np.zeros((0, 10), np.float32)
        lead_tail = np.asarray(rows[:, [ROW["tail_left"], ROW["tail_right"]]], dtype=np.float32)
        power, power_samples = _swim_power(lead_tail, t0, s0, fs)
        rows = rows[s0 - t0 :]
        tail = lead_tail[s0 - t0 :]
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
    return PastSession(
        p, fs, s0, tail, power, power_samples, frames, bouts, condition, names, volume, events
    )
