"""The live brain readout: drift, brightness and neuron traces from each committed volume.

A lane of its own (a process beside the writer's): the image lane tells it which
ring slot holds which volume, it reads the slot without holding it, and sends
one :class:`LiveRow` per volume back to the engine, which writes it to ``/live``
(through the writer, the file's one owner), shows it live and lets protocol
steps wait on it. docs/design-notes.md ("Live readout") says why it is built so.
"""

from __future__ import annotations

from rig.readout._compute import Baseline, LabelIndex, LiveRow, bin_xy, phase_shift, trace_means
from rig.readout._labels import detect_cells, disk_index, load_label_file
from rig.readout._lane import ReadoutLane
from rig.readout._session import SessionReadout
from rig.readout._setup import live_layout, prepare_labels, readout_settings
from rig.readout._state import Readout, ReadoutSettings

__all__ = [
    "Baseline",
    "LabelIndex",
    "LiveRow",
    "Readout",
    "ReadoutLane",
    "ReadoutSettings",
    "SessionReadout",
    "bin_xy",
    "detect_cells",
    "disk_index",
    "live_layout",
    "load_label_file",
    "phase_shift",
    "prepare_labels",
    "readout_settings",
    "trace_means",
]
