"""What both exports read from a session file: metadata, units, condition offsets, outputs.

Kept apart from the writers so the zapbench and NWB layouts agree on every
number they share (condition offsets, voxel sizes, the DAQ clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.core.errors import SessionFileError
from rig.session import SessionReader

__all__ = [
    "SessionInfo",
    "dimension_units_xyzt",
    "length_unit",
    "refuse_existing",
    "session_info",
    "time_unit",
]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The numbers an export needs, read once from the file's attributes and tables."""

    path: Path
    status: str
    started_at: str
    ended_at: str
    simulated: bool
    software_version: str
    protocol: dict[str, Any]
    fish: dict[str, Any]
    sample_rate_hz: float
    channel_names: tuple[str, ...]
    n_samples: int
    shape_tzyx: tuple[int, int, int, int]
    voxel_size_um_zyx: tuple[float, float, float]
    volume_period_s: float
    condition_names: tuple[str, ...]
    condition_offsets: tuple[int, ...]
    condition_start_samples: tuple[int, ...]
    dropped_volumes: tuple[int, ...]
    has_ground_truth: bool

    def to_json(self) -> dict[str, Any]:
        """The metadata an exported layout carries beside its arrays."""
        t, z, y, x = self.shape_tzyx
        return {
            "source_session": self.path.name,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "simulated": self.simulated,
            "software_version": self.software_version,
            "protocol_name": self.protocol.get("name", ""),
            "fish": self.fish,
            "sample_rate_hz": self.sample_rate_hz,
            "channel_names": list(self.channel_names),
            "samples": self.n_samples,
            "volumes": t,
            "volume_shape_xyz": [x, y, z],
            "voxel_size_um_xyz": list(self.voxel_size_um_zyx[::-1]),
            "volume_period_s": self.volume_period_s,
            "dropped_volumes": list(self.dropped_volumes),
        }


def session_info(r: SessionReader) -> SessionInfo:
    """Read and check what an export needs; a wrong shape is a clear SessionFileError (the
    reader has refused a file that lacks a dataset: ``rig.session.reader.REQUIRED``)."""
    if r.stream.ndim != 2 or r.stream.shape[1] != 10:
        raise SessionFileError(
            f"{r.path}: /stimuli_and_ephys has shape {r.stream.shape}, expected (n, 10)"
        )
    if r.raw.ndim != 4:
        raise SessionFileError(f"{r.path}: /volumes/raw has shape {r.raw.shape}, expected 4-D")
    return SessionInfo(
        path=r.path,
        status=r.status,
        started_at=str(r.attr("started_at")),
        ended_at=str(r.attr("ended_at")),
        simulated=bool(r.attr("simulated", False)),
        software_version=str(r.attr("software_version")),
        protocol=r.protocol,
        fish=r.fish,
        sample_rate_hz=r.sample_rate_hz,
        channel_names=r.channel_names,
        n_samples=r.n_samples,
        shape_tzyx=r.shape_tzyx,
        voxel_size_um_zyx=r.voxel_size_um_zyx,
        volume_period_s=r.volume_period_s,
        condition_names=r.condition_names,
        condition_offsets=r.condition_offsets,
        condition_start_samples=tuple(int(x) for x in r.conditions.get("start_sample", ())),
        dropped_volumes=r.dropped_volumes,
        has_ground_truth=r.has("ground_truth/positions_zyx") and r.has("ground_truth/traces"),
    )


def length_unit(um: float) -> str:
    """0.406 µm -> '406 nm', as the dataset writes its voxel sizes."""
    nm = um * 1000.0
    return f"{round(nm)} nm" if abs(nm - round(nm)) < 1e-6 else f"{nm:.10g} nm"


def time_unit(seconds: float) -> str:
    """0.9141 -> '0.9141 s'."""
    return f"{seconds:.10g} s"


def dimension_units_xyzt(info: SessionInfo) -> list[str]:
    vz, vy, vx = info.voxel_size_um_zyx
    return [length_unit(vx), length_unit(vy), length_unit(vz), time_unit(info.volume_period_s)]


def refuse_existing(path: Path, what: str, folder: bool) -> None:
    """Exports never overwrite: an old export mixed with a new one would mix two sessions.

    A folder output may exist if it is empty (the user made it for us).
    """
    if folder and path.is_dir() and not any(path.iterdir()):
        return
    if path.exists():
        raise SessionFileError(
            f"{path}: the {what} output already exists; "
            "pick a new output path or delete the old export first"
        )
    if not folder and not path.parent.is_dir():
        raise SessionFileError(
            f"{path}: the folder {path.parent} does not exist; create it or pick another path"
        )
