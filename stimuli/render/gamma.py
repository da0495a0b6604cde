"""From relative luminance to the level the renderer draws, through the display's gamma.

A projector's light is not linear in the drawn level: light ~ ``level ** gamma``
(``zaprig calibrate display`` measures ``gamma`` with the photodiode and stores it
as ``display.gamma``). Stimuli are given in relative luminance, so the renderer
draws ``luminance ** (1 / gamma)``; with the measured gamma the light is then
linear in the luminance asked for. Both renderers and the simulated projector use
this one function, so what is drawn, simulated and logged agree.
"""

from __future__ import annotations

__all__ = ["drive_level"]


def drive_level(luminance: float, gamma: float = 1.0) -> float:
    """The drawn level (0..1) that gives relative ``luminance`` (0..1) on a display of ``gamma``."""
    lum = min(1.0, max(0.0, float(luminance)))
    return lum if gamma == 1.0 else lum ** (1.0 / gamma)
