"""While the loop lane runs at real-time priority, the engine's other threads do too (below it).

A thread holding the GIL that another process preempts keeps the loop waiting
(rig/lanes/_rt.py); these check the policies the kernel reports, and that they are
given back after the run. With two CPUs or more the engine's threads get CPUs of their
own and the writer-like processes the others (a buffered disk write holds its CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from rig.lanes._rt import (
    LANE_PRIORITY,
    LOOP_PRIORITY,
    cpu_split,
    frozen_heap,
    loop_lane_priority,
    thread_off_engine_cpus,
)


def _policy(tid: int) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority


def _fifo_allowed() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


needs_rt = pytest.mark.skipif(not _fifo_allowed(), reason="real-time scheduling not permitted")


class _Idle:
    """A thread that waits until told to end (a lane between jobs)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.done.wait, daemon=True)
        self.thread.start()

    @property
    def tid(self) -> int:
        assert self.thread.native_id is not None
        return self.thread.native_id

    def end(self) -> None:
        self.done.set()
        self.thread.join(5)


@needs_rt
def test_other_threads_run_below_the_loop_and_are_restored() -> None:
    lane = _Idle()
    said: list[str] = []
    try:
        with loop_lane_priority(True, said.append) as granted:
            assert granted
            assert _policy(threading.get_native_id()) == (os.SCHED_FIFO, LOOP_PRIORITY)
            assert _policy(lane.tid) == (os.SCHED_FIFO, LANE_PRIORITY)
        assert _policy(threading.get_native_id()) == (os.SCHED_OTHER, 0)
        assert _policy(lane.tid) == (os.SCHED_OTHER, 0)
    finally:
        lane.end()
    assert any("other engine thread" in m for m in said)


@needs_rt
def test_a_gui_main_thread_is_not_raised() -> None:
    """When the loop runs on an engine thread, the interpreter's main thread (Qt's) stays ordinary."""
    seen: dict[str, tuple[int, int]] = {}
    main_tid = threading.get_native_id()

    def engine() -> None:
        with loop_lane_priority(True, lambda m: None):
            seen["main"] = _policy(main_tid)
            seen["loop"] = _policy(threading.get_native_id())

    t = threading.Thread(target=engine)
    t.start()
    t.join(10)
    assert seen["loop"] == (os.SCHED_FIFO, LOOP_PRIORITY)
    assert seen["main"] == (os.SCHED_OTHER, 0)


def test_virtual_time_changes_nothing() -> None:
    lane = _Idle()
    try:
        before = _policy(lane.tid), _policy(threading.get_native_id())
        with loop_lane_priority(False, lambda m: None) as granted:
            assert not granted
            assert (_policy(lane.tid), _policy(threading.get_native_id())) == before
    finally:
        lane.end()


def test_cpu_split_gives_the_engine_cpus_of_its_own() -> None:
    assert cpu_split({0}) is None
    assert cpu_split({0, 1}) == ({1}, {0})
    assert cpu_split({2, 5, 7}) == ({7}, {2, 5})
    assert cpu_split(set(range(8))) == ({6, 7}, set(range(6)))


needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="one CPU: nothing to split"
)


@needs_rt
@needs_two_cpus
def test_engine_threads_and_the_writer_run_on_separate_cpus_during_the_run() -> None:
    lane = _Idle()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    before = os.sched_getaffinity(0)
    mine, others = cpu_split(before) or (set(), set())
    said: list[str] = []
    try:
        with loop_lane_priority(True, said.append, keep_off=lambda: [writer.pid]):
            assert os.sched_getaffinity(threading.get_native_id()) == mine
            assert os.sched_getaffinity(lane.tid) == mine
            assert os.sched_getaffinity(writer.pid) == others
        assert os.sched_getaffinity(threading.get_native_id()) == before
        assert os.sched_getaffinity(lane.tid) == before
        assert os.sched_getaffinity(writer.pid) == before
    finally:
        writer.kill()
        writer.wait()
        lane.end()
    assert any("engine threads on CPU" in m for m in said)


@needs_two_cpus
def test_the_window_thread_leaves_the_engine_cpu_and_gets_its_cpus_back() -> None:
    before = os.sched_getaffinity(0)
    mine, others = cpu_split(before) or (set(), set())
    with thread_off_engine_cpus() as given:
        assert given == others and os.sched_getaffinity(0) == others
        assert not os.sched_getaffinity(0) & mine
    assert os.sched_getaffinity(0) == before


class _Cycle:
    """An object in a reference cycle: only the collector frees it."""

    def __init__(self, other: list[object]) -> None:
        self.other = other
        other.append(self)


def test_the_heap_a_session_starts_with_is_left_out_of_collections() -> None:
    import gc
    import weakref

    kept = [[i] for i in range(50_000)]  # what an armed engine holds: configs, devices, lanes
    with frozen_heap():
        assert gc.get_freeze_count() >= len(kept)
        # what the run makes is still collected as usual, by the collector's own schedule
        # (with the collector switched off, this cycle would outlive the block)
        cycle: list[object] = []
        gone = weakref.finalize(_Cycle(cycle), lambda: None)
        del cycle
        made = [[i] for i in range(100_000)]  # allocations: the young generations' collections
        assert not gone.alive
        del made
    assert gc.get_freeze_count() == 0  # given back: a process running many sessions keeps nothing
    with frozen_heap(enabled=False):
        assert gc.get_freeze_count() == 0


def test_virtual_time_pins_nothing() -> None:
    before = os.sched_getaffinity(0)
    with loop_lane_priority(False, lambda m: None, keep_off=lambda: [os.getpid()]):
        assert os.sched_getaffinity(0) == before
