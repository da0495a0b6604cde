"""What the fish sees at one frame: one record of ``/stimulus/frames``.

A stimulus is a pure function of time and closed-loop input that fills one of
these records. The renderer draws from the record alone, the virtual fish reacts
to it, and the writer logs it, so all three agree by construction.

Geometry is in millimetres in the fish's frame: x to the fish's right, y
forward (towards its head), origin under the head. Angles in degrees,
counter-clockwise from +x, so 90 is "forward". Luminance runs 0..1.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from rig.core.records import FRAME_DTYPE, FRAME_FIELDS, Look

__all__ = ["FRAME_DTYPE", "FRAME_FIELDS", "Look", "blank_frame", "empty_frame"]


def blank_frame() -> np.void:
    """A dark frame; stimuli overwrite what they use."""
    rec = empty_frame()
    rec["spatial_freq"] = 0.0
    rec["light_sample"] = -1
    return rec


def empty_frame() -> np.void:
    """An all-zero frame record (a structured scalar, written field by field)."""
    return cast(np.void, np.zeros((), dtype=FRAME_DTYPE)[()])
