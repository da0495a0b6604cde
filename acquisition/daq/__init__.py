"""The DAQ: the rig's master clock, tail electrodes and light-sheet timing.

:func:`make_daq` is the one place that picks the implementation for ``daq.backend``;
the engine and ``zaprig check`` (and through it the GUI) both call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from acquisition.daq._base import INPUT_COLUMNS, Daq
from acquisition.daq._photodiode import LightDecoder
from acquisition.daq._sim_projector import SimProjector
from rig.core.config import RigConfig
from rig.core.optional import require

if TYPE_CHECKING:
    from acquisition.daq._sim_projector import SimProjector
    from acquisition.fish import VirtualFish
    from rig.core.clock import Clock

__all__ = [
    "INPUT_COLUMNS",
    "Daq",
    "LightDecoder",
    "SimProjector",
    "make_daq",
]


def make_daq(
    rig: RigConfig,
    clock: Clock,
    fish: VirtualFish | None,
    rng: np.random.Generator,
    projector: SimProjector | None = None,
) -> Daq:
    """The DAQ ``rig.daq.backend`` names (not yet opened); a simulated one reads the virtual
    fish's tail and, with a photodiode, the simulated projector's light."""
    if rig.daq.backend == "sim":
        from acquisition.daq._sim import SimDaq

        if fish is None:
            raise ValueError("the simulated DAQ needs the virtual fish")
        return SimDaq(
            rig.daq,
            clock,
            fish,
            rng,
            overflow_at_s=rig.sim.faults.daq_overflow_at_s,
            projector=projector,
        )
    require("nidaqmx", "daq.backend = 'nidaqmx'")
    from acquisition.daq._nidaqmx import NiDaq  # imports nidaqmx: only for a real DAQ

    return NiDaq(rig.daq)
