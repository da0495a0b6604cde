"""What the virtual fish takes from a frame: a few visual features, in its own frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stimuli.state import FRAME_DTYPE, Look

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


#: Where each field is in a frame record's ``item()`` tuple.
_AT = {name: i for i, name in enumerate(FRAME_DTYPE.names or ())}
_LOOK, _LUM, _ANGLE, _VEL = _AT["look"], _AT["luminance"], _AT["angle_deg"], _AT["velocity"]
_CONTRAST, _COHERENCE = _AT["contrast"], _AT["dot_coherence"]
_LEFT, _RIGHT = _AT["left_luminance"], _AT["right_luminance"]
_DISK_R, _DISK_X, _DISK_Y = _AT["disk_radius_mm"], _AT["disk_x_mm"], _AT["disk_y_mm"]


def see(rec: np.void, rotation_deg_s: float = 0.0) -> Seen:
    """What the fish takes from the frame ``rec`` (FRAME_DTYPE); ``rotation_deg_s`` is the
    whole-field rotation the fish found from this frame and the last one."""
    # one item() for all fields (Python floats of the same values): field by field, the
    # record's lookups were most of the cost of a frame the fish sees (~0.6 per chunk)
    f = rec.item()
    look = int(f[_LOOK])
    fwd = lat = 0.0
    lum = float(f[_LUM])
    bias = 0.0
    loom = 0.0
    objects = 0.0
    if look == Look.GRATING:
        a = math.radians(float(f[_ANGLE]))
        v = float(f[_VEL])
        lat, fwd = v * math.cos(a), v * math.sin(a)
        lum = float(f[_LUM]) * float(f[_CONTRAST]) * 0.5 + 0.5 * float(f[_LUM])
    elif look == Look.DOTS:
        a = math.radians(float(f[_ANGLE]))
        v = float(f[_VEL]) * float(f[_COHERENCE])
        lat, fwd = v * math.cos(a), v * math.sin(a)
        lum = 0.2 * float(f[_CONTRAST]) + float(f[_LUM])
        objects = min(1.0, abs(v) / 10.0 + 0.3)
    elif look == Look.HALVES:
        left, right = float(f[_LEFT]), float(f[_RIGHT])
        lum = 0.5 * (left + right)
        # the boundary turns with the closed-loop heading: the bias follows its angle
        bias = (right - left) * math.cos(math.radians(float(f[_ANGLE])))
    elif look == Look.DISK:
        r = float(f[_DISK_R])
        d = math.hypot(float(f[_DISK_X]), float(f[_DISK_Y]))
        loom = r if d < r + 5.0 else 0.0
    return Seen(
        fwd,
        lat,
        lum,
        bias,
        loom,
        float(f[_VEL]),
        objects,
        rotation_deg_s,
        look,
        float(f[_ANGLE]),
    )
