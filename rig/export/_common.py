"""What both exports read from a session file: metadata, units, condition offsets, outputs.

Kept apart from the writers so the zapbench and NWB layouts agree on every
number they share (condition offsets, voxel sizes, the DAQ clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.errors import SessionFileError
from rig.session import read_table

__all__ = [
    "SessionInfo",
    "dimension_units_xyzt",
    "length_unit",
    "refuse_existing",
    "session_info",
    "time_unit",
]

_REQUIRED = (
    "stimuli_and_ephys",
    "volumes/raw",
    "volumes/start_sample",
    "protocol/conditions",
    "behavior/bouts",
    "stimulus/frames",
    "events",
)


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


def _json_attr(f: h5py.File, name: str) -> dict[str, Any]:
    raw = f.attrs.get(name, "")
    if not raw:
        return {}
    try:
        out = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise SessionFileError(
            f"{f.filename}: root attribute '{name}' is not valid JSON ({e}); "
            "the file was not written by zaprig or was edited by hand"
        ) from None
    return out if isinstance(out, dict) else {}


def session_info(f: h5py.File) -> SessionInfo:
    """Read and check what an export needs; a missing part is a clear SessionFileError."""
    missing = [p for p in _REQUIRED if p not in f]
    if missing:
        raise SessionFileError(
            f"{f.filename}: not a complete zaprig session file, missing {', '.join(missing)}"
        )
    stream = f["stimuli_and_ephys"]
    raw = f["volumes/raw"]
    if stream.ndim != 2 or stream.shape[1] != 10:
        raise SessionFileError(
            f"{f.filename}: /stimuli_and_ephys has shape {stream.shape}, expected (n, 10)"
        )
    if raw.ndim != 4:
        raise SessionFileError(f"{f.filename}: /volumes/raw has shape {raw.shape}, expected 4-D")
    conds = read_table(f["protocol/conditions"])
    order = np.argsort(conds["index"], kind="stable")
    names = tuple(str(conds["name"][i]) for i in order)
    starts = [int(conds["start_volume"][i]) for i in order]
    offsets = (*starts, int(conds["stop_volume"][order[-1]])) if len(order) else ()
    dropped = f["volumes/dropped/volume"][...] if "volumes/dropped/volume" in f else []
    t, z, y, x = (int(v) for v in raw.shape)
    vz, vy, vx = (float(v) for v in raw.attrs["voxel_size_um"])
    return SessionInfo(
        path=Path(str(f.filename)),
        status=str(f.attrs.get("status", "")),
        started_at=str(f.attrs.get("started_at", "")),
        ended_at=str(f.attrs.get("ended_at", "")),
        simulated=bool(f.attrs.get("simulated", False)),
        software_version=str(f.attrs.get("software_version", "")),
        protocol=_json_attr(f, "protocol"),
        fish=_json_attr(f, "fish"),
        sample_rate_hz=float(stream.attrs["sample_rate_hz"]),
        channel_names=tuple(str(c) for c in stream.attrs.get("channel_names", ())),
        n_samples=int(stream.shape[0]),
        shape_tzyx=(t, z, y, x),
        voxel_size_um_zyx=(vz, vy, vx),
        volume_period_s=float(raw.attrs["volume_period_s"]),
        condition_names=names,
        condition_offsets=offsets,
        condition_start_samples=tuple(int(conds["start_sample"][i]) for i in order),
        dropped_volumes=tuple(int(v) for v in dropped),
        has_ground_truth="ground_truth/positions_zyx" in f and "ground_truth/traces" in f,
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
