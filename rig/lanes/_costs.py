"""Where the time per DAQ chunk goes: a running total per part of the engine's work.

The engine adds ``time.perf_counter()`` differences (a few hundred ns per chunk in
all) so ``benchmarks/full_protocol.py`` can print which part of a chunk's work
sets the pace of a virtual-time run: the next bottleneck is then visible without
a profiler (whose own overhead distorts exactly these small per-call costs).
Each part is added to by one lane only, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["PARTS", "ChunkCosts"]

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

    def use_cpu_time(self, every: int = 1) -> None:
        """Measure CPU time per thread, the loop lane on one chunk in ``every`` (benchmarks;
        set before the run starts). Pick ``every`` prime to the rig's periods (frames every
        5/3 chunks, planes every ~11): the timed chunks then fall on every phase of them."""
        self.clock = time.thread_time
        self.every = max(1, every)

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
