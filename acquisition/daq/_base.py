"""The DAQ interface: the master clock, the tail electrodes and the camera triggers.

A DAQ reads ``chunk_samples`` of analog input at a time, in this column order:
``tail_left, tail_right, trigger_readback``, then ``daq.analog_input_names``
(``photodiode`` when configured, then ``daq.extra_inputs``).
It also *generates* the light-sheet timing from the :class:`~rig.core.timeline.Timeline`:
one camera-trigger pulse per plane, a taller volume-start marker on a line of its
own before each volume (the dataset's TTL layout, ``acquisition/daq/_ttl.py``) and
the galvo/piezo waveforms, all on the same sample clock as the inputs, so the
trigger of plane ``p`` of volume ``t`` happens at exactly
``timeline.plane_samples[t, p]``. The ``trigger_readback`` column is what the
read-back input *measured* of both trigger lines: row 2 of the session stream.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np

from acquisition._device import Device
from rig.core.timeline import Timeline

__all__ = ["INPUT_COLUMNS", "Daq"]

#: Column order of the array :meth:`Daq.read` returns.
INPUT_COLUMNS = ("tail_left", "tail_right", "trigger_readback", "photodiode")


class Daq(Device):
    """A data-acquisition board that is the rig's master clock."""

    sample_rate_hz: float
    chunk_samples: int

    @abstractmethod
    def open(self) -> None:
        """Reserve the device and configure channels; raise DeviceError if absent."""

    @abstractmethod
    def start(self, timeline: Timeline) -> None:
        """Load the trigger/galvo waveforms for ``timeline`` and start all tasks on one trigger."""

    @abstractmethod
    def read(self) -> np.ndarray:
        """Block until the next chunk exists; return float32 (chunk_samples, n_inputs) in volts.

        Raises DeviceError on a buffer overflow or a lost device.
        """

    def defer_inputs(self) -> bool:
        """Ask :meth:`read` for the tail columns only, the others to be filled in later by
        :meth:`complete` (a batch of chunks at a time); True if this DAQ does that.

        The closed loop needs only the tail; in virtual time the simulated board makes the
        trigger read-back and photodiode columns, which only the record lane reads, for a
        whole batch in one go. A real board reads every column at once: False.
        """
        return False

    def complete(self, chunks: Sequence[tuple[int, np.ndarray]]) -> None:
        """Fill in what :meth:`read` left out after :meth:`defer_inputs`: ``(first sample,
        chunk)`` for consecutive chunks, in order, each exactly once."""

    @property
    @abstractmethod
    def samples_read(self) -> int:
        """DAQ sample index of the first sample the next :meth:`read` returns."""

    @property
    @abstractmethod
    def n_inputs(self) -> int:
        """Columns in each chunk (3, plus the photodiode and extra inputs)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop all tasks and drive every analog output to 0 V (safe state)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device (stops first if running)."""
