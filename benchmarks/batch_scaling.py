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
apart) and its ratio to the single-process run and to 1 worker; the CPU seconds per
volume of the work (the tasks', measured inside each task; the single process's own)
and its ratio to the single process, with the page faults per volume; and where the
machine's CPU went over the run, from /proc/stat and the job's processes: the cores
the job got (this process, the scheduler, the nannies and workers), the cores other
processes took, the cores left idle, the disk's MB/s read and written (write: its
ratio to the raw disk), and the least memory available. For 1 against 2 workers a
line says what stopped the second worker, from the same run: its throughput ratio is
(task cores, 2 / 1 worker) x (CPU per volume, 1 / 2 workers), and the CPU it lacked
was idle or taken by other processes, or the disk or the memory ran out. From the 1
worker's tasks: CPU seconds, bytes read and written per volume, which the model in
docs/batch.md extrapolates to N machines.

``--markdown`` rewrites the generated blocks in docs/batch.md.

Usage: python benchmarks/batch_scaling.py [--sessions 3] [--volumes 12]
           [--commands readout,export] [--no-cli] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
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
    task_cpu_s: float  # the work's CPU: the tasks' (inside each task), or the single process's
    job_cpu_s: float  # every process of the job: this one, scheduler, nannies, workers
    others_cpu_s: float  # the machine's busy core-seconds less the job's: other processes
    idle_cpu_s: float  # core-seconds idle (iowait included)
    iowait_cpu_s: float  # of which waiting for the disk
    busy: float  # machine CPU busy fraction over the run
    load: float  # 1-min load at the end
    read_mbs: float
    write_mbs: float
    min_available_gb: float  # least memory available over the run
    per_volume: dict[str, float]  # cpu_s, faults, read_mb, write_mb per session volume

    @property
    def vps(self) -> float:
        return self.volumes / self.wall_s

    def cores(self, what: str) -> float:
        """Cores over the run: ``task``, ``job``, ``others`` or ``idle``."""
        return float(getattr(self, f"{what}_cpu_s")) / self.wall_s


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


def _cpu(p: psutil.Process) -> float | None:
    try:
        t = p.cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


class _Meter:
    """The machine's CPU (/proc/stat), the job's processes' CPU, the disk and the memory
    over a run. The job is this process and its descendants (the LocalCluster's nannies
    and workers, or the ``dask`` CLI's scheduler and workers), sampled every 0.25 s so that
    a process that starts during the run counts from 0 and one that ends, to its last
    sample."""

    def __enter__(self) -> _Meter:
        self.me = psutil.Process()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.min_available = psutil.virtual_memory().available
        self.sampler_cpu_s = 0.0  # this meter's own thread (in the single process's CPU)
        self._sample(start=True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.perf_counter()
        self.cpu0 = psutil.cpu_times()
        self.io0 = psutil.disk_io_counters()
        self.faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.thread.start()
        return self

    def _sample(self, start: bool = False) -> None:
        procs = [self.me]
        with contextlib.suppress(psutil.Error):
            procs += self.me.children(recursive=True)
        for p in procs:
            c = _cpu(p)
            if c is None:
                continue
            if p.pid not in self.first:
                self.first[p.pid] = c if start else 0.0
            self.last[p.pid] = c
        self.min_available = min(self.min_available, psutil.virtual_memory().available)

    def _loop(self) -> None:
        t0 = time.thread_time()
        while not self.stop.wait(0.25):
            self._sample()
            self.sampler_cpu_s = time.thread_time() - t0

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        c1 = psutil.cpu_times()
        io1 = psutil.disk_io_counters()
        self.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults0
        self.stop.set()
        self.thread.join()
        self._sample()
        self.sampler_cpu = self.sampler_cpu_s
        self.job = sum(self.last[k] - self.first[k] for k in self.last)
        d = {f: getattr(c1, f) - getattr(self.cpu0, f) for f in c1._fields}
        # guest time is counted in user already
        parts = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        total = sum(d.get(f, 0.0) for f in parts)
        self.idle = d.get("idle", 0.0) + d.get("iowait", 0.0)
        self.iowait = d.get("iowait", 0.0)
        self.busy_s = total - self.idle
        self.busy = self.busy_s / total if total else 0.0
        self.read_mbs = (io1.read_bytes - self.io0.read_bytes) / 1e6 / self.wall
        self.write_mbs = (io1.write_bytes - self.io0.write_bytes) / 1e6 / self.wall


def _summary(
    command: str, how: str, volumes: int, m: _Meter, results: list[Any], faults: int
) -> Run:
    cpu = sum(r.cpu_s for r in results)
    read = sum(r.bytes_read for r in results)
    written = sum(r.bytes_written for r in results)
    per = {
        "cpu_s": cpu / volumes,
        "faults": faults / volumes,
        "read_mb": read / 1e6 / volumes,
        "write_mb": written / 1e6 / volumes,
    }
    return Run(
        command, how, volumes, m.wall, cpu, m.job, max(0.0, m.busy_s - m.job), m.idle,
        m.iowait, m.busy, os.getloadavg()[0], m.read_mbs, m.write_mbs,
        m.min_available / 1e9, per,
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
    results.append(_Fake(-m.sampler_cpu, 0, 0))  # the meter's thread is not the work
    r = _summary(command, "single process", _volumes(sessions), m, results, m.faults)
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
    faults = sum(r.minor_faults for r in results)
    return _summary(command, how, _volumes(sessions), m, results, faults)


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


SINGLE, ONE, TWO = "single process", "LocalCluster, 1 worker", "LocalCluster, 2 workers"


def _by(runs: list[Run], how: str) -> dict[str, Run]:
    return {r.command: r for r in runs if r.how == how}


def table(runs: list[Run], raw_mbs: float) -> str:
    """Throughput, the work's CPU per volume, and where the machine's CPU went."""
    single, one = _by(runs, SINGLE), _by(runs, ONE)
    lines = [
        "| command | how | volumes/s | x single process | x 1 worker | CPU s per volume "
        "(x single process) | page faults per volume | job / other processes / idle (cores) "
        "| disk read / write MB/s | write / raw disk | memory available (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s, o = single[r.command], one.get(r.command)
        cpv, scpv = r.per_volume["cpu_s"], s.per_volume["cpu_s"]
        lines.append(
            f"| {r.command} | {r.how} | {r.vps:.2f} | {r.vps / s.vps:.2f} | "
            f"{(r.vps / o.vps) if o else float('nan'):.2f} | {cpv:.2f} ({cpv / scpv:.2f}) | "
            f"{r.per_volume['faults']:,.0f} | {r.cores('job'):.2f} / {r.cores('others'):.2f} / "
            f"{r.cores('idle'):.2f} | {r.read_mbs:.0f} / {r.write_mbs:.0f} | "
            f"{r.write_mbs / raw_mbs:.2f} | {r.min_available_gb:.1f} GB |"
        )
    return "\n".join(lines) + "\n"


def verdict(one: Run, two: Run, raw_mbs: float, cpus: int, target: float = 1.7) -> str:
    """What 2 workers reached against 1, and what stopped them, from the same run.

    volumes/s = task cores / CPU s per volume, so the ratio of two runs is exactly
    (task cores, 2 / 1) x (CPU s per volume, 1 / 2): the second worker either got less
    than the cores it needed, or each volume cost more. The cores it did not get were
    idle (a resource other than the CPU: the disk, if the CPUs waited on it) or taken by
    other processes; the disk's write rate and the memory left are beside them.
    """
    x = two.vps / one.vps
    got = two.cores("task") / one.cores("task")
    cost = one.per_volume["cpu_s"] / two.per_volume["cpu_s"]
    head = (
        f"{two.command}: 2 workers {x:.2f}x 1 worker = cores {got:.2f}x "
        f"({one.cores('task'):.2f} -> {two.cores('task'):.2f}) x CPU per volume 1/{1 / cost:.2f}"
    )
    if x >= target:
        return f"{head}: reached {target}x."
    need = target * one.cores("task") / min(cost, 1.0)
    reasons = []
    idle, others, iowait = two.cores("idle"), two.cores("others"), two.iowait_cpu_s / two.wall_s
    if got * min(cost, 1.0) < target:
        where = (
            f"the job's processes got {two.cores('job'):.2f} of {cpus} cores, other processes "
            f"took {others:.2f}, {idle:.2f} idle"
        )
        if idle < 0.1 * cpus:
            reasons.append(f"CPU: {target}x needed {need:.2f} cores for the tasks; {where}")
        elif iowait > 0.5 * idle:
            reasons.append(f"disk: the CPUs waited on it ({iowait:.2f} cores in iowait); {where}")
        else:
            reasons.append(
                f"not CPU, disk or memory: {idle:.2f} cores stayed idle; {where} "
                "(too few tasks for two workers, or the work waits elsewhere)"
            )
    if cost < 0.9:
        reasons.append(
            f"each volume cost {1 / cost:.2f}x the CPU with 2 workers (the two share "
            "memory bandwidth and caches)"
        )
    if two.write_mbs > 0.8 * raw_mbs:
        reasons.append(f"disk: writes {two.write_mbs:.0f} MB/s of the raw {raw_mbs:.0f}")
    if two.min_available_gb < 1.0:
        reasons.append(f"memory: {two.min_available_gb:.1f} GB left available at the least")
    return f"{head}: short of {target}x. " + "; ".join(reasons) + "."


def costs(runs: list[Run]) -> str:
    lines = [
        "| command | CPU s per volume (1 worker; single process) | MB read per volume "
        "| MB written per volume |",
        "|---|---|---|---|",
    ]
    single = _by(runs, SINGLE)
    for r in runs:
        if r.how == ONE:
            p = r.per_volume
            lines.append(
                f"| {r.command} | {p['cpu_s']:.2f}; {single[r.command].per_volume['cpu_s']:.2f} | "
                f"{p['read_mb']:.0f} | {p['write_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--volumes", type=int, default=12, help="volumes per session")
    ap.add_argument("--config", type=Path, default=CONFIG, help="rig config of the sessions")
    ap.add_argument("--out", type=Path, default=None, help="folder (default: a temporary one)")
    ap.add_argument(
        "--commands", default="readout,export", help="which to run (default: readout,export)"
    )
    ap.add_argument("--no-cli", action="store_true", help="leave out the dask CLI cluster")
    ap.add_argument("--markdown", action="store_true", help="rewrite the blocks in docs/batch.md")
    args = ap.parse_args(argv)
    commands = [c for c in args.commands.split(",") if c]
    if not commands or set(commands) - {"readout", "export"}:
        ap.error("--commands: readout, export or both")
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
                f"{command:8} {how:38} {r.vps:6.2f} volumes/s  CPU {r.per_volume['cpu_s']:.2f} s"
                f" and {r.per_volume['faults']:,.0f} page faults per volume; cores: tasks "
                f"{r.cores('task'):.2f}, job {r.cores('job'):.2f}, other processes "
                f"{r.cores('others'):.2f}, idle {r.cores('idle'):.2f}; load {r.load:.1f}; disk "
                f"{r.read_mbs:.0f} MB/s read, {r.write_mbs:.0f} MB/s written",
                flush=True,
            )

        for command in commands:
            run(command, "single process", lambda o, c=command: single_process(c, sessions, o))
            for n in (1, 2):
                how = f"LocalCluster, {n} worker{'s' if n > 1 else ''}"
                with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR
                                  ) as cluster, Client(cluster) as client:  # fmt: skip
                    run(
                        command,
                        how,
                        lambda o, c=command, cl=client, h=how: on_cluster(c, sessions, o, cl, h),
                    )
            if args.no_cli:
                continue
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
    cpus = os.cpu_count() or 1
    one, two = _by(runs, ONE), _by(runs, TWO)
    verdicts = "".join(f"- {verdict(one[c], two[c], raw_mbs, cpus)}\n" for c in commands)
    print(head + table(runs, raw_mbs) + "\n" + verdicts + "\nper-task cost:\n" + costs(runs))
    if args.markdown and args.config == CONFIG:
        if len(commands) < 2 or args.no_cli:
            raise SystemExit("--markdown needs both commands and the dask CLI run")
        write_block(DOC, "batch_scaling", head + table(runs, raw_mbs) + "\n" + verdicts)
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
