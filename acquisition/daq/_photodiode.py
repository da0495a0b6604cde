"""When each frame's light appeared: the sync patch decoded from the photodiode trace.

The sync patch shows frame ``k``'s code ``k % 4`` as one of four levels
(stimuli/render/sync_patch.py). The decoder learns the photodiode level of each
code from the trace itself (1-D k-means over the first second of light, codes
assigned by the levels' order, which any monotonic display keeps), classifies
every sample to its nearest level, and keeps runs of one code that last at least
a third of a frame (shorter runs are the passage between two levels). Between
two settled runs of different codes is an edge; the frame's light appeared where
the trace crosses half-way between the two levels (linear interpolation between
samples, rounded to the nearest sample).

An edge to code ``c`` is the first logged frame after the previously matched one
that has code ``c`` and flipped before the edge. Logged frames passed over, or
not seen within ``max_latency_s`` of their flip, never appeared: their
``light_sample`` stays -1. So frames the display dropped are found from the
light; frames shown twice are gaps of two frame periods between edges
(rig/session/light.py counts both).

Frames are held here until their light is known (at most ``max_latency_s``, and
the first second while the levels are learned) and come out in order.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np

from acquisition.tables import concat_records
from stimuli.render.sync_patch import CODES_BY_LEVEL, SYNC_CODES, sync_code
from stimuli.state import FRAME_DTYPE

__all__ = ["LightDecoder"]


class LightDecoder:
    """Fills ``light_sample`` of frame records from the photodiode trace, online."""

    def __init__(
        self,
        sample_rate_hz: float,
        refresh_hz: float,
        learn_s: float = 1.0,
        max_latency_s: float = 0.5,
    ) -> None:
        self.fs = sample_rate_hz
        self.period = sample_rate_hz / refresh_hz
        self.min_run = max(3, int(self.period / 3))
        self.learn_samples = round(learn_s * sample_rate_hz)
        self.max_latency = round(max_latency_s * sample_rate_hz)
        #: Photodiode level (V) of each code, once learned.
        self.levels: np.ndarray | None = None
        #: Why decoding stopped (the photodiode saw no sync code), for the session's events.
        self.problem: str | None = None
        #: Edges that matched no logged frame (noise, or light from before the run).
        self.unmatched_edges = 0
        self._trace = np.zeros(0, dtype=np.float64)
        self._t0 = 0  # DAQ sample of _trace[0]
        self._frames = np.zeros(0, dtype=FRAME_DTYPE)  # logged, not yet written
        self._next = 0  # first of _frames not yet resolved

    def feed(self, s0: int, trace: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Add a chunk of photodiode volts (from sample ``s0``) and newly logged frames.

        Returns the frames whose light is now known (or known never to have come), in order.
        """
        if not len(self._trace):
            self._t0 = s0
        self._trace = np.concatenate([self._trace, np.asarray(trace, dtype=np.float64)])
        if len(frames):
            self._frames = concat_records([self._frames, frames])
        if self.problem is None and self.levels is None:
            self._learn()
        if self.levels is not None:
            self._decode(final=False)
        return self._ready(s0 + len(trace))

    def feed_many(self, chunks: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> np.ndarray:
        """Several consecutive chunks ``(s0, trace, frames)`` at once, with one decode for all.

        Returns exactly what feeding them one by one with :meth:`feed` returns, joined:
        the same frames, lights and order (tests/test_display_light.py checks it). In
        virtual time the record lane takes up to 64 chunks at once, and per-chunk
        decoding (a dozen numpy calls on ~150 samples each) was most of its time.
        Each chunk's decode is replayed on the joined trace with the state it would
        have had (where the kept trace starts, which frames were logged and not yet
        given out), so a run still partial at a chunk's end is measured as it was then.
        While the levels are being learned, chunks go through :meth:`feed`.
        """
        if len(chunks) == 1 or self.levels is None or self.problem is not None:
            parts = [self.feed(s0, trace, frames) for s0, trace, frames in chunks]
            return concat_records(parts)
        if not len(self._trace):
            self._t0 = chunks[0][0]
        new = [f for _, _, f in chunks if len(f)]
        frames = concat_records([self._frames, *new]) if new else self._frames
        flips = frames["flip_sample"].tolist()
        if any(b < a for a, b in itertools.pairwise(flips)):  # never from our renderers
            parts = [self.feed(s0, trace, f) for s0, trace, f in chunks]
            return concat_records(parts)
        n_fed = len(self._frames)
        fed_by = []  # frames logged up to and including each chunk
        for _, _, f in chunks:
            n_fed += len(f)
            fed_by.append(n_fed)
        self._trace = np.concatenate(
            [self._trace, *(np.asarray(t, dtype=np.float64) for _, t, _ in chunks)]
        )
        self._frames = frames
        ends = [s0 + len(t) - self._t0 for s0, t, _ in chunks]
        self._decode_replay(ends, fed_by, flips)
        return self._ready(chunks[-1][0] + len(chunks[-1][1]))

    def _decode_replay(self, ends: list[int], fed_by: list[int], flips: list[int]) -> None:
        """:meth:`_decode` and the release in :meth:`_ready` as they would run at each of
        ``ends`` (indices into the trace), on one classification of the whole trace."""
        assert self.levels is not None
        x = self._trace
        code = np.argmin(np.abs(x[:, None] - self.levels[None, :]), axis=1)
        change = (np.flatnonzero(np.diff(code)) + 1).tolist()
        codes = sync_code(self._frames["frame"]).tolist()
        start = 0  # where the kept trace starts (index into x), as chunk-by-chunk decoding had it
        nxt = self._next
        for e, n_fed in zip(ends, fed_by, strict=True):
            if e - start >= 2:
                lo = bisect.bisect_right(change, start)
                hi = bisect.bisect_left(change, e)
                bounds = [start, *change[lo:hi], e]
                runs = [
                    (a, b, int(code[a]))
                    for a, b in itertools.pairwise(bounds)
                    if b - a >= self.min_run
                ]
                seg = x[start:e]
                for (a0, a1, ca), (b0, b1, cb) in itertools.pairwise(runs):
                    if ca == cb:
                        continue
                    la = _median(x[a0:a1])
                    lb = _median(x[b0:b1])
                    local = self._crossing(
                        seg, a1 - 1 - start, b0 - start, 0.5 * (la + lb), lb > la
                    )
                    light = self._t0 + start + local
                    nxt = self._match_in(light, cb, nxt, n_fed, codes, flips)
                keep_from = max(runs[-1][0] - start if runs else 0, e - start - self.max_latency)
                start += keep_from
            # frames logged by now and flipped too long ago are given out unlit (as _ready does)
            old = bisect.bisect_left(flips, self._t0 + e - self.max_latency, nxt, n_fed)
            nxt = max(nxt, old)
        self._next = nxt
        self._trace = x[start:]
        self._t0 += start

    def _match_in(
        self, light: int, code: int, nxt: int, n_fed: int, codes: list[int], flips: list[int]
    ) -> int:
        """:meth:`_match` over the frames logged so far (``< n_fed``); returns the new next."""
        for j in range(nxt, n_fed):
            if flips[j] >= light:
                break  # flips are in order: no later frame flipped before the light either
            if codes[j] == code:
                self._frames["light_sample"][j] = light
                return j + 1
        self.unmatched_edges += 1
        return nxt

    def flush(self) -> np.ndarray:
        """At the end of the run: decode what is left and return every frame still held."""
        if self.problem is None and self.levels is None:
            self._learn(final=True)
        if self.levels is not None:
            self._decode(final=True)
        self._next = len(self._frames)
        out, self._frames, self._next = self._frames, self._frames[:0], 0
        return out

    # -- learning the levels ---------------------------------------------------------------

    def _learn(self, final: bool = False) -> None:
        if not len(self._frames):
            return
        start = int(self._frames["flip_sample"][0]) - self._t0
        x = self._trace[max(0, start) :]
        if len(x) < self.learn_samples and not final:
            return
        if len(x) < 4 * self.min_run:
            return
        centres = np.quantile(x, np.linspace(0.02, 0.98, SYNC_CODES))
        for _ in range(30):
            lab = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
            new = np.array(
                [x[lab == i].mean() if np.any(lab == i) else centres[i] for i in range(SYNC_CODES)]
            )
            if np.allclose(new, centres):
                break
            centres = new
        counts = np.bincount(lab, minlength=SYNC_CODES)
        spread = float(np.max(x) - np.min(x))
        gaps = np.diff(np.sort(centres))
        noise = float(np.median(np.abs(x - centres[lab]))) * 1.4826
        if np.min(counts) < 0.05 * len(x) or spread <= 0 or np.min(gaps) < 6 * noise:
            if len(x) >= 5 * self.learn_samples or final:
                self.problem = (
                    "the photodiode shows no sync code (four distinct levels): check that it "
                    "sits over the sync patch (display.sync_patch) and is connected; frames "
                    "have no light_sample in this session"
                )
            return
        levels = np.empty(SYNC_CODES)
        levels[list(CODES_BY_LEVEL)] = np.sort(centres)
        self.levels = levels

    # -- decoding ----------------------------------------------------------------------------

    def _decode(self, final: bool) -> None:
        assert self.levels is not None
        x = self._trace
        if len(x) < 2:
            return
        code = np.argmin(np.abs(x[:, None] - self.levels[None, :]), axis=1)
        change = np.flatnonzero(np.diff(code)) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [len(x)]])
        settled = (stops - starts) >= self.min_run
        # shorter runs are the passage between two levels (or noise): not a frame
        runs = [
            (int(a), int(b), int(code[a]))
            for a, b, ok in zip(starts, stops, settled, strict=True)
            if ok
        ]
        # keep the last settled run (the next edge starts from it), at most max_latency of it
        keep_from = max(runs[-1][0] if runs else 0, len(x) - self.max_latency)
        for (a0, a1, ca), (b0, b1, cb) in itertools.pairwise(runs):
            if ca == cb:
                continue
            la = _median(x[a0:a1])
            lb = _median(x[b0:b1])
            light = self._t0 + self._crossing(x, a1 - 1, b0, 0.5 * (la + lb), lb > la)
            self._match(light, cb)
        if final:
            return
        self._trace = x[keep_from:]
        self._t0 += keep_from

    @staticmethod
    def _crossing(x: np.ndarray, i0: int, i1: int, mid: float, rising: bool) -> int:
        """The (rounded, interpolated) sample index where ``x`` first passes ``mid`` in [i0, i1]."""
        seg = x[i0 : i1 + 1]
        past = seg >= mid if rising else seg <= mid
        k = int(np.argmax(past))
        if k == 0:
            return i0
        a, b = seg[k - 1], seg[k]
        frac = (mid - a) / (b - a) if b != a else 1.0
        return int(np.floor(i0 + k - 1 + frac + 0.5))

    def _match(self, light: int, code: int) -> None:
        fr = self._frames
        cand = np.flatnonzero(
            (np.arange(len(fr)) >= self._next)
            & (sync_code(fr["frame"]) == code)
            & (fr["flip_sample"] < light)
        )
        if not len(cand):
            self.unmatched_edges += 1
            return
        j = int(cand[0])
        fr["light_sample"][j] = light
        self._next = j + 1

    def _ready(self, now: int) -> np.ndarray:
        """Frames resolved, plus frames too old to be seen still (their light never came)."""
        fr = self._frames
        if self.levels is not None or self.problem is not None:
            old = np.flatnonzero(fr["flip_sample"][self._next :] < now - self.max_latency)
            if len(old):
                self._next += int(old[-1]) + 1
        if self.problem is not None:
            self._next = len(fr)
        out = fr[: self._next]
        self._frames = fr[self._next :]
        self._next = 0
        return out


def _median(x: np.ndarray) -> float:
    """``float(np.median(x))`` of a short run, bit for bit, at a fraction of its cost.

    np.median partitions, then takes the mean of the middle one or two values; for a
    run of ~100 samples its Python overhead (~20-70 us) was most of the record lane's
    time per edge. Sorting and averaging the middle pair gives the same float: the mean
    of two doubles is their sum divided by two in both. NaN (never in a photodiode
    trace) goes through np.median, which propagates it.
    """
    n = len(x)
    s = np.sort(x)
    if n == 0 or s[-1] != s[-1]:  # empty, or NaN (sorted last)
        return float(np.median(x))
    k = n // 2
    if n % 2:
        return float(s[k])
    return (float(s[k - 1]) + float(s[k])) / 2.0
