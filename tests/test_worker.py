"""The worker-process helper (rig/core/worker.py) with real child processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _worker_children import (
    Boom,
    Echo,
    Echoed,
    Hello,
    deaf_main,
    echo_main,
    fails_before_ready,
    slow_to_start,
)

from rig.core.worker import BACKGROUND_NICE, Failed, Handlers, Ready, Worker, WorkerError

REPO = Path(__file__).resolve().parents[1]
CHILDREN = REPO / "tests" / "_worker_children.py"


def _gone(pid: int, timeout_s: float) -> bool:
    """The process ended (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_ready_handshake_echo_and_a_log_line_per_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="zaprig.worker")
    w = Worker("echo", echo_main, "hi")
    got: list[int] = []
    handlers: Handlers = {Echoed: lambda m: got.append(m.n)}
    try:
        ready = w.start(60.0)
        assert isinstance(ready, Hello) and ready.greeting == "hi" and ready.pid == w.pid
        for n in range(5):
            assert w.send(Echo(n))
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            w.receive_all(handlers, wait_s=0.1)
        assert got == [0, 2, 4, 6, 8]
    finally:
        assert w.stop(30.0)
    assert w.exitcode == 0 and w.failure is None
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "zaprig.worker"]
    assert (logging.INFO, f"echo -> Hello(pid={w.pid}, greeting='hi')") in lines
    sent = [m for lvl, m in lines if lvl == logging.DEBUG and m.startswith("echo <- Echo(")]
    taken = [m for lvl, m in lines if lvl == logging.DEBUG and m.startswith("echo -> Echoed(")]
    assert len(sent) == 5 and len(taken) == 5
    assert (logging.INFO, "echo <- Stop()") in lines


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no nice values here")
def test_a_background_worker_runs_behind_its_parent() -> None:
    """``nice=BACKGROUND_NICE`` (the live readout): the window's thread wins a contended CPU."""
    w = Worker("echo", echo_main, "hi", nice=BACKGROUND_NICE)
    plain = Worker("echo", echo_main, "hi")
    try:
        w.start(60.0)
        plain.start(60.0)
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert w.pid is not None and plain.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, w.pid) == min(19, ours + BACKGROUND_NICE)
        assert os.getpriority(os.PRIO_PROCESS, plain.pid) == ours
    finally:
        assert w.stop(30.0) and plain.stop(30.0)


def test_the_childs_exception_reaches_the_parent_with_its_traceback() -> None:
    w = Worker("echo", echo_main, "hi")
    failures: list[Failed] = []
    try:
        w.start(60.0)
        w.send(Boom())
        deadline = time.monotonic() + 30
        while not failures and time.monotonic() < deadline:
            w.receive_all({Failed: failures.append}, wait_s=0.1)
    finally:
        w.stop(10.0)
    assert len(failures) == 1 and w.failure is failures[0]
    f = failures[0]
    assert f.worker == "echo" and f.error == "ValueError: boom 42"
    assert isinstance(f.exception, ValueError) and f.message == "boom 42"
    assert "in deep_failure" in f.traceback and "_worker_children.py" in f.traceback
    assert w.exitcode == 1


def test_a_failure_before_ready_fails_the_start_with_the_childs_traceback() -> None:
    w = Worker("device", fails_before_ready)
    with pytest.raises(WorkerError, match="no such device") as err:
        w.start(60.0)
    assert err.value.failure is not None
    assert "in open_the_device" in err.value.failure.traceback
    w.stop(5.0)
    assert not w.alive()


def test_a_child_not_ready_in_time_fails_the_start_and_is_left_to_the_caller() -> None:
    w = Worker("slow", slow_to_start)
    with pytest.raises(WorkerError, match=r"not ready after 0\.5 s"):
        w.start(0.5)
    assert w.alive()
    w.stop(0.1)
    assert not w.alive()


def test_stop_is_bounded_for_a_child_that_ignores_it() -> None:
    w = Worker("deaf", deaf_main)
    w.start(60.0)
    t0 = time.monotonic()
    ended = w.stop(0.5)
    took = time.monotonic() - t0
    assert not ended  # it did not stop by itself: terminated (ignored), then killed
    assert w.exitcode == -signal.SIGKILL
    assert took < 10.0, took


def test_kill_ends_the_child_at_once() -> None:
    w = Worker("deaf", deaf_main)
    w.start(60.0)
    w.kill()
    w.join(10.0)
    assert w.exitcode == -signal.SIGKILL
    assert isinstance(w.ready, Ready)
    t0 = time.monotonic()
    w.stop(30.0)
    assert time.monotonic() - t0 < 5.0


def test_the_child_ends_when_its_parent_dies_and_runs_its_hook(tmp_path: Path) -> None:
    marker = tmp_path / "orphaned"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, str(CHILDREN), "orphan", str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child) and not marker.exists()
        parent.kill()
        parent.wait(10)
        assert _gone(child, 20.0), "the worker outlived its parent"
        assert marker.read_text() == f"{child}\n"
    finally:
        parent.kill()
        parent.wait(10)


def test_a_full_inbox_of_a_dead_child_does_not_hold_the_parent_at_exit() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, str(CHILDREN), "flood"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
