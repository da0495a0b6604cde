"""Reading a finished (or interrupted) session file for the app's views, read-only.

"Open session…" shows a past file in the same views a live session uses, over
the whole session: both tail channels, their swim power (the online detector
replayed over the recording), the stimulus velocity and gain, every bout, the
last volume, and the event log. The person scrolls and zooms over it.

A two-hour file holds 43 million rows, so the whole session is drawn from an
*overview*: the minimum and maximum of each channel (tail and swim power) in
``OVERVIEW_BINS`` equal stretches, which keeps every swim burst's height at any
zoom. It is built block by block (:meth:`SessionOverview.step`): the app reads
what fits a short time budget when the file opens and the rest on a timer, so
the window shows the file at once and fills in the overview while it stays
responsive. A stretch of at most ``ZOOM_S`` seconds is read from the file at
full resolution (:meth:`PastSession.read_range`), so zooming in shows the file's
own samples. Every read goes through the project's one reader
(``rig.session.SessionReader``), opened read-only and closed after each read.

Swim power is the online detector replayed over the whole recording with the
session's own swim rule and chunk size (its threshold is re-estimated per chunk,
so another chunk size gives other values): the power the live view drew. It is
kept at the detector's full rate (one value per 10 samples: 35 MB for 2 h).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.swims import BOUT_DTYPE, OnlineSwimDetector, SwimParams
from gui._session_file import volume_stride
from rig.core.events import Event
from rig.session import ROW, SessionReader, read_table
from stimuli.state import FRAME_DTYPE

__all__ = [
    "OVERVIEW_BINS",
    "ZOOM_S",
    "PastSession",
    "SessionOverview",
    "read_past_session",
]

#: Min/max stretches of the whole-session overview (a 2 h session: 1.8 s each).
OVERVIEW_BINS = 4000
#: Visible stretches at most this long are read from the file at full resolution.
ZOOM_S = 120.0
#: Samples read per overview step (5 s at 6 kHz: ~15 ms of work, most of it the detector).
BLOCK_SAMPLES = 30_000
#: Time spent on the overview when the file opens; the rest is read on the app's timer.
OPEN_BUDGET_S = 0.3
TAIL = [ROW["tail_left"], ROW["tail_right"]]


def _frames(group: object) -> np.ndarray:
    table = read_table(group)  # type: ignore[arg-type]
    n = len(table.get("flip_sample", ()))
    out = np.zeros(n, dtype=FRAME_DTYPE)
    for name in FRAME_DTYPE.names or ():
        if name in table:
            out[name] = table[name]
    return out


def _read_tail(r: SessionReader, a: int, b: int) -> np.ndarray:
    if b <= a:
        return np.zeros((0, 2), np.float32)
    rows = r.stream[a:b]
    return np.asarray(rows[:, TAIL], dtype=np.float32)


def _swim_params(hardware: dict[str, object]) -> SwimParams:
    """The session's swim rule, as its engine built it (rig config ``[swims]``)."""
    sw = hardware.get("swims")
    sw = sw if isinstance(sw, dict) else {}
    return SwimParams.for_rule(sw.get("rule", "zaprig"), sw.get("threshold_k"), sw.get("gap_s"))


class SessionOverview:
    """The whole session's tail and swim power as min/max per stretch, built block by block.

    ``t`` is each stretch's first sample in seconds; ``tail_lo``/``tail_hi`` and
    ``power_lo``/``power_hi`` are (bins, 2), NaN where nothing has been read yet.
    ``power`` holds every evaluation of the detector (at samples ``k * power_step``).
    """

    def __init__(
        self,
        path: Path,
        sample_rate_hz: float,
        n_samples: int,
        bins: int,
        chunk_samples: int = 60,
        params: SwimParams | None = None,
    ) -> None:
        self.path = path
        self.fs = sample_rate_hz
        self.n = int(n_samples)
        self.per = max(1, -(-self.n // max(1, bins)))  # samples per stretch
        nb = -(-self.n // self.per) if self.n else 0
        self.t = np.arange(nb) * self.per / self.fs
        self.tail_lo = np.full((nb, 2), np.nan, np.float32)
        self.tail_hi = np.full((nb, 2), np.nan, np.float32)
        self.power_lo = np.full((nb, 2), np.nan, np.float32)
        self.power_hi = np.full((nb, 2), np.nan, np.float32)
        self.chunk = max(1, int(chunk_samples))
        self._det = OnlineSwimDetector(self.fs, params)
        self.power_step = self._det.p.step
        self.power = np.full((self.n // self.power_step + 1, 2), np.nan, np.float32)
        self.read = 0  # samples read so far
        self._pending = np.zeros((0, 2))  # samples of a chunk the last block cut

    @property
    def done(self) -> bool:
        return self.read >= self.n

    @property
    def fraction(self) -> float:
        return 1.0 if not self.n else self.read / self.n

    def step(self, max_samples: int = BLOCK_SAMPLES) -> None:
        """Read the next block (whole stretches) and fold it into the overview."""
        if self.done:
            return
        a = self.read
        size = max(self.per, max_samples // self.per * self.per)
        b = min(self.n, a + size)
        with SessionReader(self.path) as r:
            tail = _read_tail(r, a, b)
        k0 = a // self.per
        m = len(tail)
        full = m // self.per * self.per
        if full:
            blk = tail[:full].reshape(-1, self.per, 2)
            self.tail_lo[k0 : k0 + len(blk)] = blk.min(axis=1)
            self.tail_hi[k0 : k0 + len(blk)] = blk.max(axis=1)
        if m > full:  # the session's last, shorter stretch
            k = k0 + full // self.per
            self.tail_lo[k] = tail[full:].min(axis=0)
            self.tail_hi[k] = tail[full:].max(axis=0)
        # the detector as the loop ran it: chunk by chunk, chunks at multiples of the size
        # (a chunk cut by the block's end waits for the next block)
        x = np.concatenate([self._pending, tail.astype(np.float64)])
        start = a - len(self._pending)
        upto = b if b >= self.n else b // self.chunk * self.chunk
        s = start
        while s < upto:
            e = min(upto, (s // self.chunk + 1) * self.chunk)
            self._det.process(x[s - start : e - start], s)
            at = self._det.last_eval_samples
            if len(at):
                p = self._det.last_power.astype(np.float32)
                self.power[at // self.power_step] = p
                kb = np.minimum(at // self.per, len(self.t) - 1)
                for c in (0, 1):
                    np.fmin.at(self.power_lo[:, c], kb, p[:, c])
                    np.fmax.at(self.power_hi[:, c], kb, p[:, c])
            s = e
        self._pending = x[max(0, upto - start) :]
        self.read = b

    def finish(self, budget_s: float) -> None:
        """Read blocks until done or ``budget_s`` of wall time has passed."""
        end = time.monotonic() + budget_s
        while not self.done and time.monotonic() < end:
            self.step()

    def between(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stretches overlapping [t0, t1]: (x, tail (2k, 2), power (2k, 2)) with each
        stretch's minimum at its start and its maximum at its end (drawn as a band)."""
        if not len(self.t):
            return np.zeros(0), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        span = self.per / self.fs
        i0 = max(0, int(np.searchsorted(self.t, t0, side="right")) - 1)
        i1 = int(np.searchsorted(self.t, t1, side="right"))
        t = self.t[i0:i1]
        x = np.empty(2 * len(t))
        x[0::2] = t
        x[1::2] = np.minimum(t + span, self.n / self.fs)

        def weave(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
            out = np.empty((2 * (i1 - i0), 2), np.float32)
            out[0::2] = lo[i0:i1]
            out[1::2] = hi[i0:i1]
            return out

        return x, weave(self.tail_lo, self.tail_hi), weave(self.power_lo, self.power_hi)


@dataclass(frozen=True, slots=True)
class PastSession:
    path: Path
    sample_rate_hz: float
    n_samples: int
    frames: np.ndarray  # FRAME_DTYPE, every displayed frame
    bouts: np.ndarray  # BOUT_DTYPE, all of them
    condition: int  # 0-based condition at the end (-1: outside the protocol)
    condition_names: list[str]
    volume: tuple[int, np.ndarray] | None
    events: list[Event]
    overview: SessionOverview

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def read_range(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples [a, b) at full resolution: (tail samples, tail (n, 2) V, power samples,
        swim power (e, 2); NaN where the overview has not got there yet)."""
        a, b = max(0, int(a)), min(self.n_samples, int(b))
        if b <= a:
            z = np.zeros(0, np.int64)
            return z, np.zeros((0, 2), np.float32), z, np.zeros((0, 2), np.float32)
        with SessionReader(self.path) as r:
            tail = _read_tail(r, a, b)
        ov = self.overview
        st = ov.power_step
        k0, k1 = -(-a // st), (b - 1) // st + 1
        return np.arange(a, b), tail, np.arange(k0, k1) * st, ov.power[k0:k1]


def read_past_session(
    path: str | Path, max_side: int = 256, budget_s: float = OPEN_BUDGET_S
) -> PastSession:
    """A session file for the views (raises ``SessionFileError``): its tables, last volume and
    events, and its overview read for at most ``budget_s`` (the rest: ``overview.step()``)."""
    p = Path(path)
    with SessionReader(p) as r:
        fs, n = r.sample_rate_hz, r.n_samples
        condition = int(r.stream[n - 1, ROW["condition"]]) - 1 if n else -1
        frames = _frames(r.file["stimulus/frames"])
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
        hardware = r.hardware_config
    daq = hardware.get("daq")
    chunk = int(daq.get("chunk_samples", 60)) if isinstance(daq, dict) else 60
    overview = SessionOverview(p, fs, n, OVERVIEW_BINS, chunk, _swim_params(hardware))
    overview.finish(budget_s)
    return PastSession(p, fs, n, frames, bouts, condition, names, volume, events, overview)
