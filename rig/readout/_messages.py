"""The readout's messages: which slot to read, and what it read (rig.core.worker messages)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rig.core.worker import Message
from rig.readout._compute import LiveRow

__all__ = ["Labels", "Read", "Row", "Skipped"]


@dataclass(frozen=True)
class Read(Message):
    """Engine -> readout: ring ``slot`` holds volume ``t`` at generation ``gen``.

    ``seq`` numbers the requests; the readout sets its shared ``done`` counter to it once
    it no longer reads the slot.
    """

    seq: int
    slot: int
    t: int
    gen: int


@dataclass(frozen=True)
class Row(Message):
    """Readout -> engine: one volume's row."""

    row: LiveRow


@dataclass(frozen=True, eq=False)
class Labels(Message):
    """Readout -> engine: the traced neurons (ids, positions zyx in voxels), once found."""

    ids: np.ndarray
    positions_zyx: np.ndarray


@dataclass(frozen=True)
class Skipped(Message):
    """Readout -> engine: volume ``t`` was not read out, and why."""

    t: int
    why: str
