"""The light-sheet camera, assembled into volumes.

:func:`make_microscope` is the one place that picks the implementation for
``microscope.backend`` (and, for Micro-Manager, the connector); the engine and
``zaprig check`` (and through it the GUI) both call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquisition.microscope._assembler import VolumeAssembler
from acquisition.microscope._base import Microscope, MicroscopeEvent, VolumeSink
from rig.core.config import RigConfig

if TYPE_CHECKING:
    from acquisition.fish import VirtualFish

__all__ = ["Microscope", "MicroscopeEvent", "VolumeAssembler", "VolumeSink", "make_microscope"]


def make_microscope(rig: RigConfig, fish: VirtualFish | None) -> Microscope:
    """The microscope ``rig.microscope.backend`` names (not yet opened)."""
    cfg = rig.microscope
    if cfg.backend == "sim":
        from acquisition.microscope._sim import SimMicroscope

        if fish is None:
            raise ValueError("the simulated microscope needs the virtual fish")
        return SimMicroscope(
            cfg,
            fish,
            rig.daq.sample_rate_hz,
            stops_at_s=rig.sim.faults.camera_stops_at_s,
            drops_frame_at_s=rig.sim.faults.camera_drops_frame_at_s,
            motion=rig.sim.sim_microscope,
        )
    from acquisition.microscope._mmcore import MMCoreMicroscope  # pymmcore-plus / pycromanager

    return MMCoreMicroscope.from_config(cfg)
