"""Closed-loop behaviour before and after a speed-up: the bout tables of a short protocol.

Runs the built-in protocol at a small time scale in virtual time on the default
simulated rig and records what the fish did (the virtual fish's true bouts) and
what the rig made of it (the detected bouts in ``/behavior/bouts``, and a digest
of the displayed frames' closed-loop velocity). ``--write`` stores them as the
reference (``tests/data/bouts_reference.npz``, generated from the commit named
in it); without it the run is compared with the reference and every difference
is printed. ``tests/test_bout_reference.py`` runs the same comparison.

Usage: python benchmarks/bout_reference.py [--write] [--time-scale 0.01] [--seed 3]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from rig.core.config import load_config  # noqa: E402
from rig.engine import Engine, RunState  # noqa: E402
from rig.session import read_table  # noqa: E402
from stimuli.builtin import dataset_protocol  # noqa: E402

REFERENCE = REPO / "tests" / "data" / "bouts_reference.npz"
#: The reference's protocol: 1 % of the built-in protocol (72 s of experiment, all nine blocks).
TIME_SCALE = 0.01
SEED = 3


def run_bouts(
    out_dir: Path, time_scale: float = TIME_SCALE, seed: int = SEED
) -> dict[str, np.ndarray]:
    """Run the short protocol; the fish's true bouts, the detected bouts and a frame digest."""
    engine = Engine(
        load_config(), dataset_protocol().scaled(time_scale), out_dir, clock="virtual", seed=seed
    )
    if engine.run() is not RunState.COMPLETE:
        raise RuntimeError(f"the reference run ended {engine.state.value}")
    fish = engine.devices.fish if engine.devices else None
    assert fish is not None and engine.path is not None
    true = np.array(
        [(b.start_sample, b.stop_sample) for b in fish.true_bouts], dtype=np.int64
    ).reshape(-1, 2)
    vigour = np.array([b.vigour for b in fish.true_bouts], dtype=np.float64)
    with h5py.File(engine.path, "r") as f:
        b = read_table(f["behavior/bouts"])
        fr = read_table(f["stimulus/frames"])
    detected = np.stack([b["start_sample"], b["stop_sample"]], axis=1).astype(np.int64)
    power = np.stack([b["power_left"], b["power_right"]], axis=1).astype(np.float64)
    digest = hashlib.sha256(
        np.ascontiguousarray(fr["flip_sample"], dtype=np.int64).tobytes()
        + np.ascontiguousarray(fr["velocity"], dtype=np.float32).tobytes()
    ).hexdigest()
    engine.path.unlink()
    return {
        "true_bouts": true,
        "true_vigour": vigour,
        "detected_bouts": detected.reshape(-1, 2),
        "detected_power": power.reshape(-1, 2),
        "frames_sha256": np.array(digest),
    }


def compare(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> list[str]:
    """Differences between two runs, one line each (empty: the same behaviour)."""
    out = []
    for key in ("true_bouts", "detected_bouts"):
        a, b = got[key], ref[key]
        if a.shape != b.shape or not np.array_equal(a, b):
            out.append(f"{key}: {len(a)} bouts now, {len(b)} in the reference; first differences:")
            for i in range(min(len(a), len(b))):
                if not np.array_equal(a[i], b[i]):
                    out.append(f"  bout {i}: now {a[i].tolist()}, reference {b[i].tolist()}")
                    break
    for key in ("true_vigour", "detected_power"):
        a, b = got[key], ref[key]
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-6, atol=1e-9):
            out.append(f"{key}: differs")
    if str(got["frames_sha256"]) != str(ref["frames_sha256"]):
        out.append("displayed frames (flip sample, velocity): differ")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store this run as the reference")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zaprig-bouts-") as d:
        got = run_bouts(Path(d))
    print(
        f"{len(got['true_bouts'])} true bouts, {len(got['detected_bouts'])} detected "
        f"(time scale {TIME_SCALE}, seed {SEED})"
    )
    if args.write:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
        np.savez(REFERENCE, commit=np.array(commit), **got)
        print(f"reference written to {REFERENCE} (commit {commit})")
        return 0
    with np.load(REFERENCE) as z:
        ref = {k: z[k] for k in z.files}
    diffs = compare(got, ref)
    print(f"reference from commit {ref['commit']}: " + ("same bouts" if not diffs else "DIFFERENT"))
    for line in diffs:
        print(line)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
