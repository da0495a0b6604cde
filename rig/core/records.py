"""The session file's record types (part of the contract): one stimulus frame, one bout.

They live in the floor because three parts share them and none may own them: the stimuli
fill a frame record, the swim detector fills a bout record, and the writer and every reader
lay them out as the columns of ``/stimulus/frames`` and ``/behavior/bouts``.

Frame geometry is in millimetres in the fish's frame: x to the fish's right, y forward
(towards its head), origin under the head. Angles in degrees, counter-clockwise from +x,
so 90 is "forward". Luminance runs 0..1.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["BOUT_DTYPE", "FRAME_DTYPE", "FRAME_FIELDS", "Look"]


class Look(IntEnum):
    """The drawing primitive a frame needs; the renderer has one routine each."""

    UNIFORM = 0  # whole field at `luminance` (dark, flashes)
    GRATING = 1  # square-wave grating: angle_deg, spatial_freq, position_mm, contrast
    HALVES = 2  # left half at left_luminance, right half at right_luminance (taxis)
    DOTS = 3  # random dots: dot_seed, dot_displacement_mm, dot_coherence, angle_deg
    DISK = 4  # a dark disk (shadow) over a uniform field: disk_x/y/radius_mm


FRAME_DTYPE = np.dtype(
    [
        ("frame", "i8"),
        ("flip_sample", "i8"),
        ("condition", "i2"),
        ("stim_id", "i2"),
        ("look", "i1"),
        ("velocity", "f4"),  # mm/s; > 0: pattern moves head-to-tail (as when swimming forward)
        ("gain", "f4"),
        ("position_mm", "f4"),  # pattern phase along its direction of motion
        ("heading_deg", "f4"),  # closed-loop heading of the virtual fish
        ("angle_deg", "f4"),  # direction the pattern moves in / grating normal
        ("spatial_freq", "f4"),  # cycles/mm
        ("contrast", "f4"),
        ("luminance", "f4"),
        ("left_luminance", "f4"),
        ("right_luminance", "f4"),
        ("disk_x_mm", "f4"),
        ("disk_y_mm", "f4"),
        ("disk_radius_mm", "f4"),
        ("dot_seed", "i4"),
        ("dot_displacement_mm", "f4"),
        ("dot_coherence", "f4"),
        ("param3", "f4"),  # -> row 6 (stimParam3)
        ("param4", "f4"),  # -> row 3 (stimParam4)
        ("param5", "f4"),  # -> row 5 (stimParam5)
        (
            "sync_level",
            "f4",
        ),  # relative luminance of the sync patch (stimuli/render/sync_patch.py)
        ("light_sample", "i8"),  # DAQ sample its light appeared at (photodiode); -1 not seen
        # delay added between a swim and the feedback law (ms; 0 in open loop): the
        # stimulus's ``feedback_delay_ms``, as the engine applied it
        ("feedback_delay_ms", "f4"),
    ]
)
FRAME_FIELDS: tuple[str, ...] = tuple(FRAME_DTYPE.names or ())

#: One detected swim bout: a row of ``/behavior/bouts`` (samples on the DAQ clock).
BOUT_DTYPE = np.dtype(
    [
        ("start_sample", "i8"),
        ("stop_sample", "i8"),
        ("power_left", "f4"),
        ("power_right", "f4"),
        ("peak_power", "f4"),
    ]
)
