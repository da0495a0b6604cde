"""The sync patch: a corner square whose level tells the photodiode which frame is up.

Frame ``k`` shows code ``k % 4`` as one of four levels, ordered so that every
frame differs from the one before by at least a third of full scale
(``0 -> 2/3 -> 1/3 -> 1 -> 0 ...``). So every new frame is an edge in the
photodiode trace; a frame shown twice is a missing edge; and a frame the display
skipped (frame ``k + 2`` directly after ``k``) shows a code other than the one
due, which an alternating black/white patch could not tell from a repeat. The
levels keep their order through any monotonic display response, so decoding
needs no gamma calibration (acquisition/daq/_photodiode.py).

The patch is a square of ``size_px`` in the configured corner; both renderers
carry its level in the frame record (``sync_level``), and the PsychoPy renderer
draws it on top of the stimulus.
"""

from __future__ import annotations

import numpy as np

from rig.core.config import DisplayConfig, SyncPatchConfig

__all__ = [
    "CODES_BY_LEVEL",
    "SYNC_CODES",
    "SYNC_LEVELS",
    "patch_centre_px",
    "patch_level",
    "patch_row_fraction",
    "sync_code",
    "sync_level",
]

#: Relative luminance of codes 0..3.
SYNC_LEVELS = (0.0, 2.0 / 3.0, 1.0 / 3.0, 1.0)
SYNC_CODES = len(SYNC_LEVELS)
#: Codes sorted by their level: a monotonic display keeps this order in the light.
CODES_BY_LEVEL = tuple(int(i) for i in np.argsort(SYNC_LEVELS))


def sync_level(frame: int) -> float:
    """The relative luminance frame ``frame`` shows in the sync patch."""
    return SYNC_LEVELS[frame % SYNC_CODES]


def patch_level(patch: SyncPatchConfig | None, frame: int, luminance: float) -> float:
    """What the patch shows for a frame: its code, the frame's luminance, or nothing (0)."""
    if patch is None:
        return 0.0
    return sync_level(frame) if patch.mode == "code" else float(luminance)


def sync_code(frame: np.ndarray) -> np.ndarray:
    """The code of each frame number."""
    return np.asarray(frame, dtype=np.int64) % SYNC_CODES


def patch_centre_px(display: DisplayConfig, patch: SyncPatchConfig) -> tuple[float, float]:
    """The patch's centre in PsychoPy pixels (origin at the screen centre, y up)."""
    w, h = display.size_px
    half = patch.size_px / 2.0
    x = -w / 2.0 + half if patch.corner.endswith("left") else w / 2.0 - half
    y = h / 2.0 - half if patch.corner.startswith("top") else -h / 2.0 + half
    return (x, y)


def patch_row_fraction(display: DisplayConfig, patch: SyncPatchConfig) -> float:
    """How far down the screen the patch's centre row is (0 top, 1 bottom): its scan-out delay."""
    _, h = display.size_px
    _, y = patch_centre_px(display, patch)
    return (h / 2.0 - y) / h
