"""Worker mains for tests/test_worker.py (importable by a spawned child), and a parent script.

``python tests/_worker_children.py orphan MARKER``: starts an ``orphan_main`` worker, prints its
pid and waits to be killed. ``python tests/_worker_children.py flood``: fills a deaf worker's
inbox, kills it and exits (which must not hang).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rig.core.worker import Handlers, Message, Ready, Stop, Worker, WorkerContext, dispatch


@dataclass(frozen=True)
class Hello(Ready):
    pid: int
    greeting: str


@dataclass(frozen=True)
class Echo(Message):
    n: int


@dataclass(frozen=True)
class Echoed(Message):
    n: int


@dataclass(frozen=True)
class Boom(Message):
    pass


@dataclass(frozen=True)
class Blob(Message):
    data: bytes


def deep_failure(n: int) -> None:
    raise ValueError(f"boom {n}")


def echo_main(ctx: WorkerContext, greeting: str) -> None:
    """Echoes n as 2n; Boom raises from deep_failure; Stop ends it."""
    stopped = []
    handlers: Handlers = {
        Echo: lambda m: ctx.send(Echoed(2 * m.n)),
        Boom: lambda m: deep_failure(42),
        Stop: stopped.append,
    }
    ctx.ready(Hello(os.getpid(), greeting))
    while not stopped:
        msg = ctx.receive(0.2)
        if msg is not None:
            dispatch(handlers, msg, ctx.name)


def open_the_device() -> None:
    raise RuntimeError("no such device")


def fails_before_ready(ctx: WorkerContext) -> None:
    open_the_device()
    ctx.ready()


def slow_to_start(ctx: WorkerContext) -> None:
    time.sleep(60)
    ctx.ready()


def deaf_main(ctx: WorkerContext) -> None:
    """Ready, then never reads its inbox nor looks at the stop flag."""
    ctx.ready()
    while True:
        time.sleep(0.05)


def orphan_main(ctx: WorkerContext, marker: str) -> None:
    ctx.on_parent_death(lambda: Path(marker).write_text(f"{os.getpid()}\n"))
    ctx.ready()
    while not ctx.stop_requested:
        time.sleep(0.05)


def _orphan(marker: str) -> None:
    w = Worker("orphan", orphan_main, marker)
    w.start(60.0)
    print(w.pid, flush=True)
    time.sleep(120)


def _flood() -> None:
    w = Worker("deaf", deaf_main, inbox=0)
    w.start(60.0)
    for _ in range(64):  # 64 MB: far more than a pipe holds; the feeder thread blocks
        w.send(Blob(b"x" * 2**20))
    w.kill()
    w.stop(1.0)
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "orphan":
        _orphan(sys.argv[2])
    elif sys.argv[1] == "flood":
        _flood()
