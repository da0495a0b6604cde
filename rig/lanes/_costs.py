"""Where the time per DAQ chunk goes: a running total per part of the engine's work.

An optional wrapper around the lanes' steps, on when a benchmark asks for it
(:meth:`ChunkCosts.enable`, :meth:`ChunkCosts.use_cpu_time`): :class:`TimedLoop`
times each phase of the loop lane's step from outside, and :meth:`ChunkCosts.timed`
the record lane's step, so ``benchmarks/full_protocol.py`` can print which part
of a chunk's work sets the pace of a virtual-time run: the next bottleneck is
then visible without a profiler (whose own overhead distorts exactly these small
per-call costs). Each part is added to by one lane only, so no lock is needed.
The steps themselves hold no timing code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from acquisition.fish import VirtualFish
    from acquisition.microscope import Microscope
    from rig.lanes._loop import ImageWake, LoopLane, RecordSink
    from rig.lanes._records import ChunkRecord

__all__ = ["PARTS", "ChunkCosts", "TimedLoop"]

_T = TypeVar("_T")

#: The parts, in the order a chunk goes through them. "fish" is the virtual fish's own
#: work (tail signal, what it sees, its brain per volume) taken out of the DAQ and
#: microscope parts; "renderer" is publishing the state and collecting frames.
PARTS = (
    "DAQ sim",
    "fish",
    "detector",
    "law",
    "renderer",
    "triggers",
    "writer hand-off",
    "loop other",
    "record lane",
    "image lane",
)

_OWN_THREAD = ("record lane", "image lane")


class ChunkCosts:
    """Seconds per part; ``report`` prints microseconds per chunk."""

    def __init__(self) -> None:
        #: Off unless a benchmark asks (:meth:`enable`): the steps then run untimed.
        self.enabled = False
        self.seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        #: Wall clock by default (76 ns a call). ``use_cpu_time`` switches to each thread's
        #: CPU time (1 us a call): the lanes share the GIL, so wall-clock parts include
        #: waiting for it; CPU time shows what each part really costs.
        self.clock: Callable[[], float] = time.perf_counter
        #: The loop lane's parts are timed on one chunk in ``every`` (and reported per chunk
        #: timed): with CPU time, timing every chunk (~13 clock calls of ~2 us) cost more
        #: than some of the parts it measures.
        self.every = 1
        #: Loop-lane chunks timed so far (the engine counts them).
        self.timed_chunks = 0
        #: True when the record and image lanes run on the loop's thread (virtual time):
        #: their parts are then timed inside the loop lane's chunks, like its own parts.
        self.lanes_inline = False

    def enable(self) -> None:
        """Time the run's steps (wall clock), before the run starts."""
        self.enabled = True

    def use_cpu_time(self, every: int = 1) -> None:
        """Measure CPU time per thread, the loop lane on one chunk in ``every`` (benchmarks;
        set before the run starts). Pick ``every`` prime to the rig's periods (frames every
        5/3 chunks, planes every ~11): the timed chunks then fall on every phase of them."""
        self.enabled = True
        self.clock = time.thread_time
        self.every = max(1, every)

    def timed(self, part: str, step: Callable[[_T], None]) -> Callable[[_T], None]:
        """``step`` (a lane's step on a thread of its own), its time added to ``part``."""
        seconds, clock = self.seconds, self.clock

        def timed_step(arg: _T) -> None:
            t0 = clock()
            try:
                step(arg)
            finally:
                seconds[part] += clock() - t0

        return timed_step

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def per_chunk(self, chunks: int) -> dict[str, float]:
        """Seconds per chunk of each part: the loop lane's per chunk timed, lanes per chunk run."""
        n = max(1, chunks)
        timed = max(1, self.timed_chunks) if self.every > 1 else n
        return {k: v / (n if self._own_thread(k) else timed) for k, v in self.seconds.items()}

    def _own_thread(self, part: str) -> bool:
        return part in _OWN_THREAD and not self.lanes_inline

    def report(self, chunks: int) -> str:
        """One line per part: total seconds, µs per chunk, share of the loop-lane total.

        With ``every`` > 1 the loop lane's totals are estimates (per chunk timed x chunks).
        """
        n = max(1, chunks)
        per = self.per_chunk(n)
        loop = sum(v for k, v in per.items() if not self._own_thread(k))
        lines = ["part               total_s   us/chunk   share_of_loop"]
        for part, s in per.items():
            own = self._own_thread(part)
            share = f"{s / loop:13.1%}" if loop and not own else f"{'(own thread)':>13}"
            lines.append(f"{part:<17} {s * n:8.2f} {s * 1e6:10.1f} {share}")
        total = "loop thread total" if self.lanes_inline else "loop lane total"
        lines.append(f"{total:<17} {loop * n:8.2f} {loop * 1e6:10.1f}")
        if self.lanes_inline:
            lines.append("(record and image lanes inline on the loop's thread: virtual time)")
        if self.every > 1:
            lines.append(
                f"(loop lane timed on 1 chunk in {self.every}: {self.timed_chunks} chunks)"
            )
        return "\n".join(lines)


class TimedLoop:
    """The loop lane's step with each phase timed into ``costs`` (the lane is unchanged).

    Work nested in a phase is taken out of it and counted as its own part: the virtual
    fish's (its own clock, ``fish.seconds``) and, in virtual time, the image and record
    lanes' when they run inline on the loop's thread.
    """

    def __init__(
        self,
        lane: LoopLane,
        costs: ChunkCosts,
        fish: VirtualFish | None,
        microscope: Microscope,
    ) -> None:
        self.lane = lane
        self.costs = costs
        self.fish = fish
        self.clock: Callable[[], float] = costs.clock
        self.nested = 0.0
        microscope.use_cost_clock(costs.clock)
        costs.lanes_inline = not lane.image.threaded
        if not lane.image.threaded:
            lane.image = _TimedImage(lane.image, self)
        if not lane.records.threaded:
            lane.records = _TimedRecords(lane.records, self)

    def step(self) -> None:
        cc, lane, fish = self.costs, self.lane, self.fish
        # time the phases on one chunk in cc.every; float() is a clock that always says 0.0
        timed = cc.every == 1 or lane.sample // lane.chunk_samples % cc.every == 0
        if not timed:
            self.clock = float
            if fish is not None:
                fish.clock = float
            lane.step()
            return
        cc.timed_chunks += 1
        clock = self.clock = cc.clock
        if fish is not None:
            fish.clock = clock
        seconds = cc.seconds
        for name, phase in zip(lane.PHASES, lane.phases, strict=True):
            f0 = fish.seconds if fish is not None else 0.0
            self.nested = 0.0
            t0 = clock()
            phase()
            dt = clock() - t0
            in_fish = fish.seconds - f0 if fish is not None else 0.0
            seconds[name] += dt - in_fish - self.nested
            seconds["fish"] += in_fish

    def inner(self, part: str, call: Callable[[], None]) -> None:
        """Time work nested in the current phase as ``part`` (the fish's time left out)."""
        fish = self.fish
        f0 = fish.seconds if fish is not None else 0.0
        t0 = self.clock()
        call()
        dt = self.clock() - t0 - (fish.seconds - f0 if fish is not None else 0.0)
        self.costs.seconds[part] += dt
        self.nested += dt


class _TimedImage:
    """The inline image lane, its wakes timed as "image lane"."""

    def __init__(self, lane: ImageWake, timer: TimedLoop) -> None:
        self._lane = lane
        self._timer = timer
        self.threaded = lane.threaded

    @property
    def error(self) -> str | None:
        return self._lane.error

    def wake(self) -> None:
        self._timer.inner("image lane", self._lane.wake)

    def alive(self) -> bool:
        return self._lane.alive()


class _TimedRecords:
    """The inline record lane, its batches (handled in ``submit``) timed as "record lane"."""

    def __init__(self, lane: RecordSink, timer: TimedLoop) -> None:
        self._lane = lane
        self._timer = timer
        self.threaded = lane.threaded

    @property
    def error(self) -> BaseException | None:
        return self._lane.error

    def submit(self, rec: ChunkRecord) -> None:
        self._timer.inner("record lane", lambda: self._lane.submit(rec))

    def wait_below(self, n: int, timeout_s: float = 5.0) -> None:
        self._lane.wait_below(n, timeout_s)
