"""Objects over a uniform field: shadows (a dark disk crossing or looming) and random dots."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stimuli.closed_loop import LoopState
from stimuli.library._base import Luminance, Stimulus
from stimuli.state import Look

__all__ = ["Dots", "Shadow"]


class Shadow(Stimulus):
    """A dark disk that crosses over the fish or looms (grows) above it, once per period.

    ``cross``: the disk of ``radius_mm`` moves from ``start_mm`` to ``end_mm`` at
    ``speed_mm_s``. ``loom``: it sits at ``start_mm`` and grows from
    ``radius_mm`` to ``final_radius_mm`` over ``loom_s`` (an approaching object).
    Between events the field is plain background. At a time scale (``Protocol.scaled``)
    the period and ``loom_s`` scale, but a crossing keeps its physical speed, so its
    duration (distance / speed) does not: a crossing longer than the scaled period is cut
    short by the next event.
    """

    kind: Literal["shadow"] = "shadow"
    mode: Literal["cross", "loom"] = "cross"
    period_s: float = Field(20.0, gt=0.0)
    radius_mm: float = Field(3.0, gt=0.0, le=200.0)
    final_radius_mm: float = Field(15.0, gt=0.0, le=200.0)
    loom_s: float = Field(2.0, gt=0.0)
    start_mm: tuple[float, float] = (-20.0, 5.0)
    end_mm: tuple[float, float] = (20.0, 5.0)
    speed_mm_s: float = Field(10.0, gt=0.0, le=500.0)
    background: float = Luminance(1.0)
    shadow_luminance: float = Luminance(0.0)
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("period_s", "loom_s")
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "disk radius (mm), 0 when absent",
        "param4": "disk x (mm)",
        "param5": "disk y (mm)",
    }
    STIM_ID: ClassVar[str] = "0 no disk, 1 disk shown"

    def _event_s(self) -> float:
        if self.mode == "loom":
            return self.loom_s
        dx = self.end_mm[0] - self.start_mm[0]
        dy = self.end_mm[1] - self.start_mm[1]
        return math.hypot(dx, dy) / self.speed_mm_s

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        u = t % self.period_s
        dur = self._event_s()
        rec["look"] = Look.DISK
        rec["luminance"] = self.background
        rec["contrast"] = self.shadow_luminance
        if u >= dur:
            x, y, r = self.start_mm[0], self.start_mm[1], 0.0
        elif self.mode == "loom":
            x, y = self.start_mm
            r = self.radius_mm + (self.final_radius_mm - self.radius_mm) * u / dur
        else:
            f = u / dur if dur > 0 else 1.0
            x = self.start_mm[0] + f * (self.end_mm[0] - self.start_mm[0])
            y = self.start_mm[1] + f * (self.end_mm[1] - self.start_mm[1])
            r = self.radius_mm
        self._sub_stimulus(rec, 1 if r > 0 else 0)
        rec["disk_x_mm"], rec["disk_y_mm"], rec["disk_radius_mm"] = x, y, r
        rec["param3"], rec["param4"], rec["param5"] = r, x, y


class Dots(Stimulus):
    """Random dots: a fraction ``coherence`` moves together in ``direction_deg``, the rest randomly.

    Coherence levels and the two directions are cycled through in segments of
    ``segment_s``. The dot field is fixed by ``seed``, so the renderer draws
    the same dots from the logged state (``dot_seed``, ``dot_displacement_mm``).
    """

    kind: Literal["dots"] = "dots"
    n_dots: int = Field(300, ge=1, le=10_000)
    dot_radius_mm: float = Field(0.5, gt=0.0, le=20.0)
    speed_mm_s: float = Field(5.0, ge=0.0, le=100.0)
    coherences: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    directions_deg: tuple[float, ...] = (0.0, 180.0)
    segment_s: float = Field(30.0, gt=0.0)
    seed: int = Field(1, ge=0, le=2**31 - 1)
    dot_luminance: float = Luminance(1.0)
    background: float = Luminance(0.0)
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("segment_s",)
    ROWS: ClassVar[dict[str, str]] = {
        "param3": "coherence (0..1)",
        "param4": "direction (deg)",
        "param5": "displacement (mm)",
    }
    STIM_ID: ClassVar[str] = (
        "c + n_c·d for coherence c of `coherences` (n_c of them) and direction d of "
        "`directions_deg`"
    )

    def fill(self, rec: np.void, t: float, loop: LoopState) -> None:
        k, u = divmod(t, self.segment_s)
        k = int(k)
        coherence = self.coherences[k % len(self.coherences)] if self.coherences else 1.0
        dirs = self.directions_deg or (0.0,)
        n_c = max(1, len(self.coherences))
        d = (k // n_c) % len(dirs)
        direction = dirs[d]
        self._sub_stimulus(rec, k % n_c + n_c * d)
        rec["look"] = Look.DOTS
        rec["luminance"] = self.background
        rec["contrast"] = self.dot_luminance
        rec["angle_deg"] = direction
        rec["dot_seed"] = self.seed + k  # a fresh dot field each segment
        rec["dot_displacement_mm"] = self.speed_mm_s * u
        rec["dot_coherence"] = coherence
        rec["velocity"] = self.speed_mm_s
        rec["disk_radius_mm"] = self.dot_radius_mm
        rec["param3"], rec["param4"], rec["param5"] = coherence, direction, self.speed_mm_s * u
