"""The whole built-in protocol (about 2 h of experiment) in virtual time on the simulated rig.

Runs the dataset's nine conditions at the dataset's volume period (0.9141 s) as
fast as the machine allows, then prints the run time, the volume count, each
condition's start volume beside the dataset's ``CONDITION_OFFSETS``, the peak
memory of the engine and the writer, and runs the project's contract checker
(``shared/tools/check_session.py --full``) on the file.

``--markdown`` rewrites the generated block in benchmarks/README.md with this run's
figures and per-chunk costs (full runs only).

Usage: python benchmarks/full_protocol.py [--time-scale 1.0] [--out DIR] [--keep] [--quick]
       [--markdown]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from benchmarks._markdown import write_block  # noqa: E402
from rig.core.config import load_config  # noqa: E402
from rig.engine import Engine, RunStatus  # noqa: E402
from rig.session import read_table  # noqa: E402
from stimuli.builtin import CONDITION_NAMES, CONDITION_OFFSETS, dataset_protocol  # noqa: E402

CHECKER = REPO.parent / "shared" / "tools" / "check_session.py"
#: Peak memory over the 2 hours against the first 10 minutes' (issue 31).
RSS_RATIO_LIMIT = 1.05


class PeakRss(threading.Thread):
    """Peak RSS of this process and, separately, of its children (the writer), every 0.5 s."""

    def __init__(self, where: Callable[[], float] | None = None) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak_me = 0
        self.peak_children = 0
        self.stop = threading.Event()
        self.where = where or (lambda: 0.0)
        #: (experiment seconds, engine RSS, writer RSS, open fds of both) for the soak curve
        self.curve: list[tuple[float, int, int, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            rss = self.me.memory_info().rss
            self.peak_me = max(self.peak_me, rss)
            kids = 0
            fds = self.me.num_fds()
            for c in self.me.children(recursive=True):
                try:
                    kids += c.memory_info().rss
                    fds += c.num_fds()
                except psutil.Error:
                    continue
            self.peak_children = max(self.peak_children, kids)
            self.curve.append((self.where(), rss, kids, fds))
            self.stop.wait(0.5)

    def ratio(self, first_s: float = 600.0) -> float | None:
        """Peak RSS (engine + writer) over the run / over its first ``first_s`` of experiment."""
        c = [x for x in self.curve if x[3] > 0]
        early = [a + b for t, a, b, _ in c if t <= first_s]
        if len(c) < 3 or not early or c[-1][0] <= first_s:
            return None
        return max(a + b for _, a, b, _ in c) / max(early)

    def report(self, first_s: float = 600.0) -> str:
        """Soak curve (10 points), and peak over the whole run vs the first ``first_s``."""
        c = [x for x in self.curve if x[3] > 0]
        if len(c) < 3:
            return "soak      too short for a curve"
        lines = ["soak      experiment_s  engine_MB  writer_MB  open_fds"]
        for i in np.linspace(0, len(c) - 1, 10).astype(int):
            t, a, b, fd = c[i]
            lines.append(f"          {t:12.0f} {a / 1e6:10.0f} {b / 1e6:10.0f} {fd:9d}")
        ratio = self.ratio(first_s)
        if ratio is not None:
            lines.append(
                f"          peak RSS (engine + writer) over the run / over its first "
                f"{first_s / 60:.0f} min: {ratio:.3f} (limit {RSS_RATIO_LIMIT}); open fds "
                f"{c[0][3]} -> {c[-1][3]}"
            )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-scale", type=float, default=1.0, help="1.0 = the full protocol")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="session folder (default: temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the session file")
    ap.add_argument("--quick", action="store_true", help="the protocol at 5 %% of its length")
    ap.add_argument("--markdown", action="store_true", help="rewrite the block in README.md")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    scale = 0.05 if args.quick else args.time_scale
    rig = load_config()
    proto = dataset_protocol().scaled(scale)
    out = args.out or Path(tempfile.mkdtemp(prefix="zaprig-full-"))
    engine = Engine(rig, proto, out, clock="virtual", seed=args.seed)
    engine.costs.use_cpu_time(every=7)
    tl = engine.timeline
    print(
        f"protocol  {proto.name}: {tl.n_volumes} volumes of {rig.microscope.shape_zyx} every "
        f"{rig.microscope.volume_period_s} s = {tl.duration_s / 60:.1f} min of experiment",
        flush=True,
    )
    rss = PeakRss(lambda: engine.status().elapsed_s)
    rss.start()
    t0 = time.perf_counter()
    last = [t0]

    def progress(st: RunStatus) -> None:
        now = time.perf_counter()
        if now - last[0] < 30.0:
            return
        last[0] = now
        done = st.sample / max(1, st.end_sample)
        eta = (now - t0) / max(done, 1e-9) * (1 - done)
        print(
            f"  {done * 100:5.1f} %  volume {st.volumes_acquired}/{st.volumes_expected}  "
            f"{st.condition_name:<10} {now - t0:6.0f} s elapsed, ~{eta:.0f} s to go",
            flush=True,
        )

    final = engine.run(progress)
    wall = time.perf_counter() - t0
    rss.stop.set()
    rss.join()
    path = engine.path
    assert path is not None
    st = engine.status()
    print(
        f"run       {final.value} in {wall:.1f} s wall for {tl.duration_s:.1f} s of experiment "
        f"({tl.duration_s / wall:.1f} x real time)"
    )
    chunks = max(1, st.sample // rig.daq.chunk_samples)
    costs = engine.costs
    if not costs.lanes_inline:  # the image lane's own thread: its CPU time as the microscope saw it
        scope = engine.devices.microscope if engine.devices else None
        costs.seconds["image lane"] = scope.render_seconds if scope is not None else 0.0
    print(
        f"\nper-chunk cost ({chunks} chunks of {rig.daq.chunk_samples} samples; CPU time per thread):"
    )
    print(costs.report(chunks))
    full_chunks = chunks / scale  # the whole protocol at this run's per-chunk cost
    print(
        f"budget: the full protocol ({full_chunks:.0f} chunks) in 120 s leaves "
        f"{120.0 / full_chunks * 1e6:.1f} us/chunk of wall time; at this run's wall time per "
        f"chunk it would take {wall / chunks * full_chunks:.0f} s "
        f"(ratio to 120 s: {wall / chunks * full_chunks / 120.0:.2f})\n"
    )
    with h5py.File(path, "r") as f:
        volumes = int(f["volumes/raw"].shape[0])
        conds = read_table(f["protocol/conditions"])
        samples = int(f["stimuli_and_ephys"].shape[0])
        bouts = int(f["behavior/bouts/start_sample"].shape[0])
    size = path.stat().st_size
    print(
        f"file      {path} ({size / 1e9:.2f} GB): {volumes} volumes (expected {tl.n_volumes}), "
        f"{samples} samples, {bouts} bouts, {st.dropped_volumes} volumes dropped"
    )
    print(
        f"memory    peak RSS engine {rss.peak_me / 1e6:.0f} MB, writer {rss.peak_children / 1e6:.0f} MB"
    )
    print(rss.report())
    print("\n  #  condition    start_volume  dataset_offset  match")
    all_match = True
    for i in range(len(conds["name"])):
        want = round(CONDITION_OFFSETS[i] * scale) if scale != 1.0 else CONDITION_OFFSETS[i]
        got = int(conds["start_volume"][i])
        ok = got == tl.condition_bounds[i] and (scale != 1.0 or got == want)
        all_match &= ok
        name = str(conds["name"][i])
        ref = str(CONDITION_OFFSETS[i]) if scale == 1.0 else f"{CONDITION_OFFSETS[i]} x {scale:g}"
        print(f"  {i:<2} {name:<12} {got:>12} {ref:>15}  {'yes' if ok else 'NO'}")
        assert name == CONDITION_NAMES[i]
    if scale == 1.0:
        print(
            f"  end          {volumes:>12} {CONDITION_OFFSETS[-1]:>15}  "
            f"{'yes' if volumes == CONDITION_OFFSETS[-1] else 'NO'}"
        )
    rc = 0
    if CHECKER.exists():
        t = time.perf_counter()
        res = subprocess.run(
            [sys.executable, str(CHECKER), str(path), "--full"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = (res.stdout + res.stderr).strip().splitlines()
        print(
            f"\ncheck_session.py --full: exit {res.returncode} in {time.perf_counter() - t:.1f} s"
        )
        for line in lines[-15:]:
            print(f"  {line}")
        rc = res.returncode
        if scale != 1.0:
            # a scaled protocol cannot start its conditions at the dataset's offsets
            expected = ("start volumes", "last stop volume", "volumes, want")
            other = [
                x for x in lines if x.startswith("PROBLEM") and not any(e in x for e in expected)
            ]
            print(
                f"  (time scale {scale:g}: the offset and volume-count problems are expected; "
                f"{len(other)} other problems)"
            )
            rc = 1 if other else 0
    else:
        print(f"\ncheck_session.py not found at {CHECKER}: contract not checked")
    if args.markdown and scale == 1.0:
        summary = "not found"
        if CHECKER.exists():  # its last line: "OK: 0 problems; volumes=..." (or FAIL)
            ends = [x for x in lines if x.startswith(("OK", "FAIL"))] or ["no summary line"]
            summary = f"exit {rc}: {ends[-1].split(';')[0].strip()}"
        write_block(
            REPO / "benchmarks" / "README.md",
            "full_protocol",
            _markdown(
                wall,
                tl.duration_s,
                volumes,
                tl.n_volumes,
                bouts,
                st.dropped_volumes,
                summary,
                costs.report(chunks),
                load_before,
                os.getloadavg(),
                rss.ratio(),
            ),
        )
        print("benchmarks/README.md: full_protocol block rewritten")
    if not args.keep:
        path.unlink(missing_ok=True)
        path.with_suffix(".log").unlink(missing_ok=True)  # the session's event log beside it
        if args.out is None:
            out.rmdir()
    else:
        print(f"kept      {path}")
    return rc or (0 if all_match and final.value == "complete" else 1)


def _markdown(
    wall: float,
    experiment_s: float,
    volumes: int,
    expected: int,
    bouts: int,
    dropped: int,
    checked: str,
    costs: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    rss_ratio: float | None,
) -> str:
    """The generated block: the run's figures and its per-chunk cost table."""
    la = " / ".join(f"{x:.1f}" for x in load_before)
    lb = " / ".join(f"{x:.1f}" for x in load_after)
    rows = [
        f"Generated by `benchmarks/full_protocol.py --markdown` on {time.strftime('%d %b %Y')}; "
        f"machine load (1/5/15 min) {la} before, {lb} after, on {os.cpu_count()} cores.",
        "",
        "| what | measured | limit | ratio |",
        "|---|---|---|---|",
        f"| wall time, full protocol in virtual time | {wall:.1f} s | 120 s | {wall / 120:.2f} |",
        f"| x real time | {experiment_s / wall:.1f} | >= 60 | {experiment_s / wall / 60:.2f} |",
        f"| volumes written / expected | {volumes} / {expected} | all | - |",
        f"| volumes dropped | {dropped} | 0 | - |",
        f"| bouts detected | {bouts} | - | - |",
        f"| check_session.py --full | {checked} | 0 problems | - |",
        (
            f"| peak RSS (engine + writer) / first 10 min | {rss_ratio:.3f} | "
            f"{RSS_RATIO_LIMIT} | {rss_ratio / RSS_RATIO_LIMIT:.2f} |"
            if rss_ratio is not None
            else f"| peak RSS (engine + writer) / first 10 min | - | {RSS_RATIO_LIMIT} | - |"
        ),
        "",
        "Per-chunk cost (CPU time per thread; the loop lane timed on 1 chunk in 7):",
        "",
        "```",
        costs,
        "```",
        "",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
