"""Fault injection for simulated runs: make a device fail at a set time, from the rig config.

``[faults]`` in a simulated rig's config (``RigConfig.simulation``; a rig of real
hardware has none) names which device fails and when (seconds from the start of the run). The simulated DAQ (overflow) and microscope (stall, dropped
frame) inject their own; this module injects the rest from the engine's loop:
the renderer dies, the laser's serial port disappears, the disk fills up, the
writer process dies. The engine then has to notice each one by its normal
health checks, as it would on a real rig.
"""

from __future__ import annotations

from collections.abc import Callable

from acquisition.writer import WriterClient
from rig.core.simulation import SimulationConfig
from rig.devices import Devices

__all__ = ["FaultInjector"]


class FaultInjector:
    def __init__(self, simulation: SimulationConfig | None, sample_rate_hz: float) -> None:
        """The faults ``simulation`` injects from the loop (none on real hardware)."""
        if simulation is None:
            self._due: list[tuple[int, str]] = []
            return
        faults = simulation.faults
        self._due = sorted(
            (round(t * sample_rate_hz), name)
            for name, t in (
                ("renderer", faults.renderer_dies_at_s),
                ("laser", faults.laser_disconnects_at_s),
                ("disk", faults.disk_full_at_s),
                ("writer", faults.writer_dies_at_s),
            )
            if t is not None
        )

    @property
    def pending(self) -> bool:
        """Faults still to inject (the record lane skips the per-chunk call when none are)."""
        return bool(self._due)

    def apply(
        self, sample: int, devices: Devices, writer: WriterClient, log: Callable[[str], None]
    ) -> None:
        while self._due and self._due[0][0] <= sample:
            _, what = self._due.pop(0)
            log(f"fault injected: {what}")
            if what == "renderer":
                devices.renderer.kill()
            elif what == "laser":
                devices.laser.simulate_disconnect()
            elif what == "disk":
                writer.inject_disk_full()
            elif what == "writer":
                writer.kill()
