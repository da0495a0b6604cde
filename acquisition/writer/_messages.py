"""The writer's messages: what the engine sends it, in order, and what it reports back.

Frozen dataclasses (:class:`rig.core.worker.Message`); each side dispatches them with one
table. Volumes do not travel here: only the number of the ring slot that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rig.core.worker import Lifecycle, Message, Ready

__all__ = [
    "Attrs",
    "Close",
    "Closed",
    "Dropped",
    "InjectDiskFull",
    "Live",
    "LiveLabels",
    "Progress",
    "Records",
    "TableRows",
    "Traces",
    "Volume",
    "WriterProblem",
    "WriterReady",
]


# -- engine -> writer ---------------------------------------------------------------------------
#: One table's new rows: a record array, or named columns of equal length
TableRows = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class Records(Message):
    """The records gathered since the last batch, in one message (one queue transit).

    ``stream``: rows (n, 10 + k), the 10-row stream then the rig's k extra analog inputs, or
    None; ``tables``: (table path, rows) in the order they are to be appended.
    """

    stream: np.ndarray | None
    tables: tuple[tuple[str, TableRows], ...]


@dataclass(frozen=True, eq=False)
class Volume(Message):
    """Ring ``slot`` holds volume ``t``; where its triggers fell, and its missing planes."""

    slot: int
    t: int
    start: int
    planes: np.ndarray
    marker: int
    missing: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Dropped(Message):
    """Volume ``t`` was dropped (no free slot): its triggers are recorded, its data is not."""

    t: int
    start: int
    planes: np.ndarray
    marker: int
    reason: str


@dataclass(frozen=True, eq=False)
class Traces(Message):
    """Ground-truth traces (t, neurons) of a simulated brain, and their true ΔF/F."""

    traces: np.ndarray
    dff: np.ndarray | None


@dataclass(frozen=True, eq=False)
class Live(Message):
    """One volume's live readout: a row of each ``/live/...`` dataset."""

    row: dict[str, Any]


@dataclass(frozen=True, eq=False)
class LiveLabels(Message):
    """The readout's labels (ids, positions zyx), once known."""

    ids: np.ndarray
    positions_zyx: np.ndarray


@dataclass(frozen=True)
class Attrs(Message):
    """Root attributes of the file."""

    values: dict[str, Any]


@dataclass(frozen=True)
class InjectDiskFull(Message):
    """Fault injection: the writer's next write fails with ENOSPC."""


@dataclass(frozen=True)
class Close(Lifecycle):
    """The last message: set these attributes and close the file."""

    attrs: dict[str, Any]


# -- writer -> engine ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WriterReady(Ready):
    """The session file exists, locked and open."""

    path: str
    #: How volumes reach the disk (:attr:`acquisition.writer._direct.DirectVolumes.mode`)
    volume_writes: str = ""


@dataclass(frozen=True)
class Progress(Message):
    """After each flush: what the file holds so far."""

    volumes_written: int
    bytes_written: int
    stream_rows: int
    wall_time: float


@dataclass(frozen=True)
class Closed(Lifecycle):
    """The file is closed, cleanly."""

    volumes_written: int
    bytes_written: int


@dataclass(frozen=True)
class WriterProblem(Lifecycle):
    """A write went wrong (disk full, close failed); the file holds what was flushed."""

    message: str
