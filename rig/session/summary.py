"""The summary of a session that ``zaprig inspect`` prints, the report opens with and the app shows.

:class:`SessionSummary` holds the numbers; :meth:`rig.session.SessionReader.summary` fills
it (the one reader computes every derived number) and :func:`format_summary` words it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import h5py

from rig.core.lock import LockInfo
from rig.core.vocabulary import Incident, format_drops, plain_fault
from rig.session.light import LightTiming, format_light_timing

__all__ = ["TTL_LAYOUTS", "SessionSummary", "format_summary", "ttl_layout"]


def ttl_layout(f: h5py.File) -> int:
    """Which TTL layout a session's row 2 uses (rig/core/layout.py, FORMAT_VERSION).

    2: the dataset's, a volume-start marker pulse before z plane pulses
    (``/volumes/marker_sample``); 1: files of format 1, whose volume-start pulse
    replaced plane 0's pulse.
    """
    return 2 if "volumes/marker_sample" in f else 1


TTL_LAYOUTS = {
    1: "layout 1 (format 1): the volume-start pulse is plane 0's; the dataset's notebook "
    "counts z - 1 plane pulses per volume and puts conditions one timestep early",
    2: "layout 2: a volume-start marker, then z plane pulses (the dataset's)",
}


@dataclass
class SessionSummary:
    path: str
    status: str
    interrupted: bool
    started_at: str
    ended_at: str
    simulated: bool
    protocol_name: str
    fish: dict[str, Any]
    sample_rate_hz: float
    samples: int
    volumes: int
    volumes_expected: int
    volume_shape_zyx: tuple[int, ...]
    dropped_volumes: int
    conditions: list[dict[str, Any]] = field(default_factory=list)
    bouts: int = 0
    bout_rate_per_condition: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    frames_dropped: int = 0
    events: list[tuple[int, str, str]] = field(default_factory=list)
    format_version: int = 0
    ttl_layout: int = 2
    #: Display timing measured by the photodiode (rig/session/light.py).
    light: LightTiming | None = None
    #: The live run recording this file, if any.
    owner: LockInfo | None = None
    #: What the live readout measured (``/live``), as lines; empty without one.
    live: list[str] = field(default_factory=list)
    #: Camera planes never delivered (left as zeros in their volume).
    planes_dropped: int = 0
    #: The fault events grouped into incidents (rig/core/vocabulary.py): one per thing that went wrong.
    incidents: list[Incident] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate_hz if self.sample_rate_hz else 0.0

    @property
    def warnings(self) -> list[tuple[int, str, str]]:
        return [e for e in self.events if e[1] in ("warning", "fault")]


def format_summary(s: SessionSummary) -> str:
    z, y, x = s.volume_shape_zyx
    lines = [
        f"session   {s.path}",
        f"status    {s.status}"
        + (
            "  (INTERRUPTED: the recording did not finish; run `zaprig recover`)"
            if s.interrupted
            else ""
        )
        + (f" (live, {s.owner.describe()})" if s.owner is not None else ""),
        f"protocol  {s.protocol_name}   {'simulated' if s.simulated else 'real'} rig",
        f"fish      {json.dumps(s.fish) if s.fish else '-'}",
        f"started   {s.started_at}   ended {s.ended_at or '-'}",
        f"duration  {s.duration_s:.1f} s  ({s.samples} samples at {s.sample_rate_hz:g} Hz)",
        f"volumes   {s.volumes} of {s.volumes_expected} expected, {z} planes of {y} x {x}"
        f"  ({s.volumes * z} planes)",
        f"frames    {s.frames} stimulus frames",
        f"dropped   {format_drops(s.planes_dropped, s.dropped_volumes, s.frames_dropped)}",
        f"TTL       {TTL_LAYOUTS[s.ttl_layout]}   (format_version {s.format_version})",
        *(format_light_timing(s.light) if s.light is not None else []),
        f"bouts     {s.bouts} swim bouts",
        *s.live,
        "",
        "  #  condition    start_vol  stop_vol   duration  bouts/min",
    ]
    for c in s.conditions:
        dur = (c["stop_sample"] - c["start_sample"]) / s.sample_rate_hz
        r = s.bout_rate_per_condition.get(str(c["name"]), 0.0) * 60
        lines.append(
            f"  {c['index']:<2} {c['name']:<12} {c['start_volume']:>9} {c['stop_volume']:>9}"
            f" {dur:>9.1f}s {r:>9.1f}"
        )
    w = s.warnings
    n_warn = sum(1 for e in w if e[1] == "warning")
    n_fault_events = len(w) - n_warn
    lines.append("")
    lines.append(
        f"faults    {len(s.incidents)}"
        + (f" ({n_fault_events} fault events)" if n_fault_events != len(s.incidents) else "")
        + f"   warnings {n_warn}"
    )
    for inc in s.incidents:
        lines.append(
            f"  fault at {inc.sample / s.sample_rate_hz:.2f} s ({inc.device or 'session'}): "
            f"{plain_fault(inc.message)}"
        )
    if w:
        lines.append("events    (warnings and faults as recorded)")
    for sample, kind, msg in w[:20]:
        lines.append(f"  [{kind}] at {sample / s.sample_rate_hz:.2f} s: {msg}")
    if len(w) > 20:
        lines.append(f"  ... and {len(w) - 20} more")
    return "\n".join(lines)
