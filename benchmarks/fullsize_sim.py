"""The simulated rig at the dataset's size: a real-time session and the brain's render cost.

1. Render cost: the virtual brain of ``hardware_configs/simulated-fullsize.toml``
   (72 x 1328 x 2048, 70,000 neurons) renders volumes on this thread; printed as
   CPU seconds of one core per volume against the 0.76 s limit (1.2 x real time).
2. A real-time session (real-time clock, ``--seconds``, default 60) on that config:
   flashes, forward flow and a looming shadow. Printed: volumes written of those
   expected, dropped volumes and planes, the real-time factor of the running phase
   (samples recorded over wall time, first chunk to last), start-up and close (the
   writer's backlog) apart, and the shape of ``/volumes/raw``.
3. The raw disk (write + fsync, in the session's folder, in the same invocation):
   428 MB/s of volumes cannot all reach a disk slower than that, so drops are then
   the disk's, and the script says so.

``--markdown`` rewrites the generated block in benchmarks/README.md with the figures.

Usage: python benchmarks/fullsize_sim.py [--seconds 60] [--volumes 8] [--markdown] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._markdown import write_block  # noqa: E402
from benchmarks.write_throughput import raw_disk  # noqa: E402
from rig.core.config import load_config  # noqa: E402
from rig.engine import Engine, RunStatus  # noqa: E402
from stimuli.library import Flash, Flow, Shadow  # noqa: E402
from stimuli.protocol import Protocol, condition, step  # noqa: E402

CONFIG = REPO / "hardware_configs" / "simulated-fullsize.toml"
README = REPO / "benchmarks" / "README.md"
LIMIT_S = 0.76


def render_cost(volumes: int) -> tuple[float, float, tuple[int, int, int]]:
    """CPU seconds per volume of the full-size brain, and its set-up time."""
    from acquisition.fish import VirtualFish

    rig = load_config(CONFIG)
    t = time.process_time()
    fish = VirtualFish(
        rig.sim.fish,
        rig.daq.sample_rate_hz,
        rig.microscope.shape_zyx,
        0,
        rig.microscope.voxel_size_um,
    )
    setup = time.process_time() - t
    out = np.empty(rig.microscope.shape_zyx, dtype=np.uint16)
    fish.image_volume(rig.microscope.volume_period_s, out)  # warm-up
    t = time.process_time()
    for _ in range(volumes):
        fish.image_volume(rig.microscope.volume_period_s, out)
    return (time.process_time() - t) / volumes, setup, out.shape  # type: ignore[return-value]


def realtime_session(seconds: float, out_dir: Path) -> dict[str, float | int | str]:
    rig = load_config(CONFIG)
    third = seconds / 3
    proto = Protocol(
        name="full-size real time",
        conditions=[
            condition("flash", step(Flash(period_s=10.0, on_s=5.0), 10.0), seconds=third),
            condition("flow", step(Flow(gain=2.0), third), seconds=third),
            condition("shadow", step(Shadow(mode="loom", period_s=5.0), 5.0), seconds=third),
        ],
    )
    engine = Engine(rig, proto, out_dir, clock="realtime", seed=1)
    engine.arm()
    seen: list[tuple[float, int]] = []  # (wall, sample) at each progress call while running

    def progress(st: RunStatus) -> None:
        seen.append((time.perf_counter(), st.sample))

    t0 = time.perf_counter()
    final = engine.run(progress)
    wall = time.perf_counter() - t0
    running = [(t, n) for t, n in seen[:-1] if n > 0]  # the last call comes after the close
    fs = rig.daq.sample_rate_hz
    if len(running) >= 2:
        (ta, na), (tb, nb) = running[0], running[-1]
        rtf_running = (nb - na) / fs / (tb - ta)
        startup = ta - t0 - na / fs
        close = t0 + wall - tb - (engine.timeline.end_sample - nb) / fs
    else:
        rtf_running, startup, close = float("nan"), float("nan"), float("nan")
    assert engine.path is not None
    with h5py.File(engine.path, "r") as f:
        shape = tuple(int(x) for x in f["volumes/raw"].shape)
        written = int(f.attrs.get("volumes_dropped", 0))
        planes_dropped = int(f.attrs.get("planes_dropped", 0))
    return {
        "status": final.value,
        "experiment_s": engine.timeline.duration_s,
        "wall_s": wall,
        "rtf_running": rtf_running,
        "startup_s": startup,
        "close_s": close,
        "volumes": shape[0],
        "expected": engine.timeline.n_volumes,
        "dropped": written,
        "planes_dropped": planes_dropped,
        "shape": "x".join(str(x) for x in shape),
        "path": str(engine.path),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="real-time session length")
    ap.add_argument("--volumes", type=int, default=8, help="volumes for the render cost")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the session file")
    ap.add_argument("--markdown", action="store_true", help="rewrite the block in README.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    per_volume, setup, shape = render_cost(args.volumes)
    print(
        f"render    {shape}: {per_volume:.3f} s of one core per volume (limit {LIMIT_S} s: "
        f"ratio to the limit {per_volume / LIMIT_S:.2f}, {0.9141 / per_volume:.2f} x real time); "
        f"brain set-up {setup:.1f} s"
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="zaprig-fullsize-"))
    out.mkdir(parents=True, exist_ok=True)
    m = load_config(CONFIG).microscope
    data_mbs = m.width * m.height * m.planes_per_volume * 2 / 1e6 / m.volume_period_s
    raw_mbs = raw_disk(out, gb=3.0)
    disk_limited = raw_mbs < 1.1 * data_mbs
    print(
        f"disk      {raw_mbs:.0f} MB/s raw (write + fsync) for {data_mbs:.0f} MB/s of volumes: "
        f"ratio {raw_mbs / data_mbs:.2f}"
        + (" -- DISK-LIMITED: dropped volumes are the disk's" if disk_limited else "")
    )
    r = realtime_session(args.seconds, out)
    rtf = float(r["rtf_running"])
    print(
        f"session   {r['status']}: {r['volumes']} of {r['expected']} volumes of {r['shape']}, "
        f"{r['dropped']} volumes and {r['planes_dropped']} planes dropped; "
        f"{r['experiment_s']:.1f} s of experiment: running phase real-time factor {rtf:.3f} "
        f"(limit >= 0.99), start-up {float(r['startup_s']):.2f} s, close (the image lane's "
        f"and the writer's backlog) {float(r['close_s']):.1f} s; {r['wall_s']:.1f} s wall in all"
    )
    ok = (
        r["status"] == "complete"
        and (r["dropped"] == 0 or disk_limited)
        and r["planes_dropped"] == 0
        and r["volumes"] == r["expected"]
        and rtf >= 0.99
        and per_volume <= LIMIT_S
    )
    if args.markdown:
        text = (
            f"Machine load when measured (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} on {os.cpu_count()} cores.\n\n"
            "| what | measured | limit | ratio |\n|---|---|---|---|\n"
            f"| full-size brain render, CPU s per volume | {per_volume:.3f} | {LIMIT_S} | "
            f"{LIMIT_S / per_volume:.2f} |\n"
            f"| real-time session: volumes written / expected | {r['volumes']} / "
            f"{r['expected']} | all | {int(r['volumes']) / max(1, int(r['expected'])):.3f} |\n"
            f"| raw disk (write + fsync) for {data_mbs:.0f} MB/s of volumes, MB/s | {raw_mbs:.0f} "
            f"| {data_mbs:.0f} | {raw_mbs / data_mbs:.2f} |\n"
            f"| dropped volumes / planes | {r['dropped']} / {r['planes_dropped']} | 0"
            f"{' (the disk has < 10 % headroom)' if disk_limited else ''} | - |\n"
            f"| real-time factor, running phase ({r['experiment_s']:.0f} s session) | {rtf:.3f} "
            f"| >= 0.99 | {rtf / 0.99:.3f} |\n"
            "| start-up / close (the image lane's and the writer's backlog), s | "
            f"{float(r['startup_s']):.2f} / "
            f"{float(r['close_s']):.1f} | - | - |\n"
            f"| volume shape | {r['shape']} | 7879 x 72 x 1328 x 2048 per volume | - |\n"
        )
        write_block(README, "fullsize_sim", text)
        print(f"wrote the block in {README}")
    if not args.keep:
        Path(str(r["path"])).unlink(missing_ok=True)
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)  # the session's log is there too
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
