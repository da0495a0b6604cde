"""``zaprig batch`` at the dataset's size: throughput with 1 and 2 workers, and over TCP.

1. Makes ``--sessions`` short full-size sessions (hardware_configs/simulated-fullsize.toml,
   72 x 1328 x 2048, 392 MB a volume, virtual time, ``--volumes`` volumes each).
2. Measures the raw disk in the same folder (sequential write + fsync, like ``dd
   conv=fsync``): the ceiling any writer reaches.
3. Runs the offline readout and the zapbench export over all the sessions:
   single-process (``zaprig readout``'s and ``zaprig export``'s own paths, no Dask), a LocalCluster of 1 and of 2 worker processes, and a
   scheduler with two worker processes started by the ``dask`` command line over TCP
   on 127.0.0.1. Each output is deleted after its run.

Printed per run: volumes/s (session volumes over the job's wall time, cluster start
apart), the ratio to the single-process run and to 1 worker, the workers' CPU (core
seconds of the tasks over the wall time: how many cores the job got), the machine's
CPU busy fraction and load, and the disk's MB/s read and written (its ratio to the raw
disk). From the tasks: CPU seconds, bytes read and bytes written per volume, which
the model in docs/batch.md extrapolates to N machines.

``--markdown`` rewrites the generated blocks in docs/batch.md.

Usage: python benchmarks/batch_scaling.py [--sessions 3] [--volumes 12] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from benchmarks._markdown import write_block  # noqa: E402
from benchmarks.write_throughput import raw_disk  # noqa: E402

CONFIG = REPO / "hardware_configs" / "simulated-fullsize.toml"
DOC = REPO / "docs" / "batch.md"
CHUNK = 4


@dataclass
class Run:
    command: str
    how: str
    volumes: int
    wall_s: float
    task_cpu_s: float
    busy: float  # machine CPU busy fraction over the run
    load: float  # 1-min load at the end
    read_mbs: float
    write_mbs: float
    per_volume: dict[str, float]  # cpu_s, read_mb, write_mb per session volume

    @property
    def vps(self) -> float:
        return self.volumes / self.wall_s


def make_sessions(n: int, volumes: int, folder: Path, config: Path) -> list[Path]:
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.library import Flash
    from stimuli.protocol import Protocol, condition, step

    rig = load_config(config)
    period = rig.microscope.volume_period_s
    out = []
    for k in range(n):
        proto = Protocol(
            name="batch scaling",
            conditions=[
                condition("flash", step(Flash(period_s=4.0, on_s=2.0), 4.0), volumes=volumes)
            ],
        )
        e = Engine(
            rig, proto, folder / f"s{k}", clock="virtual", seed=20 + k, fish={"fish_id": f"f{k}"}
        )
        assert e.run() is RunState.COMPLETE, f"session {k} did not complete"
        assert e.path is not None
        out.append(e.path)
        print(f"  session {k}: {e.path.stat().st_size / 1e9:.2f} GB, {period * volumes:.0f} s")
    return out


class _Meter:
    """Machine CPU and disk counters over a run."""

    def __enter__(self) -> _Meter:
        self.t0 = time.perf_counter()
        self.cpu0 = psutil.cpu_times()
        self.io0 = psutil.disk_io_counters()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        c1 = psutil.cpu_times()
        busy = sum(getattr(c1, f) - getattr(self.cpu0, f) for f in ("user", "system", "nice"))
        total = sum(c1) - sum(self.cpu0)
        self.busy = busy / total if total else 0.0
        io1 = psutil.disk_io_counters()
        self.read_mbs = (io1.read_bytes - self.io0.read_bytes) / 1e6 / self.wall
        self.write_mbs = (io1.write_bytes - self.io0.write_bytes) / 1e6 / self.wall


def _summary(command: str, how: str, volumes: int, m: _Meter, results: list[Any]) -> Run:
    cpu = sum(r.cpu_s for r in results)
    read = sum(r.bytes_read for r in results)
    written = sum(r.bytes_written for r in results)
    return Run(
        command, how, volumes, m.wall, cpu, m.busy, os.getloadavg()[0], m.read_mbs, m.write_mbs,
        {"cpu_s": cpu / volumes, "read_mb": read / 1e6 / volumes, "write_mb": written / 1e6 / volumes},
    )  # fmt: skip


def _volumes(sessions: list[Path]) -> int:
    import h5py

    n = 0
    for s in sessions:
        with h5py.File(s, "r") as f:
            n += int(f["volumes/raw"].shape[0])
    return n


def single_process(command: str, sessions: list[Path], out: Path) -> Run:
    """The same work in this one process: ``zaprig export``'s or ``zaprig readout``'s path."""
    from rig.export import export_zapbench
    from rig.readout.offline import readout_session

    results: list[Any] = []
    with _Meter() as m:
        for s in sessions:
            if command == "export":
                c0 = time.process_time()
                export_zapbench(s, out / s.stem, progress=False)
                results.append(_Fake(time.process_time() - c0, 0, _size(out / s.stem / "raw")))
                continue
            c0 = time.process_time()
            readout_session(s, write=False)  # zaprig readout's own path
            results.append(_Fake(time.process_time() - c0, 0, 0))
    r = _summary(command, "single process", _volumes(sessions), m, results)
    if command == "export":
        r.per_volume["read_mb"] = _volume_mb(sessions[0])
    return r


@dataclass
class _Fake:
    cpu_s: float
    bytes_read: int
    bytes_written: int


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _volume_mb(session: Path) -> float:
    import h5py

    with h5py.File(session, "r") as f:
        shape = f["volumes/raw"].shape
    return 2 * shape[1] * shape[2] * shape[3] / 1e6


def on_cluster(command: str, sessions: list[Path], out: Path, client: Any, how: str) -> Run:
    from rig.batch._plan import plan_session
    from rig.batch._run import run_plans

    client.run(_warm)  # a worker's first task would otherwise time its imports
    with _Meter() as m:
        plans = [plan_session(command, s, out, "zapbench", CHUNK) for s in sessions]
        statuses = run_plans(client, plans, f"{command} {how}")
    bad = [s for s in statuses if not s.ok]
    if bad:
        raise SystemExit(f"{how}: {bad[0].stem} failed: {bad[0].error}")
    results = [r for s in statuses for r in s.results]
    return _summary(command, how, _volumes(sessions), m, results)


def _warm() -> None:
    import rig.batch._readout
    import rig.batch._tasks
    import rig.export._zapbench
    import rig.readout  # noqa: F401


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_cluster(folder: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """``dask scheduler`` and ``dask worker --nworkers 2`` as processes, over TCP."""
    port = _port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (folder / "dask-cli.log").open("wb")
    sched = subprocess.Popen(
        ["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    work = subprocess.Popen(
        ["dask", "worker", f"tcp://127.0.0.1:{port}", "--host", "127.0.0.1", "--nworkers", "2",
         "--nthreads", "1", "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    return f"tcp://127.0.0.1:{port}", [sched, work]


def table(runs: list[Run], raw_mbs: float) -> str:
    single = {r.command: r for r in runs if r.how == "single process"}
    one = {r.command: r for r in runs if r.how == "LocalCluster, 1 worker"}
    lines = [
        "| command | how | volumes/s | x single process | x 1 worker | task CPU (cores) | "
        "machine CPU busy | load (1 min) | disk read / write MB/s | write / raw disk |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s, o = single[r.command], one.get(r.command)
        lines.append(
            f"| {r.command} | {r.how} | {r.vps:.2f} | {r.vps / s.vps:.2f} | "
            f"{(r.vps / o.vps) if o else float('nan'):.2f} | {r.task_cpu_s / r.wall_s:.2f} | "
            f"{r.busy * 100:.0f} % | {r.load:.1f} | {r.read_mbs:.0f} / {r.write_mbs:.0f} | "
            f"{r.write_mbs / raw_mbs:.2f} |"
        )
    return "\n".join(lines) + "\n"


def costs(runs: list[Run]) -> str:
    lines = [
        "| command | CPU s per volume | MB read per volume | MB written per volume |",
        "|---|---|---|---|",
    ]
    for r in runs:
        if r.how == "LocalCluster, 1 worker":
            p = r.per_volume
            lines.append(
                f"| {r.command} | {p['cpu_s']:.2f} | {p['read_mb']:.0f} | {p['write_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--volumes", type=int, default=12, help="volumes per session")
    ap.add_argument("--config", type=Path, default=CONFIG, help="rig config of the sessions")
    ap.add_argument("--out", type=Path, default=None, help="folder (default: a temporary one)")
    ap.add_argument("--markdown", action="store_true", help="rewrite the blocks in docs/batch.md")
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    folder = args.out or Path(tempfile.mkdtemp(prefix="zaprig-batch-", dir="/work"))
    folder.mkdir(parents=True, exist_ok=True)
    need = args.sessions * args.volumes * 0.392 * 1.6
    free = shutil.disk_usage(folder).free / 1e9
    if need > 0.8 * free:
        raise SystemExit(f"{folder}: needs about {need:.0f} GB, {free:.0f} GB free")
    load0 = os.getloadavg()
    runs: list[Run] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"making {args.sessions} full-size sessions of {args.volumes} volumes in {folder}")
        sessions = make_sessions(args.sessions, args.volumes, folder / "sessions", args.config)
        raw_mbs = raw_disk(folder, gb=2.0)
        print(f"raw disk: {raw_mbs:.0f} MB/s write + fsync")

        def run(command: str, how: str, fn: Any) -> None:
            out = folder / f"out-{command}"
            r = fn(out)
            shutil.rmtree(out, ignore_errors=True)
            runs.append(r)
            print(
                f"{command:8} {how:32} {r.vps:6.2f} volumes/s  task CPU {r.task_cpu_s / r.wall_s:.2f}"
                f" cores  machine busy {r.busy * 100:.0f} %  load {r.load:.1f}  disk "
                f"{r.read_mbs:.0f} MB/s read, {r.write_mbs:.0f} MB/s written"
            )

        for command in ("readout", "export"):
            run(command, "single process", lambda o, c=command: single_process(c, sessions, o))
            for n in (1, 2):
                how = f"LocalCluster, {n} worker{'s' if n > 1 else ''}"
                with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
                    run(
                        command,
                        how,
                        lambda o, c=command, cl=client, h=how: on_cluster(c, sessions, o, cl, h),
                    )
            address, procs = cli_cluster(folder)
            with Client(address, timeout="60s") as client:
                client.wait_for_workers(2, timeout=120)
                how = "dask CLI: scheduler + 2 workers, TCP"
                run(
                    command,
                    how,
                    lambda o, c=command, cl=client, h=how: on_cluster(c, sessions, o, cl, h),
                )
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
            procs = []
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    load1 = os.getloadavg()
    head = (
        f"{args.sessions} sessions x {args.volumes} volumes of 72 x 1328 x 2048 (392 MB), "
        f"{CHUNK} volumes per task; raw disk {raw_mbs:.0f} MB/s (write + fsync, same run); "
        f"{os.cpu_count()} CPUs; load (1/5/15 min) {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f} "
        f"at the start, {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} at the end.\n\n"
    )
    print(head + table(runs, raw_mbs) + "\nper-task cost (1 worker):\n" + costs(runs))
    if args.markdown and args.config == CONFIG:
        write_block(DOC, "batch_scaling", head + table(runs, raw_mbs))
        write_block(DOC, "batch_costs", costs(runs) + model(runs, raw_mbs))
        print(f"wrote the blocks in {DOC}")
    return 0


def model(runs: list[Run], raw_mbs: float) -> str:
    """Volumes/s on N machines of this one's CPUs: min(CPU bound, shared filesystem bound)."""
    cpus = os.cpu_count() or 1
    out = ["", "| machines | readout: CPU bound | export: CPU bound | shared FS at 1 GB/s | at 5 GB/s |",
           "|---|---|---|---|---|"]  # fmt: skip
    per = {r.command: r.per_volume for r in runs if r.how == "LocalCluster, 1 worker"}
    io = {c: (p["read_mb"] + p["write_mb"]) for c, p in per.items()}
    for n in (1, 2, 4, 8, 16, 32, 64):
        cpu = {c: n * cpus / max(p["cpu_s"], 1e-9) for c, p in per.items()}
        fs = [
            f"readout {b / io['readout']:.0f}, export {b / io['export']:.0f}" for b in (1000, 5000)
        ]
        out.append(f"| {n} | {cpu['readout']:.1f} | {cpu['export']:.1f} | {fs[0]} | {fs[1]} |")
    limits = []
    for c in ("readout", "export"):
        for b in (1000, 5000):
            n_star = b / io[c] * per[c]["cpu_s"] / cpus
            limits.append(f"{c} at {b / 1000:g} GB/s: beyond {n_star:.1f} machines")
    out.append("")
    out.append(
        f"The shared filesystem becomes the limit ({cpus} CPUs a machine): "
        + "; ".join(limits)
        + "."
    )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
