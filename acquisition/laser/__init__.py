"""The excitation laser: the OBIS driver, its simulator, and the factory the engine calls.

``make_laser(cfg)`` picks by ``laser.backend``:

* ``"obis"``: :class:`ObisLaser` on ``laser.port`` (with its guard process);
* ``"sim"``: the same driver talking to a :class:`SimulatedObis` on a
  pseudo-terminal, so the simulated rig runs the real serial code;
* ``"none"``: :class:`UncontrolledLaser`, for rigs whose laser zaprig cannot
  switch. It only records what it was asked; it turns nothing on or off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from acquisition.laser._base import Laser, LaserStatus
from acquisition.laser._obis import FAULT_BITS, ObisLaser, decode_faults
from rig.core.config import LaserConfig
from rig.core.errors import ConfigError

if TYPE_CHECKING:
    from acquisition.laser._sim_obis import SimulatedObis, SimulatedObisLaser, StateChange

#: The simulator needs POSIX pseudo-terminals (``tty``): it is imported only when asked
#: for, so a real rig on Windows imports this package cleanly.
_SIMULATOR_NAMES = ("SimulatedObis", "SimulatedObisLaser", "StateChange")


def __getattr__(name: str) -> Any:
    if name in _SIMULATOR_NAMES:
        from acquisition.laser import _sim_obis

        return getattr(_sim_obis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAULT_BITS",
    "Laser",
    "LaserStatus",
    "ObisLaser",
    "SimulatedObis",
    "SimulatedObisLaser",
    "StateChange",
    "UncontrolledLaser",
    "decode_faults",
    "make_laser",
]

log = logging.getLogger(__name__)


class UncontrolledLaser(Laser):
    """A laser zaprig has no control of (``laser.backend = "none"``).

    It drives nothing: emission is whatever the experimenter sets by hand, and a
    stop, abort or fault does NOT switch it off. It records the on/off requests
    so the session log shows when the software would have switched, and logs a
    warning when opened and whenever the run wants it off, so nobody mistakes
    it for a safety feature.
    """

    IDENTITY = "no controllable laser (laser.backend = 'none'): switch it by hand"

    def __init__(self) -> None:
        self.requests: list[tuple[str, float]] = []
        self._requested_on = False
        self._power_mw = 0.0

    def open(self) -> None:
        log.warning("laser.backend = 'none': zaprig will not switch the laser on or off")

    def on(self, power_mw: float) -> None:
        self.requests.append(("on", power_mw))
        self._requested_on, self._power_mw = True, power_mw

    def off(self) -> None:
        self.requests.append(("off", 0.0))
        if self._requested_on:
            log.warning("the run asked for the laser to go off: close its shutter by hand")
        self._requested_on = False

    def status(self) -> LaserStatus:
        """What was last requested, not what the laser does (nothing can be asked of it)."""
        return LaserStatus(
            on=self._requested_on,
            power_mw=self._power_mw if self._requested_on else 0.0,
            identity=self.IDENTITY,
        )

    def close(self) -> None:
        self.off()


def make_laser(cfg: LaserConfig) -> Laser:
    """The laser for a rig config (not yet opened: use it as a context manager)."""
    if cfg.backend == "obis":
        return ObisLaser.from_config(cfg)
    if cfg.backend == "sim":
        from acquisition.laser._sim_obis import SimulatedObisLaser

        return SimulatedObisLaser(cfg)
    if cfg.backend == "none":
        return UncontrolledLaser()
    raise ConfigError(f"laser.backend = {cfg.backend!r}: use 'obis', 'sim' or 'none'")
