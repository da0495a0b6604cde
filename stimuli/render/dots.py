"""Where the dots of a DOTS frame are: one definition for the projector and the GUI preview.

Dots start uniformly in a square field of ``side_mm`` centred on the fish; the
first ``round(coherence * n)`` move along ``angle_deg``, the others each in their
own fixed random direction, all by ``dot_displacement_mm``, wrapping around the
field so the density stays even. The field is fixed by ``dot_seed``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["dot_positions_mm"]


@lru_cache(maxsize=4)
def _field(seed: int, n_dots: int, side_mm: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(-side_mm / 2.0, side_mm / 2.0, size=(n_dots, 2))
    directions = rng.uniform(0.0, 2.0 * math.pi, size=n_dots)
    start.flags.writeable = False
    directions.flags.writeable = False
    return start, directions


def dot_positions_mm(rec: np.void, n_dots: int, side_mm: float) -> np.ndarray:
    """Dot centres (n_dots, 2) in the fish frame (mm) for a DOTS record."""
    start, own = _field(int(rec["dot_seed"]), n_dots, float(side_mm))
    n_coherent = round(float(np.clip(rec["dot_coherence"], 0.0, 1.0)) * n_dots)
    directions = own.copy()
    directions[:n_coherent] = math.radians(float(rec["angle_deg"]))
    d = float(rec["dot_displacement_mm"])
    moved = start + d * np.stack([np.cos(directions), np.sin(directions)], axis=1)
    return np.mod(moved + side_mm / 2.0, side_mm) - side_mm / 2.0
