"""Build the devices a rig config names: simulated or real, chosen by each ``backend``.

The only place that knows which class implements which backend, so the engine
works with the interfaces alone and switching rigs is a config change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acquisition.daq._base import Daq
from acquisition.daq._sim_projector import SimProjector
from acquisition.fish import VirtualFish
from acquisition.laser._base import Laser
from acquisition.microscope._base import Microscope
from rig.clock import Clock
from rig.config import RigConfig
from rig.errors import DeviceError
from stimuli.render._base import Renderer

__all__ = ["Devices", "make_devices"]


@dataclass
class Devices:
    daq: Daq
    microscope: Microscope
    laser: Laser
    renderer: Renderer
    fish: VirtualFish | None
    #: The simulated projector the simulated photodiode looks at (sim DAQ with a photodiode).
    projector: SimProjector | None = None


def make_devices(rig: RigConfig, clock: Clock, seed: int) -> Devices:
    fs = rig.daq.sample_rate_hz
    fish = None
    if rig.simulated:
        fish = VirtualFish(rig.fish, fs, rig.microscope.shape_zyx, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    faults = rig.faults

    daq: Daq
    projector = None
    if rig.daq.backend == "sim":
        assert fish is not None
        from acquisition.daq._sim import SimDaq

        if rig.daq.photodiode_channel:
            projector = SimProjector(
                rig.display,
                rig.sim_projector,
                fs,
                np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3]),
                drops_frames_at_s=faults.display_drops_frames_at_s,
            )
        daq = SimDaq(
            rig.daq, clock, fish, rng, overflow_at_s=faults.daq_overflow_at_s, projector=projector
        )
    else:
        from acquisition.daq._nidaqmx import NiDaq

        daq = NiDaq(rig.daq)

    microscope: Microscope
    if rig.microscope.backend == "sim":
        assert fish is not None
        from acquisition.microscope._sim import SimMicroscope

        microscope = SimMicroscope(
            rig.microscope,
            fish,
            fs,
            stops_at_s=faults.camera_stops_at_s,
            drops_frame_at_s=faults.camera_drops_frame_at_s,
        )
    else:
        from acquisition.microscope._mmcore import MMCoreMicroscope

        microscope = MMCoreMicroscope.from_config(rig.microscope)

    from acquisition.laser import make_laser

    laser = make_laser(rig.laser)

    renderer: Renderer
    if rig.display.backend == "headless":
        from stimuli.render._headless import HeadlessRenderer

        renderer = HeadlessRenderer(rig.display.refresh_hz, rig.display.sync_patch)
    else:
        try:
            from stimuli.render._psychopy import PsychopyRenderer
        except ImportError as e:
            raise DeviceError(
                f"display.backend = 'psychopy' but PsychoPy cannot be imported ({e}): "
                "pip install 'zaprig[psychopy]' or use backend = 'headless'"
            ) from None
        renderer = PsychopyRenderer(rig.display)
    return Devices(daq, microscope, laser, renderer, fish, projector)
