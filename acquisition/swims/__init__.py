"""Fictive swim detection: online (closed loop) and offline (re-analysis)."""

from __future__ import annotations

from acquisition.swims._online import BOUT_DTYPE, OnlineSwimDetector, SwimParams

__all__ = ["BOUT_DTYPE", "OnlineSwimDetector", "SwimParams"]
