"""The one reader of session files, live (SWMR) or closed: every part of zaprig reads through it.

``inspect``, ``swims``, ``report``, ``forecast``, both exports, ``calibrate``, the offline
readout, the batch tasks and the app (its live view of a recording file, a past session,
its summary) open a session file only as a :class:`SessionReader`. The files a run
writes are written by the writer process (acquisition/writer/_process.py) alone, and
changed after it by the one appender (rig/session/appender.py) alone.

A session file is opened once (diagnosed before HDF5 sees it, bounded SWMR reads
for live or crashed files, refused with a diagnosis when truncated or foreign;
:meth:`SessionReader.damaged` opens a damaged one for salvage) and its metadata parsed once:
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
from rig.core.layout import FORMAT, read_table
from rig.core.live_layout import live_summary
from rig.core.vocabulary import fault_incidents
from rig.session._damage import (
    ATTEMPTS_DAMAGED,
    ATTEMPTS_LIVE,
    FileCheck,
    Readable,
    check_file,
    open_swmr_bounded,
    readable_rows,
)
from rig.session.light import light_timing
from rig.session.summary import SessionSummary, ttl_layout

__all__ = ["REQUIRED", "SessionReader", "damage_report", "salvage_advice", "summarise"]


#: What every session file has; a file without them cannot be summarised or exported.
REQUIRED = (
    "stimuli_and_ephys",
    "volumes/raw",
    "volumes/start_sample",
    "volumes/plane_sample",
    "protocol/conditions",
    "stimulus/frames",
    "behavior/bouts",
    "events",
)


def salvage_advice(check: FileCheck) -> tuple[list[str], str]:
    """What of a damaged file can still be read (lines), and whether salvage can help."""
    from rig.session.salvage import salvage_blocker

    lines: list[str] = []
    blocker: str | None = "the file holds no HDF5 data"
    if check.is_hdf5 and check.size > 0:
        try:
            with SessionReader.damaged(check.path, ATTEMPTS_DAMAGED) as r:
                readable = r.readable()
                blocker = salvage_blocker(r.file)
            lines.append("what can still be read:")
            lines.extend(readable.lines() or ["  nothing"])
        except SessionFileError as e:
            lines.append(f"nothing can be read: {e}")
            blocker = "nothing can be read"
    if blocker is None:
        return lines, (
            f"to keep what is readable: zaprig recover --salvage NEW.h5 {check.path}  "
            "(writes a new file; this one is left untouched)"
        )
    return lines, (
        f"salvage cannot help: {blocker}; restore the file from a copy (a backup, or "
        "the acquisition disk) if there is one"
    )


def damage_report(check: FileCheck) -> str:
    """What is wrong with a damaged file, what can still be read, and what to do."""
    lines, advice = salvage_advice(check)
    return "\n".join([f"{check.path}: {check.problem()}", *lines, advice])


def _open_checked(path: str | Path, check: FileCheck | None = None) -> h5py.File:
    """Open read-only, never waiting on a damaged file.

    Files a live run is writing, or that a crash left marked open, open in SWMR
    mode with a bounded number of read attempts; a truncated or foreign file is
    refused with a diagnosis (:func:`damage_report`).
    """
    import hdf5plugin  # noqa: F401 - registers the Blosc filter compressed sessions need

    c = check or check_file(path)
    p = c.path
    if c.problem() is not None:
        raise SessionFileError(damage_report(c))
    if c.needs_swmr:
        f = open_swmr_bounded(p, ATTEMPTS_LIVE)
    else:
        try:
            f = h5py.File(p, "r")
        except OSError as e:
            raise SessionFileError(f"{p}: not a readable HDF5 file: {e}") from None
    try:
        fmt = str(f.attrs.get("format", ""))
    except (OSError, RuntimeError, KeyError) as e:
        f.close()
        raise SessionFileError(f"{p}: its attributes cannot be read ({e}): damaged") from None
    if fmt != FORMAT:
        f.close()
        raise SessionFileError(f"{p}: not a zaprig session file (format attribute missing)")
    missing = [name for name in REQUIRED if name not in f]
    if missing:
        f.close()
        raise SessionFileError(
            f"{p}: a zaprig.session file without its data: missing {', '.join(missing)}; "
            "it was not written by zaprig run, or its creation failed"
        )
    return f


class SessionReader:
    """An open session file with its metadata parsed once. Use it as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.check = check_file(self.path)
        self.file: h5py.File = _open_checked(self.path, self.check)
        self._tables: dict[str, dict[str, np.ndarray]] = {}

    @classmethod
    def live(cls, path: str | Path) -> SessionReader:
        """The file a run is writing now, for one quick read (the app's live view): opened in
        SWMR mode with a bounded number of read attempts, its format checked, no diagnosis
        (a read that races the writer's flush may fail: try again later). Open it afresh for
        each read: an SWMR reader that stays open keeps the file's end from when it opened."""
        import hdf5plugin  # noqa: F401 - compressed sessions need the Blosc filter

        self = cls.__new__(cls)
        self.path = Path(path)
        self.file = open_swmr_bounded(self.path, ATTEMPTS_LIVE)
        self._tables = {}
        try:
            fmt = str(self.file.attrs.get("format", ""))
        except (OSError, RuntimeError, KeyError):
            fmt = ""
        if fmt != FORMAT:
            self.file.close()
            raise SessionFileError(f"{self.path}: not a zaprig session file")
        return self

    @cached_property
    def check(self) -> FileCheck:
        """What the file's first bytes say (read when the reader opens it, or when asked)."""
        return check_file(self.path)

    @classmethod
    def damaged(cls, path: str | Path, attempts: int | None = None) -> SessionReader:
        """A file that may be cut short or half-written, for salvage: opened in SWMR mode with
        ``attempts`` metadata reads at most (one for a truncated file, whose bad metadata never
        heal), never refused, nothing checked. Read what answers (:meth:`readable`)."""
        import hdf5plugin  # noqa: F401 - compressed sessions need the Blosc filter

        self = cls.__new__(cls)
        self.path = Path(path)
        self.check = check_file(self.path)
        if attempts is None:
            attempts = ATTEMPTS_DAMAGED if self.check.truncated else ATTEMPTS_LIVE
        self.file = open_swmr_bounded(self.path, attempts)
        self._tables = {}
        return self

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def readable(self) -> Readable:
        """How many rows of each dataset lie inside the file (all of them, unless it is cut)."""
        return readable_rows(self.file, self.check.size)

    # -- any dataset -------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the file holds ``name`` (``ground_truth/traces``, ``live``, ...)."""
        return name in self.file

    def dataset(self, name: str) -> h5py.Dataset:
        """The dataset ``name``, for reading in blocks (a stream, volumes, traces)."""
        d = self.file[name]
        if not isinstance(d, h5py.Dataset):
            raise SessionFileError(f"{self.path}: /{name} is a group, not a dataset")
        return d

    def group(self, name: str) -> h5py.Group:
        """The group ``name`` (``live``, ``ground_truth``), for its datasets and attributes."""
        g = self.file[name]
        if not isinstance(g, h5py.Group):
            raise SessionFileError(f"{self.path}: /{name} is a dataset, not a group")
        return g

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

    def volumes(self, start: int, stop: int) -> np.ndarray:
        """Volumes ``[start, stop)`` (t, z, y, x), cut to the volumes the file holds."""
        stop = min(stop, self.shape_tzyx[0])
        return np.asarray(self.raw[start : max(start, stop)])

    @property
    def analog_inputs(self) -> h5py.Dataset | None:
        """``/analog_inputs`` (the photodiode first, on the stream's sample index), if any."""
        return self.dataset("analog_inputs") if "analog_inputs" in self.file else None

    @property
    def ground_truth_positions(self) -> np.ndarray | None:
        """The virtual brain's neurons (n, 3) zyx in voxels; None for a real rig's session."""
        name = "ground_truth/positions_zyx"
        return np.asarray(self.file[name][...]) if name in self.file else None

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


def summarise(path: str | Path) -> SessionSummary:
    """The summary ``zaprig inspect`` prints."""
    with SessionReader(path) as r:
        return r.summary()
