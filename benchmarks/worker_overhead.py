"""CPU cost of the writer's messages through the worker helper, against the tuples it replaced.

Sends what the engine sends the writer for each volume (a batch of stream rows, a batch of
table rows, and the volume's slot handle, with payloads of a dataset-sized run) to a child
that dispatches them to handlers that only touch the fields, three ways:

- ``tuples``: the former path, three string-tagged tuples on a bare ``multiprocessing``
  queue, dispatched by an if/elif chain;
- ``worker``: the same three as frozen-dataclass messages through
  :class:`~rig.core.worker.Worker` (its log check on each side) and one dispatch table:
  the helper's own cost per message;
- ``batched``: what the writer client sends now: the stream and table rows in one
  :class:`~acquisition.writer._messages.Records`, then the volume (two queue transits).

It reports CPU time (``time.process_time``, not wall clock: the load of a shared machine
hurts it less) per volume's messages and per message, on the sending side (the engine's
thread plus the queue's feeder thread, which pickles) and on the receiving side (unpickling
and dispatch). The runs are interleaved so all three see the same load. Usage::

    python benchmarks/worker_overhead.py [--volumes 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from acquisition.writer._messages import Records, Volume  # noqa: E402
from rig.core.worker import Handlers, Message, Stop, Worker, WorkerContext, dispatch  # noqa: E402


@dataclass(frozen=True)
class Done(Message):
    cpu_s: float
    n: int


def _payloads() -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    rows = np.zeros((600, 11))  # 0.1 s of the 6 kHz stream, with one extra analog input
    table = {f"c{k}": np.zeros(6) for k in range(25)}  # the frames table's ~25 columns
    planes = np.arange(40, dtype=np.int64)  # one volume's plane triggers
    return rows, table, planes


# -- the former path ----------------------------------------------------------------------------
def tuples_child(inbox: Any, outbox: Any) -> None:
    n = 0
    sink = 0
    cpu0 = time.process_time()
    while True:
        msg = inbox.get()
        kind = msg[0]
        if kind == "stream":
            sink += len(msg[1])
        elif kind == "table":
            sink += len(msg[1]) + len(msg[2])
        elif kind == "volume":
            _, slot, t, start, planes, marker, missing = msg
            sink += slot + t + start + marker + len(planes) + len(missing)
        elif kind == "close":
            outbox.put(("done", time.process_time() - cpu0, n))
            return
        n += 1


def run_tuples(volumes: int) -> tuple[float, float, int]:
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(maxsize=4096), ctx.Queue()
    proc = ctx.Process(target=tuples_child, args=(inbox, outbox))
    proc.start()
    rows, table, planes = _payloads()
    inbox.put(("table", "warm-up", table))
    time.sleep(1.0)
    cpu0 = time.process_time()
    for i in range(volumes):
        inbox.put(("stream", rows))
        inbox.put(("table", "stimulus/frames", table))
        inbox.put(("volume", i % 8, i, 600 + i, planes, 540 + i, ()))
    inbox.put(("close",))
    _, child_cpu, got = outbox.get(timeout=600)
    parent_cpu = time.process_time() - cpu0
    proc.join(30)
    assert got == 3 * volumes + 1, got
    return parent_cpu, child_cpu, 3 * volumes


# -- the worker helper ---------------------------------------------------------------------------
def worker_child(ctx: WorkerContext) -> None:
    count = [0, 0]
    stopped: list[Stop] = []

    def records(m: Records) -> None:
        if m.stream is not None:
            count[1] += len(m.stream)
        for path, rows in m.tables:
            count[1] += len(path) + len(rows)

    def volume(m: Volume) -> None:
        count[1] += m.slot + m.t + m.start + m.marker + len(m.planes) + len(m.missing)

    handlers: Handlers = {Records: records, Volume: volume, Stop: stopped.append}
    ctx.ready()
    cpu0 = time.process_time()
    while not stopped:
        msg = ctx.receive()
        if msg is not None:
            dispatch(handlers, msg, ctx.name)
            count[0] += 1
    ctx.send(Done(time.process_time() - cpu0, count[0] - 1))


def run_worker(volumes: int, batched: bool) -> tuple[float, float, int]:
    w = Worker("bench", worker_child, inbox=4096)
    w.start(120.0)
    rows, table, planes = _payloads()
    w.send(Records(None, (("warm-up", table),)), timeout=None)
    time.sleep(1.0)
    cpu0 = time.process_time()
    for i in range(volumes):
        if batched:
            w.send(Records(rows, (("stimulus/frames", table),)), timeout=None)
        else:
            w.send(Records(rows, ()), timeout=None)
            w.send(Records(None, (("stimulus/frames", table),)), timeout=None)
        w.send(Volume(i % 8, i, 600 + i, planes, 540 + i, ()), timeout=None)
    w.send(Stop(), timeout=None)
    done = None
    while done is None:
        msg = w.receive(600.0)
        done = msg if isinstance(msg, Done) else None
    parent_cpu = time.process_time() - cpu0
    w.stop(30.0, request=None)
    n = (2 if batched else 3) * volumes
    assert done.n == n + 1, done.n
    return parent_cpu, done.cpu_s, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    v = args.volumes
    results: dict[str, list[tuple[float, float, int]]] = {"tuples": [], "worker": [], "batched": []}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):  # interleaved, so all see the same load
        results["tuples"].append(run_tuples(v))
        results["worker"].append(run_worker(v, batched=False))
        results["batched"].append(run_worker(v, batched=True))
    load1 = os.getloadavg()[0]
    print(
        f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs; {v} volumes x "
        f"{args.repeats} runs; CPU µs, median [min] of the runs"
    )
    print(
        f"{'path':8s} {'msgs/vol':>8s}  {'send per vol':>15s}  {'receive per vol':>15s}  "
        f"{'send per msg':>15s}  {'receive per msg':>15s}"
    )
    for name, runs in results.items():
        per = runs[0][2] / v
        send = [p / v * 1e6 for p, _, _ in runs]
        recv = [c / v * 1e6 for _, c, _ in runs]

        def cell(xs: list[float], div: float) -> str:
            return f"{statistics.median(xs) / div:7.1f} [{min(xs) / div:5.1f}]"

        print(
            f"{name:8s} {per:8.0f}  {cell(send, 1)}  {cell(recv, 1)}  "
            f"{cell(send, per)}  {cell(recv, per)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
