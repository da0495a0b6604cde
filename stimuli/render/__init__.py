"""Renderers: the stimulus on the projector (PsychoPy) or headless.

:func:`make_renderer` is the one place that picks the implementation for
``display.backend``.
"""

from __future__ import annotations

from rig.core.config import DisplayConfig
from rig.core.errors import DeviceError
from rig.core.optional import require
from stimuli.render._base import Renderer

__all__ = ["Renderer", "make_renderer"]


def make_renderer(display: DisplayConfig) -> Renderer:
    """The renderer ``display.backend`` names (its process starts with the run)."""
    if display.backend == "headless":
        from stimuli.render._headless import HeadlessRenderer

        return HeadlessRenderer(display.refresh_hz, display.sync_patch)
    require("psychopy", "display.backend = 'psychopy'")
    try:
        from stimuli.render._psychopy import PsychopyRenderer
    except ImportError as e:  # installed, but broken (a missing system library)
        raise DeviceError(
            f"display.backend = 'psychopy' but PsychoPy cannot be imported ({e}): "
            "pip install 'zaprig[psychopy]' or use backend = 'headless'"
        ) from None
    return PsychopyRenderer(display)
