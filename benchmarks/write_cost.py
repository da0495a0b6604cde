"""What writing the dataset's volumes costs the CPU, with and without drop-behind (issues 29, 31).

Writes ``--volumes`` full-size volumes (72 x 1328 x 2048 uint16, 392 MB) into a chunked
HDF5 dataset laid out as the session file's ``/volumes/raw`` (one chunk per plane), as
fast as the disk takes them, in alternating runs, each after ``--idle`` seconds of
pause (the first fish of the day comes after one):

* ``plain``: h5py's write, the page cache left to the kernel (the writer before);
* ``drop-behind``: the same, with the writer's
  :class:`acquisition.writer._dropbehind.DropBehind` after each volume.

Printed per run: CPU time of the writing process (user + system) per MB, its system part,
the volumes' write rate, and the machine's load. The summary is the ratio of the two
runs' CPU per MB (the limit it is held against is the plain run of the same series,
on the same disk, minutes apart), and each run's CPU per volume as a share of the
dataset's volume period (0.9141 s): the fraction of one core the writer needs at the
dataset's rate. Everything written is deleted.

``--markdown`` rewrites the generated block in benchmarks/README.md.

Usage: python benchmarks/write_cost.py [--volumes 12] [--pairs 2] [--idle 30] [--dir FOLDER]
       [--markdown]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402

from acquisition.writer._dropbehind import DropBehind  # noqa: E402
from benchmarks._markdown import write_block  # noqa: E402

SHAPE_ZYX = (72, 1328, 2048)
VOLUME_PERIOD_S = 0.9141


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


def run(folder: Path, volume: np.ndarray, n: int, drop: bool) -> dict[str, float]:
    """One run: ``n`` volumes written into a new file, which is then deleted."""
    path = folder / f"write_cost_{os.getpid()}.h5"
    load = os.getloadavg()[0]
    f = h5py.File(path, "w", libver="latest")
    d = f.create_dataset(
        "raw", shape=(n, *SHAPE_ZYX), dtype=np.uint16, chunks=(1, 1, *SHAPE_ZYX[1:])
    )
    behind = DropBehind(f.id.get_vfd_handle()) if drop else None
    per_volume = []
    t0, (c0, s0) = time.perf_counter(), _cpu()
    for t in range(n):
        ca = _cpu()[0]
        d[t] = volume
        f.flush()
        if behind is not None:
            behind.advance()
        per_volume.append(_cpu()[0] - ca)
    wall = time.perf_counter() - t0
    c1, s1 = _cpu()
    f.close()
    path.unlink()
    mb = n * volume.nbytes / 1e6
    steady = per_volume[n // 2 :]
    return {
        "load": load,
        "cpu_ms_per_mb": 1e3 * (c1 - c0) / mb,
        "sys_ms_per_mb": 1e3 * (s1 - s0) / mb,
        "mb_s": mb / wall,
        "core_share": float(np.mean(per_volume)) / VOLUME_PERIOD_S,
        "core_share_steady": float(np.mean(steady)) / VOLUME_PERIOD_S,
        "first_volume_cpu_s": per_volume[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", type=int, default=12)
    ap.add_argument("--pairs", type=int, default=2, help="plain/drop-behind pairs")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of pause before each run")
    ap.add_argument("--dir", type=Path, default=None, help="folder to write in (default: temp)")
    ap.add_argument("--markdown", action="store_true", help="rewrite the block in README.md")
    a = ap.parse_args(argv)
    folder = a.dir or Path(tempfile.gettempdir())
    rng = np.random.default_rng(0)
    volume = rng.integers(90, 4000, size=SHAPE_ZYX, dtype=np.uint16)
    rows = []
    for pair in range(a.pairs):
        for drop in (False, True):
            time.sleep(a.idle)
            r = run(folder, volume, a.volumes, drop)
            r["drop"] = drop
            r["pair"] = pair + 1
            rows.append(r)
            print(
                f"run {pair + 1} {'drop-behind' if drop else 'plain':11s} load {r['load']:.2f}: "
                f"{r['cpu_ms_per_mb']:.3f} ms CPU/MB (system {r['sys_ms_per_mb']:.3f}), "
                f"{r['mb_s']:.0f} MB/s, {r['core_share']:.2f} of a core at the dataset's rate "
                f"({r['core_share_steady']:.2f} from volume {a.volumes // 2 + 1} on), "
                f"first volume {r['first_volume_cpu_s']:.2f} s CPU",
                flush=True,
            )
    plain = max(r["cpu_ms_per_mb"] for r in rows if not r["drop"])
    worst = max(r["cpu_ms_per_mb"] for r in rows if r["drop"])
    ratio = worst / plain
    summary = (
        f"worst drop-behind run {worst:.3f} ms CPU/MB = {ratio:.2f}x the worst plain run "
        f"({plain:.3f}); limit 0.5x: {'PASS' if ratio <= 0.5 else 'FAIL'}"
    )
    print(summary)
    if a.markdown:
        lines = [
            f"{a.volumes} full-size volumes per run ({a.volumes * volume.nbytes / 1e9:.1f} GB), "
            f"each run after {a.idle:.0f} s idle, {os.cpu_count()} CPUs\n\n",
            "| run | writer | load | CPU ms/MB (system) | MB/s | share of a core at 428 MB/s "
            "(second half) | first volume CPU (s) |\n",
            "|---|---|---|---|---|---|---|\n",
        ]
        for r in rows:
            lines.append(
                f"| {r['pair']:.0f} | {'drop-behind' if r['drop'] else 'plain'} | {r['load']:.2f} "
                f"| {r['cpu_ms_per_mb']:.3f} ({r['sys_ms_per_mb']:.3f}) | {r['mb_s']:.0f} "
                f"| {r['core_share']:.2f} ({r['core_share_steady']:.2f}) "
                f"| {r['first_volume_cpu_s']:.2f} |\n"
            )
        lines.append(f"\n{summary}\n")
        write_block(REPO / "benchmarks" / "README.md", "write_cost", "".join(lines))
    return 0 if ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
