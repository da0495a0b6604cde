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


class ChunkCosts:
    """Seconds per part; ``report`` prints microseconds per chunk."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        #: Wall clock by default (76 ns a call). ``use_cpu_time`` switches to each thread's
        #: CPU time (1 us a call): the lanes share the GIL, so wall-clock parts include
        #: waiting for it; CPU time shows what each part really costs.
        self.clock: Callable[[], float] = time.perf_counter

    def use_cpu_time(self) -> None:
        """Measure CPU time per thread (benchmarks; set before the run starts)."""
        self.clock = time.thread_time

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def report(self, chunks: int) -> str:
        """One line per part: total seconds, µs per chunk, share of the loop-lane total."""
        n = max(1, chunks)
        loop = sum(v for k, v in self.seconds.items() if k not in ("record lane", "image lane"))
        lines = ["part               total_s   us/chunk   share_of_loop"]
        for part, s in self.seconds.items():
            share = (
                f"{s / loop:13.1%}"
                if loop and part not in ("record lane", "image lane")
                else (f"{'(own thread)':>13}")
            )
            lines.append(f"{part:<17} {s:8.2f} {s / n * 1e6:10.1f} {share}")
        lines.append(f"{'loop lane total':<17} {loop:8.2f} {loop / n * 1e6:10.1f}")
        return "\n".join(lines)
