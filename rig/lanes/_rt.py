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

Real-time priority for the loop alone is not enough: to run Python it needs the
GIL, and the thread holding it (the record lane, the image lane, a queue's feeder
thread) is an ordinary thread that any other process on the machine may preempt
for a whole scheduler slice. The loop then waits for a thread that is not running:
with another job keeping both cores busy, the loop's lag reached 146 ms (p99 34 ms)
with imaging off. So while the loop lane runs, the engine's other threads run at
``SCHED_FIFO`` too, below the loop (:data:`LANE_PRIORITY`): a GIL holder is then
never preempted by ordinary work, and hands the GIL over within the switch
interval (same load: max 27.5 ms, p99 11.5 ms). The interpreter's main thread is
left alone when the loop is not on it (the control app's Qt thread, which paints
for tens of milliseconds at a time, must not outrank the writer process).

Priority is not enough either when the disk is busy. A buffered ``write()`` copies
its whole buffer into the page cache without a preemption point on kernels built
for throughput (``PREEMPT_NONE``/``VOLUNTARY``, and this VM's ``PREEMPT_DYNAMIC``
in one of those modes): the writer's 5.4 MB chunk writes held their CPU for ~4.7
ms, and a ``SCHED_FIFO`` thread woken on that CPU waited for the copy to end (the
scheduler expects an ordinary task to yield at once). A bare FIFO sleeper beside
``dd bs=8M`` woke 4.9 ms late at p99 on the same CPU and 0.09 ms late on the other
one. So where there are at least two CPUs, the engine's threads (the loop and
the lanes that share its GIL) are pinned to CPUs of their own
(:func:`cpu_split`) and the disk writer to the others; see docs/design-notes.md.
The writer now puts uncompressed volumes on the disk with ``O_DIRECT``
(acquisition/writer/_direct.py), which copies nothing; a compressed session's chunks
still go through the page cache.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "LANE_PRIORITY",
    "LOOP_PRIORITY",
    "cpu_split",
    "frozen_heap",
    "loop_lane_priority",
    "thread_off_engine_cpus",
]

#: SCHED_FIFO priority of the loop lane: above ordinary threads, below the kernel's own.
LOOP_PRIORITY = 20
#: SCHED_FIFO priority of the engine's other threads while the loop runs: below the loop.
LANE_PRIORITY = 10
_SWITCH_INTERVAL_S = 0.0001


def _other_threads() -> list[int]:
    """Native ids of this process's threads other than the caller (and a GUI's main thread)."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []  # not Linux: only the loop lane is raised
    skip = {threading.get_native_id()}
    main = threading.main_thread()
    if threading.current_thread() is not main and main.native_id is not None:
        skip.add(main.native_id)
    return [t for t in tids if t not in skip]


def _raise_threads(tids: list[int]) -> dict[int, tuple[int, os.sched_param]]:
    """Put ordinary threads at LANE_PRIORITY; returns what to restore."""
    old: dict[int, tuple[int, os.sched_param]] = {}
    for tid in tids:
        try:
            policy = os.sched_getscheduler(tid)
            if policy != os.SCHED_OTHER:
                continue
            param = os.sched_getparam(tid)
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(LANE_PRIORITY))
            old[tid] = (policy, param)
        except OSError:
            continue  # the thread ended meanwhile, or the system refused: it stays as it was
    return old


def _restore_threads(old: dict[int, tuple[int, os.sched_param]]) -> None:
    for tid, (policy, param) in old.items():
        try:
            os.sched_setscheduler(tid, policy, param)
        except OSError:
            continue  # the thread has ended


def cpu_split(cpus: set[int]) -> tuple[set[int], set[int]] | None:
    """(the engine's CPUs, everyone else's) from the CPUs this process may use.

    None with fewer than two: nothing to split. The engine gets the highest-numbered
    CPU, two of them from six CPUs up (the loop and a busy image lane side by side).
    """
    if len(cpus) < 2:
        return None
    ordered = sorted(cpus)
    k = 2 if len(ordered) >= 6 else 1
    return set(ordered[-k:]), set(ordered[:-k])


def _set_affinity(ids: list[int], cpus: set[int]) -> dict[int, set[int]]:
    """Pin threads or processes (by id); returns the affinities to restore."""
    old: dict[int, set[int]] = {}
    for i in ids:
        try:
            before = os.sched_getaffinity(i)
            os.sched_setaffinity(i, cpus)
            old[i] = before
        except OSError:
            continue  # it ended meanwhile, or the system refused: it stays as it was
    return old


def _restore_affinity(old: dict[int, set[int]]) -> None:
    for i, cpus in old.items():
        try:
            os.sched_setaffinity(i, cpus)
        except OSError:
            continue


def _pin(keep_off: Callable[[], list[int]], report: Callable[[str], None]) -> dict[int, set[int]]:
    """The engine's threads onto its CPUs, the ``keep_off`` processes onto the others."""
    if not hasattr(os, "sched_setaffinity"):
        return {}
    try:
        split = cpu_split(os.sched_getaffinity(0))
    except OSError:
        return {}
    if split is None:
        report("one CPU: the loop lane shares it with the writer (a busy disk delays it)")
        return {}
    mine, others = split
    tids = [threading.get_native_id(), *_other_threads()]
    old = _set_affinity(tids, mine)
    pids = keep_off()
    old.update(_set_affinity(pids, others))
    report(
        f"engine threads on CPU {_cpus(mine)}; the writer process on CPU {_cpus(others)} "
        "(a buffered disk write, as of compressed volumes, holds its CPU for milliseconds)"
    )
    return old


@contextmanager
def frozen_heap(enabled: bool = True) -> Iterator[None]:
    """Inside the block the garbage collector never walks what existed when it began.

    A full collection walks every tracked object of the process, holding the GIL, on
    whichever thread's allocation set it off: the loop's too. In an armed engine at the
    dataset's size (98,000 objects: configs, protocol, devices, lanes) one took 43.6 ms,
    and a full-size run had one chunk whose processing took 46.5 ms, its state reaching the
    renderer 110 ms late (benchmarks/closed_loop_latency.py). Collecting once, then
    ``gc.freeze()``, moves the objects the session starts with out of every later
    collection (0.0 ms for the same full collection); what the run makes is collected as
    usual. ``gc.unfreeze()`` at the end gives them back, so a process that runs many
    sessions (tests, the app's engine process) keeps nothing alive.
    """
    if not enabled:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def thread_off_engine_cpus() -> Iterator[set[int] | None]:
    """The calling thread runs on the CPUs a real-time engine leaves to others, inside the block.

    For the control app's window thread while its engine process runs in real time. That
    engine's threads are pinned to their CPU at ``SCHED_FIFO`` (:func:`loop_lane_priority`),
    and an ordinary thread queued on that CPU waits for them: the app's 50 ms timer waited
    for a CPU 359-503 ms in its late ticks, and was 37.5-50.3 ms late at p99 at the dataset's
    size; kept on the other CPUs, 8.0-19.9 ms in four runs back to back
    (benchmarks/gui_fullsize.py). The split is the engine's own
    (:func:`cpu_split` of the same affinity), so call it after the engine's process started,
    which inherits the caller's CPUs. Yields the CPUs given (None: nothing to split, or the
    system refused); the old affinity comes back at the end.
    """
    old: set[int] | None = None
    given: set[int] | None = None
    if hasattr(os, "sched_setaffinity"):
        try:
            old = os.sched_getaffinity(0)
            split = cpu_split(old)
            if split is not None:
                os.sched_setaffinity(0, split[1])
                given = split[1]
        except OSError:
            given = None
    try:
        yield given
    finally:
        if given is not None and old is not None:
            # refused: the thread keeps the smaller set; nothing else depends on it
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, old)


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@contextmanager
def loop_lane_priority(
    realtime: bool,
    report: Callable[[str], None],
    keep_off: Callable[[], list[int]] = list,
) -> Iterator[bool]:
    """Run the calling thread at real-time priority inside the block (when ``realtime``).

    The engine's other threads run at :data:`LANE_PRIORITY` meanwhile, and with two
    CPUs or more the engine's threads get CPUs of their own while the processes whose
    ids ``keep_off()`` gives run on the others (module doc). Yields whether real-time
    scheduling was granted; ``report`` hears what happened.
    """
    if not realtime:
        yield False
        return
    granted = False
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    old_policy = None
    raised: dict[int, tuple[int, os.sched_param]] = {}
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
        raised = _raise_threads(_other_threads())
        report(
            f"loop lane at real-time priority (SCHED_FIFO {LOOP_PRIORITY}); "
            f"{len(raised)} other engine thread{'s' if len(raised) != 1 else ''} at "
            f"SCHED_FIFO {LANE_PRIORITY}, so a lane holding the GIL is not preempted"
        )
    pinned = _pin(keep_off, report)
    try:
        yield granted
    finally:
        sys.setswitchinterval(old_interval)
        _restore_affinity(pinned)
        _restore_threads(raised)
        if granted and old_policy is not None:
            try:
                os.sched_setscheduler(0, old_policy[0], old_policy[1])
            except OSError as e:
                report(f"could not restore the loop lane's scheduling: {e}")
