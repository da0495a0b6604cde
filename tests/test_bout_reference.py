"""Closed-loop behaviour did not change with the virtual-time speed-up: the same seed gives
the same bouts (true and detected) and the same displayed velocities as main did before it
(tests/data/bouts_reference.npz, written by benchmarks/bout_reference.py --write)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bout_reference import REFERENCE, compare, run_bouts


def test_same_seed_same_bouts_as_the_reference(tmp_path: Path) -> None:
    got = run_bouts(tmp_path)
    with np.load(REFERENCE) as z:
        ref = {k: z[k] for k in z.files}
    assert len(ref["true_bouts"]) >= 10
    assert compare(got, ref) == []
