"""What the fish receives: screen millimetres as visual angles, through water, dish and air.

The fish looks down through water onto a screen under its dish, with a thin
layer of air (and the dish's plastic) in between. Light bends at each flat
interface (Snell's law, ``n_i sin(psi_i)`` the same in every layer), so a
screen point ``r`` mm from the point under the eye is seen at an angle
``psi_w`` from straight down that solves

    r = sum_i  d_i tan(psi_i),    n_i sin(psi_i) = n_water sin(psi_w)

over the layers (water ``eye_height_mm`` from the eye to the dish bottom, the
dish, the air gap). This is the flat-interface model of Dunn & Fitzgerald,
"Correcting for physical distortions in visual stimuli improves reproducibility
in zebrafish neuroscience", eLife 9:e53684 (2020), Figure 1: the received
("apparent") angle of a projected point depends on the ratio of the air gap to
the eye's depth, and no point of the screen is seen further than the critical
angle ``asin(n_air / n_water)`` = 48.6 deg from straight down (Snell's window);
the paper's Appendix 1 shows a thin dish changes little, which the ``dish_mm``
layer lets a rig check for itself. Refractive indices are the paper's: air 1,
water 1.333.

Stimuli given in cycles per degree (``cycles_per_deg`` of a grating) are
converted at the fish's nadir, where the mapping is locally uniform:
``d r / d psi_w = sum_i d_i n_water / n_i`` mm per radian. A flat screen cannot
keep one angular frequency at every eccentricity (the paper's point); the
exact mapping is :meth:`Projection.screen_mm` / :meth:`Projection.received_deg`.
Millimetres on the screen stay available: ``spatial_freq`` in cycles/mm.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from rig.core.config import ProjectionConfig
from rig.core.errors import ConfigError

if TYPE_CHECKING:
    from stimuli.protocol import Protocol, Step

__all__ = ["Projection", "resolve_angles"]


class Projection:
    """The layers between the fish's eye and the screen, and the angles they give."""

    def __init__(self, cfg: ProjectionConfig) -> None:
        self.cfg = cfg
        layers = [(cfg.eye_height_mm, cfg.n_water), (cfg.dish_mm, cfg.n_dish)]
        layers.append((cfg.air_gap_mm, cfg.n_air))
        self._layers = [(d, n) for d, n in layers if d > 0.0]
        self.n_water = cfg.n_water

    @property
    def critical_deg(self) -> float:
        """The largest angle from straight down at which the screen is seen (Snell's window)."""
        n_min = min(n for _, n in self._layers)
        return math.degrees(math.asin(min(1.0, n_min / self.n_water)))

    @property
    def mm_per_deg_at_nadir(self) -> float:
        """Screen mm per degree of received angle under the fish."""
        return sum(d * self.n_water / n for d, n in self._layers) * math.pi / 180.0

    def cycles_per_mm(self, cycles_per_deg: float) -> float:
        """A grating's screen frequency for a received frequency (at the nadir)."""
        return cycles_per_deg / self.mm_per_deg_at_nadir

    def screen_mm(self, received_deg: ArrayLike) -> np.ndarray:
        """Screen distance (mm, from the point under the eye) seen at ``received_deg`` from down."""
        psi_w = np.radians(np.asarray(received_deg, dtype=np.float64))
        s = self.n_water * np.sin(psi_w)
        r = np.zeros_like(psi_w)
        for d, n in self._layers:
            sin_i = s / n
            with np.errstate(invalid="ignore", divide="ignore"):
                r = r + d * sin_i / np.sqrt(1.0 - sin_i**2)
        return r

    def received_deg(self, screen_mm: ArrayLike) -> np.ndarray:
        """The angle from straight down at which the fish sees a screen point (inverse of screen_mm)."""
        r = np.abs(np.asarray(screen_mm, dtype=np.float64))
        lo = np.zeros_like(r)
        hi = np.full_like(r, self.critical_deg * (1.0 - 1e-12))
        # screen_mm rises monotonically to infinity at the critical angle: bisect
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.screen_mm(mid) < r
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        result: np.ndarray = 0.5 * (lo + hi)
        return result

    def true_deg(self, screen_mm: ArrayLike) -> np.ndarray:
        """Where the point would be seen with no refraction (straight line from the eye)."""
        depth = sum(d for d, _ in self._layers)
        result: np.ndarray = np.degrees(
            np.arctan(np.abs(np.asarray(screen_mm, dtype=np.float64)) / depth)
        )
        return result


def resolve_angles(protocol: Protocol, projection: ProjectionConfig | None) -> Protocol:
    """The protocol with every grating given in cycles/degree set to its screen cycles/mm.

    Protocols in millimetres come back unchanged; one in degrees on a rig without a
    projection model is a ConfigError naming the condition and the missing table.
    """
    steps_in_deg = [
        (c.name, st.stimulus.kind)
        for c in protocol.conditions
        for st in c.steps
        if getattr(st.stimulus, "cycles_per_deg", None) is not None
    ]
    if not steps_in_deg:
        return protocol
    if projection is None:
        name, kind = steps_in_deg[0]
        raise ConfigError(
            f"protocol {protocol.name!r}, condition {name!r}: a {kind} grating is given in "
            "cycles_per_deg, but the rig config has no [display.projection] (add the eye "
            "height, air gap and dish of stimuli/geometry.py, or give spatial_freq in cycles/mm)"
        )
    proj = Projection(projection)

    def in_mm(st: Step) -> Step:
        cpd = getattr(st.stimulus, "cycles_per_deg", None)
        if cpd is None:
            return st
        stim = st.stimulus.model_copy(update={"spatial_freq": proj.cycles_per_mm(cpd)})
        return st.model_copy(update={"stimulus": stim})

    conditions = [
        c.model_copy(update={"steps": tuple(in_mm(st) for st in c.steps)})
        for c in protocol.conditions
    ]
    return protocol.model_copy(update={"conditions": conditions})
