"""Real-time scheduling for the loop lane, where the system allows it.

On Linux a thread can ask for ``SCHED_FIFO`` (root, or ``CAP_SYS_NICE`` / an
``rtprio`` limit): it then runs whenever it is ready, ahead of every ordinary
thread, so a busy image lane or GUI cannot delay a chunk. The loop lane sleeps
between chunks (the DAQ read blocks), so it never starves the machine. The
interpreter's thread switch interval is shortened for the run as well: a thread
that computes in Python hands the GIL over after it, and the default 5 ms would
be half a chunk. At the dataset's size 0.1 ms kept the loop's software-added p99
within 1.2x of a run without imaging, where 0.5 ms gave 1.26-1.29x
(benchmarks/closed_loop_latency.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["LOOP_PRIORITY", "loop_lane_priority"]

#: SCHED_FIFO priority of the loop lane: above ordinary threads, below the kernel's own.
LOOP_PRIORITY = 20
_SWITCH_INTERVAL_S = 0.0001


@contextmanager
def loop_lane_priority(realtime: bool, report: Callable[[str], None]) -> Iterator[bool]:
    """Run the calling thread at real-time priority inside the block (when ``realtime``).

    Yields whether real-time scheduling was granted; ``report`` hears what happened.
    """
    if not realtime:
        yield False
        return
    granted = False
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    old_policy = None
    if hasattr(os, "sched_setscheduler"):
        try:
            old_policy = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(LOOP_PRIORITY))
            granted = True
        except (PermissionError, OSError) as e:
            report(
                f"loop lane at normal priority: real-time scheduling was refused ({e}); "
                "run as root or give the user an rtprio limit for the best latency"
            )
    if granted:
        report(f"loop lane at real-time priority (SCHED_FIFO {LOOP_PRIORITY})")
    try:
        yield granted
    finally:
        sys.setswitchinterval(old_interval)
        if granted and old_policy is not None:
            try:
                os.sched_setscheduler(0, old_policy[0], old_policy[1])
            except OSError as e:
                report(f"could not restore the loop lane's scheduling: {e}")
