"""What the virtual fish takes from a frame: a few visual features, in its own frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stimuli.state import Look

__all__ = ["Seen", "see"]


@dataclass(frozen=True, slots=True)
class Seen:
    forward_motion: float  # mm/s of pattern motion towards the head (drives the optomotor response)
    lateral_motion: float  # mm/s to the fish's right (> 0 biases right turns)
    luminance: float  # mean luminance under the fish
    brightness_bias: float  # +1 right side brighter ... -1 left brighter
    looming: float  # shadow radius (mm) over the fish; grows as it looms
    velocity: float  # the frame's `velocity` (closed-loop feedback the fish feels)
    #: Dark or bright small moving objects (dots) in view, 0..1: drives the object/loom cells.
    objects: float = 0.0
    #: Whole-field rotation (deg/s, + counter-clockwise): set by the fish from successive
    #: frames' grating angle (a frame alone cannot tell it).
    rotation_deg_s: float = 0.0
    look: int = -1
    angle_deg: float = 0.0


def see(rec: np.void) -> Seen:
    look = int(rec["look"])
    fwd = lat = 0.0
    lum = float(rec["luminance"])
    bias = 0.0
    loom = 0.0
    objects = 0.0
    if look == Look.GRATING:
        a = math.radians(float(rec["angle_deg"]))
        v = float(rec["velocity"])
        lat, fwd = v * math.cos(a), v * math.sin(a)
        lum = float(rec["luminance"]) * float(rec["contrast"]) * 0.5 + 0.5 * float(rec["luminance"])
    elif look == Look.DOTS:
        a = math.radians(float(rec["angle_deg"]))
        v = float(rec["velocity"]) * float(rec["dot_coherence"])
        lat, fwd = v * math.cos(a), v * math.sin(a)
        lum = 0.2 * float(rec["contrast"]) + float(rec["luminance"])
        objects = min(1.0, abs(v) / 10.0 + 0.3)
    elif look == Look.HALVES:
        left, right = float(rec["left_luminance"]), float(rec["right_luminance"])
        lum = 0.5 * (left + right)
        # the boundary turns with the closed-loop heading: the bias follows its angle
        bias = (right - left) * math.cos(math.radians(float(rec["angle_deg"])))
    elif look == Look.DISK:
        r = float(rec["disk_radius_mm"])
        d = math.hypot(float(rec["disk_x_mm"]), float(rec["disk_y_mm"]))
        loom = r if d < r + 5.0 else 0.0
    return Seen(
        fwd,
        lat,
        lum,
        bias,
        loom,
        float(rec["velocity"]),
        objects,
        0.0,
        look,
        float(rec["angle_deg"]),
    )
