"""Fictive swim detection: online (closed loop) and offline (re-analysis)."""

from __future__ import annotations

from acquisition.swims._offline import (
    BoutComparison,
    OfflineParams,
    OfflineSwimDetector,
    OfflineSwims,
    compare,
    detect_bouts,
)
from acquisition.swims._online import BOUT_DTYPE, OnlineSwimDetector, SwimParams, swim_power

__all__ = [
    "BOUT_DTYPE",
    "BoutComparison",
    "OfflineParams",
    "OfflineSwimDetector",
    "OfflineSwims",
    "OnlineSwimDetector",
    "SwimParams",
    "compare",
    "detect_bouts",
    "swim_power",
]
