"""The one reader of session files: ``inspect``, ``report``, both exports and the app use it.

A session file is opened once (:func:`open_session`: diagnosed before HDF5 sees
it, bounded SWMR reads for live or crashed files) and its metadata parsed once:
the attributes (JSON ones checked), the stream's rate and channels, the volume
geometry, and the tables, each read at most once and cached. What a caller then
needs in bulk (stream blocks, volumes) it reads through :attr:`SessionReader.file`
with these numbers in hand. One definition of every derived number (condition
offsets, bout rates, planes dropped, the TTL layout, the display timing) means
the summary, the report, the exports and the app can never disagree.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.core.errors import SessionFileError
from rig.core.events import Event
from rig.core.layout import read_table
from rig.core.live_layout import live_summary
from rig.core.vocabulary import fault_incidents
from rig.session._damage import FileCheck, check_file
from rig.session._reader import SessionSummary, open_session, ttl_layout
from rig.session.light import light_timing

__all__ = ["SessionReader"]


class SessionReader:
    """An open session file with its metadata parsed once. Use it as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.check: FileCheck = check_file(self.path)
        self.file: h5py.File = open_session(self.path, self.check)
        self._tables: dict[str, dict[str, np.ndarray]] = {}

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # -- attributes --------------------------------------------------------------------------
    def attr(self, name: str, default: Any = "") -> Any:
        return self.file.attrs.get(name, default)

    def json_attr(self, name: str) -> dict[str, Any]:
        """A JSON root attribute (``protocol``, ``fish``, ``hardware_config``); {} if absent."""
        raw = self.file.attrs.get(name, "")
        if not raw:
            return {}
        try:
            out = json.loads(str(raw))
        except json.JSONDecodeError as e:
            raise SessionFileError(
                f"{self.path}: root attribute '{name}' is not valid JSON ({e}); "
                "the file was not written by zaprig or was edited by hand"
            ) from None
        return out if isinstance(out, dict) else {}

    @property
    def status(self) -> str:
        return str(self.attr("status", "?"))

    @cached_property
    def protocol(self) -> dict[str, Any]:
        return self.json_attr("protocol")

    @cached_property
    def fish(self) -> dict[str, Any]:
        return self.json_attr("fish")

    @cached_property
    def hardware_config(self) -> dict[str, Any]:
        return self.json_attr("hardware_config")

    @property
    def refresh_hz(self) -> float:
        try:
            return float(self.hardware_config["display"]["refresh_hz"])
        except (KeyError, TypeError, ValueError):
            return 60.0

    @property
    def planes_dropped(self) -> int:
        """Camera planes never delivered (files before ``planes_dropped``: ``frames_missing``)."""
        a = self.file.attrs
        return int(a.get("planes_dropped", a.get("frames_missing", 0)))

    # -- stream and volumes ------------------------------------------------------------------
    @property
    def stream(self) -> h5py.Dataset:
        return self.file["stimuli_and_ephys"]

    @cached_property
    def sample_rate_hz(self) -> float:
        return float(self.stream.attrs["sample_rate_hz"])

    @property
    def n_samples(self) -> int:
        return int(self.stream.shape[0])

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.stream.attrs.get("channel_names", ()))

    @property
    def raw(self) -> h5py.Dataset:
        return self.file["volumes/raw"]

    @property
    def shape_tzyx(self) -> tuple[int, int, int, int]:
        t, z, y, x = (int(v) for v in self.raw.shape)
        return t, z, y, x

    @property
    def voxel_size_um_zyx(self) -> tuple[float, float, float]:
        vz, vy, vx = (float(v) for v in self.raw.attrs["voxel_size_um"])
        return vz, vy, vx

    @property
    def volume_period_s(self) -> float:
        return float(self.raw.attrs["volume_period_s"])

    def volume(self, t: int, stride: int = 1) -> np.ndarray:
        """Volume ``t`` (z, y, x), every ``stride``-th pixel in y and x."""
        return np.asarray(self.raw[t, :, ::stride, ::stride] if stride > 1 else self.raw[t])

    # -- tables ------------------------------------------------------------------------------
    def table(self, name: str) -> dict[str, np.ndarray]:
        """A table's columns (strings decoded), read once."""
        if name not in self._tables:
            self._tables[name] = read_table(self.file[name]) if name in self.file else {}
        return self._tables[name]

    @cached_property
    def conditions(self) -> dict[str, np.ndarray]:
        """``/protocol/conditions`` in condition order."""
        c = self.table("protocol/conditions")
        if not c:
            return c
        order = np.argsort(c["index"], kind="stable")
        return {k: v[order] for k, v in c.items()}

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(str(x) for x in self.conditions.get("name", ()))

    @property
    def condition_offsets(self) -> tuple[int, ...]:
        """Like the dataset's CONDITION_OFFSETS: each start volume, then the last stop volume."""
        c = self.conditions
        if not len(c.get("index", ())):
            return ()
        return (*(int(v) for v in c["start_volume"]), int(c["stop_volume"][-1]))

    @property
    def bouts(self) -> dict[str, np.ndarray]:
        return self.table("behavior/bouts")

    @cached_property
    def events(self) -> list[Event]:
        e = self.table("events")
        n = len(e.get("sample", ()))
        sources = e.get("source", np.array(["engine"] * n, dtype=object))  # before format 2
        return [
            Event.from_file(int(s), float(w), str(k), str(m), str(src))
            for s, w, k, m, src in zip(
                e.get("sample", ()),
                e.get("wall_time", ()),
                e.get("kind", ()),
                e.get("message", ()),
                sources,
                strict=True,
            )
        ]

    @property
    def dropped_volumes(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.table("volumes/dropped").get("volume", ()))

    # -- the summary -------------------------------------------------------------------------
    def bout_rates(self) -> dict[str, float]:
        """Bouts per second in each condition."""
        c, starts = self.conditions, self.bouts.get("start_sample", np.zeros(0, np.int64))
        rate: dict[str, float] = {}
        for i in range(len(c.get("name", ()))):
            a, b = int(c["start_sample"][i]), int(c["stop_sample"][i])
            if b > a:
                n = int(np.count_nonzero((starts >= a) & (starts < b)))
                rate[str(c["name"][i])] = n / ((b - a) / self.sample_rate_hz)
        return rate

    def summary(self) -> SessionSummary:
        c = self.conditions
        rows = [
            {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in c.items()}
            for i in range(len(c.get("name", ())))
        ]
        status = self.status
        return SessionSummary(
            path=str(self.path),
            status=status,
            interrupted=status == "recording" and self.check.owner is None,
            started_at=str(self.attr("started_at")),
            ended_at=str(self.attr("ended_at")),
            simulated=bool(self.attr("simulated", False)),
            protocol_name=str(self.protocol.get("name", "")),
            fish=self.fish,
            sample_rate_hz=self.sample_rate_hz,
            samples=self.n_samples,
            volumes=self.shape_tzyx[0],
            volumes_expected=int(self.attr("volumes_expected", 0)),
            volume_shape_zyx=self.shape_tzyx[1:],
            dropped_volumes=len(self.dropped_volumes),
            conditions=rows,
            bouts=len(self.bouts.get("start_sample", ())),
            bout_rate_per_condition=self.bout_rates(),
            frames=int(self.file["stimulus/frames/frame"].shape[0]),
            frames_dropped=int(self.attr("frames_dropped", 0)),
            format_version=int(self.attr("format_version", 0)),
            ttl_layout=ttl_layout(self.file),
            light=light_timing(self.file),
            events=[(e.sample, e.kind, e.message) for e in self.events],
            owner=self.check.owner,
            live=live_summary(self.file),
            planes_dropped=self.planes_dropped,
            incidents=fault_incidents((e.sample, e.kind, e.message, e.source) for e in self.events),
        )
