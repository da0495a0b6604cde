"""The excitation laser: Coherent OBIS over serial, or its simulation on a pseudo-terminal."""

from __future__ import annotations

from acquisition.laser._base import Laser, LaserStatus
from acquisition.laser._serial_obis import ObisLaser, SimulatedObis
from rig.config import LaserConfig

__all__ = ["Laser", "LaserStatus", "ObisLaser", "SimulatedObis", "make_laser"]


class _SimulatedObisLaser(ObisLaser):
    """The real OBIS driver talking to a simulated OBIS that lives as long as it does."""

    def __init__(self, cfg: LaserConfig) -> None:
        self.device = SimulatedObis()
        super().__init__(self.device.port, cfg.baudrate, cfg.timeout_s)

    def close(self) -> None:
        super().close()
        self.device.close()


def make_laser(cfg: LaserConfig) -> Laser:
    if cfg.backend == "sim":
        return _SimulatedObisLaser(cfg)
    if cfg.backend == "obis":
        return ObisLaser(cfg.port, cfg.baudrate, cfg.timeout_s)
    raise ValueError(f"laser.backend {cfg.backend!r}: use 'sim' or 'obis'")
