"""The excitation-laser interface. Safety rule: every stop, abort and fault calls :meth:`off`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from acquisition._device import Device

__all__ = ["Laser", "LaserStatus"]


@dataclass(frozen=True, slots=True)
class LaserStatus:
    on: bool
    power_mw: float
    faults: tuple[str, ...] = ()
    identity: str = ""


class Laser(Device):
    @abstractmethod
    def open(self) -> None:
        """Connect; raise DeviceError if the device does not answer."""

    @abstractmethod
    def on(self, power_mw: float) -> None:
        """Set the power and open the emission."""

    @abstractmethod
    def off(self) -> None:
        """Close the emission. Must not raise on a device that has gone away: log instead."""

    @abstractmethod
    def status(self) -> LaserStatus:
        """Ask the device; raise DeviceError if it does not answer."""

    def faults(self) -> tuple[str, ...]:
        """The device's active faults; raise DeviceError if it does not answer.

        The engine's watch asks this every 0.5 s for the whole session: a driver that
        can ask for the faults alone (one serial exchange instead of :meth:`status`'s
        three) overrides it, which matters in virtual time, where a 2-hour protocol
        asks 14,400 times.
        """
        return self.status().faults

    @property
    def off_failures(self) -> Sequence[str]:
        """Every failed attempt to switch the emission off, oldest first.

        :meth:`off` never raises (it runs on every stop path): a driver that can fail to
        switch off keeps each failure here, and the runner reports the new ones as faults
        ("laser may still be on") instead of saying the laser is off.
        """
        return ()

    def simulate_disconnect(self) -> bool:
        """Fault injection: lose the link as a pulled cable would; False where it cannot.

        Only a simulated laser can (the rig config's ``[faults] laser_disconnects_at_s``).
        """
        return False

    @abstractmethod
    def close(self) -> None:
        """Switch off and release the port."""
