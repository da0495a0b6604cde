"""The live forecaster's cost at the dataset's size: CPU seconds of one core per volume.

70,000 neurons (the dataset's 71,721, rounded as ``simulated-fullsize.toml``), ΔF/F made
of 12 slow shared rhythms plus each neuron's own noise, fed volume by volume to
:class:`rig.forecast._online.OnlineForecaster` with the readout's defaults (horizon 4,
8 components, 128 volumes of history, components refitted every 4 volumes) on this
thread, BLAS pinned to one thread. Printed: p50, p99 and max of the CPU seconds per
volume (update + forecast of the next 4 volumes) against the 0.2 s limit (issue 28), the
ratio, and the forecaster's and mean baseline's 1-volume-ahead MAE on the second half.

``--readout-p99 S`` adds the readout's own cost per volume (benchmarks/readout_cost.py
prints it) to say whether the readout lane, which runs both, still keeps up with the
dataset's volume period (0.9141 s).

``--markdown`` rewrites the generated block in benchmarks/README.md.

Usage: python benchmarks/forecast_cost.py [--neurons 70000] [--volumes 300]
       [--readout-p99 0.407] [--markdown]
"""

from __future__ import annotations

import os

# one core: BLAS must not spread the matrix products over the other cores
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks._markdown import write_block  # noqa: E402
from rig.core.config import ReadoutConfig  # noqa: E402
from rig.forecast._online import OnlineForecaster  # noqa: E402

README = REPO / "benchmarks" / "README.md"
LIMIT_S = 0.2
VOLUME_PERIOD_S = 0.9141


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=70_000)
    ap.add_argument("--volumes", type=int, default=300, help="volumes fed and timed")
    ap.add_argument("--readout-p99", type=float, default=None, metavar="S")
    ap.add_argument("--markdown", action="store_true", help="rewrite the block in README.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    cfg = ReadoutConfig()
    n = args.neurons
    rng = np.random.default_rng(0)
    mix = (rng.normal(size=(12, n)) * 0.05).astype(np.float32)
    periods = rng.uniform(8.0, 60.0, size=12)
    fc = OnlineForecaster(n, cfg.forecast_horizon, cfg.forecast_components, cfg.forecast_history)
    seconds, mae, base = [], [], []
    for t in range(args.volumes):
        latent = np.sin(2 * np.pi * t / periods).astype(np.float32)
        x = latent @ mix + rng.normal(scale=0.05, size=n).astype(np.float32)
        row = fc.update(t, x)
        seconds.append(row.seconds)
        mae.append(row.mae[0])
        base.append(row.baseline_mae[0])
    s = np.array(seconds[cfg.forecast_history // 2 :])  # past the start-up
    p50, p99, worst = float(np.median(s)), float(np.percentile(s, 99)), float(s.max())
    half = args.volumes // 2
    m, b = float(np.nanmean(mae[half:])), float(np.nanmean(base[half:]))
    print(
        f"forecaster {n} neurons, horizon {cfg.forecast_horizon}, {cfg.forecast_components} "
        f"components, history {cfg.forecast_history}: p50 {p50:.4f} s, p99 {p99:.4f} s, max "
        f"{worst:.4f} s of one core per volume (limit {LIMIT_S} s: {LIMIT_S / worst:.2f} x the "
        f"limit at the max); 1-volume-ahead MAE {m:.4f} vs mean baseline {b:.4f}; "
        f"load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} cores"
    )
    keeps_up = ""
    if args.readout_p99 is not None:
        total = args.readout_p99 + p99
        keeps_up = (
            f"| readout p99 (readout_cost.py) + forecaster p99, CPU s per volume | {total:.3f} "
            f"| {VOLUME_PERIOD_S} | {VOLUME_PERIOD_S / total:.2f} |\n"
        )
        print(
            f"readout lane: {args.readout_p99:.3f} + {p99:.3f} = {total:.3f} s per volume, "
            f"{VOLUME_PERIOD_S / total:.2f} x within the {VOLUME_PERIOD_S} s volume period"
        )
    if args.markdown:
        text = (
            f"Machine load when measured (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} on {os.cpu_count()} cores; {len(s)} volumes timed "
            f"(of {args.volumes}, past the first {cfg.forecast_history // 2}).\n\n"
            "| what | measured | limit | ratio (limit / measured) |\n|---|---|---|---|\n"
            f"| forecaster, CPU s per volume, p50 | {p50:.4f} | {LIMIT_S} | {LIMIT_S / p50:.2f} |\n"
            f"| forecaster, CPU s per volume, p99 | {p99:.4f} | {LIMIT_S} | {LIMIT_S / p99:.2f} |\n"
            f"| forecaster, CPU s per volume, max | {worst:.4f} | {LIMIT_S} | "
            f"{LIMIT_S / worst:.2f} |\n"
            f"{keeps_up}"
            f"| 1-volume-ahead MAE, second half: forecaster / mean baseline | {m:.4f} / {b:.4f} "
            f"| - | - |\n"
            f"| neurons | {n} | 71,721 in the dataset | - |\n"
        )
        write_block(README, "forecast_cost", text)
        print(f"wrote the block in {README}")
    return 0 if worst <= LIMIT_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
