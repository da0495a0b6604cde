"""What the writer process needs to create a session file: one frozen, typed record.

The session set-up (``rig/arming.py``) builds it once, when arming; the writer's
client hands :meth:`WriterSpec.create_kwargs` to the writer process, which creates
the file with :func:`rig.core.layout.create_session_file` from exactly these fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["WriterSpec"]


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """The session file's layout: root attributes, volume geometry, stream and extras."""

    #: The file's root attributes (the session set-up's ``SessionAttrs.as_dict()``).
    attrs: Mapping[str, Any]
    shape_zyx: tuple[int, int, int]
    voxel_size_um: tuple[float, float, float]
    volume_period_s: float
    sample_rate_hz: float
    compression: str = "none"
    #: The simulated brain's neuron positions and tunings (None on a real rig).
    ground_truth_positions: np.ndarray | None = None
    #: (name, channel) of each input recorded in /analog_inputs beyond the 10 rows.
    analog_inputs: tuple[tuple[str, str], ...] = ()
    ground_truth_tuning: np.ndarray | None = None
    tuning_names: tuple[str, ...] = ()
    #: The live readout's layout (/live), or None without the readout.
    live: Mapping[str, Any] | None = None

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> WriterSpec:
        """From keyword arguments (older callers gave the writer a dict)."""
        return cls(**dict(spec))

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_session_file`` (plain, picklable values)."""
        return {
            "attrs": dict(self.attrs),
            "shape_zyx": tuple(self.shape_zyx),
            "voxel_size_um": tuple(self.voxel_size_um),
            "volume_period_s": self.volume_period_s,
            "sample_rate_hz": self.sample_rate_hz,
            "compression": self.compression,
            "ground_truth_positions": self.ground_truth_positions,
            "analog_inputs": list(self.analog_inputs),
            "ground_truth_tuning": self.ground_truth_tuning,
            "tuning_names": self.tuning_names,
            "live": None if self.live is None else dict(self.live),
        }
