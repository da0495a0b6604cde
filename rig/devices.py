"""Build the devices a rig config names: simulated or real, chosen by each ``backend``.

Each hardware kind has one factory beside its implementations
(``acquisition.daq.make_daq``, ``acquisition.microscope.make_microscope``,
``acquisition.laser.make_laser``, ``stimuli.render.make_renderer``); this module
only puts a rig's set together (with the virtual fish a simulated rig shares
between its DAQ and microscope), so the engine works with the interfaces alone
and switching rigs is a config change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from acquisition.daq import Daq, SimProjector, make_daq
from acquisition.fish import VirtualFish
from acquisition.laser import Laser, make_laser
from acquisition.microscope import Microscope, VolumeSink, make_microscope
from rig.core.clock import Clock
from rig.core.config import RigConfig
from rig.health import as_fault
from stimuli.render import Renderer, make_renderer
from stimuli.schedule import Schedule

__all__ = ["Devices", "make_devices", "make_fish", "make_projector"]


@dataclass
class Devices:
    daq: Daq
    microscope: Microscope
    laser: Laser
    renderer: Renderer
    fish: VirtualFish | None
    #: The simulated projector the simulated photodiode looks at (sim DAQ with a photodiode).
    projector: SimProjector | None = None

    def start(self, schedule: Schedule, sample_rate_hz: float, sink: VolumeSink) -> None:
        """The stimulus, then the camera's triggered sequence (before the laser and the DAQ);
        a device that does not start raises its own fault."""
        with as_fault("renderer"):
            self.renderer.start(schedule, sample_rate_hz)
        with as_fault("camera"):
            self.microscope.start(schedule, sink)

    def start_daq(self, schedule: Schedule) -> None:
        """The DAQ's tasks on one trigger: the master clock starts, and with it the run."""
        with as_fault("daq"):
            self.daq.start(schedule)

    def stop(self, after_daq: Callable[[], None] | None, warn: Callable[[str], None]) -> None:
        """Outputs to zero: the DAQ, then ``after_daq`` (the image lane's last frames), the
        camera and the stimulus; each failure is a ``warn`` and the others still stop."""
        stops = (self.daq.stop, after_daq, self.microscope.stop, self.renderer.stop)
        for stop in stops:
            if stop is None:
                continue
            try:
                stop()
            except Exception as e:
                warn(f"{stop.__qualname__}: {e}")

    def close(self) -> None:
        """Release the laser, the DAQ and the camera (never raises)."""
        for close in (self.laser.close, self.daq.close, self.microscope.close):
            with contextlib.suppress(Exception):
                close()


def make_fish(rig: RigConfig, seed: int) -> VirtualFish | None:
    """The virtual fish of a simulated rig (None on a real one)."""
    if not rig.simulated:
        return None
    return VirtualFish(
        rig.sim.fish,
        rig.daq.sample_rate_hz,
        rig.microscope.shape_zyx,
        seed,
        rig.microscope.voxel_size_um,
        change_at_s=rig.sim.faults.brain_change_at_s,
    )


def make_projector(rig: RigConfig, seed: int) -> SimProjector | None:
    """The simulated projector a simulated photodiode looks at (None where there is none)."""
    if rig.daq.backend != "sim" or not rig.daq.photodiode_channel:
        return None
    return SimProjector(
        rig.display,
        rig.sim.sim_projector,
        rig.daq.sample_rate_hz,
        np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3]),
        drops_frames_at_s=rig.sim.faults.display_drops_frames_at_s,
    )


def make_devices(rig: RigConfig, clock: Clock, seed: int) -> Devices:
    fish = make_fish(rig, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    projector = make_projector(rig, seed)
    return Devices(
        daq=make_daq(rig, clock, fish, rng, projector),
        microscope=make_microscope(rig, fish),
        laser=make_laser(rig.laser),
        renderer=make_renderer(rig.display),
        fish=fish,
        projector=projector,
    )
