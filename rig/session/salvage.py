"""``zaprig recover --salvage OUT``: copy what a damaged session file still holds into a new one.

The original is only read, never changed. Every dataset whose header still
reads is copied, with its attributes and storage layout, up to the first row
whose chunks do not lie inside the file (see :mod:`rig.session._damage`): a
cut file usually keeps its tables, ground truth and most of its volumes whole,
because their chunks were written long before the cut. Columns of one table are
cut to the same length. The volume table's trigger samples, if they are lost,
are rebuilt from the protocol and rig stored in the root attributes (the engine
computes them the same way), and the stream is cut before the first unsalvaged
volume's marker pulse, so that the new file's volumes and TTL pulses agree; the
conditions that started in the salvaged part keep their rows (rebuilt from the
protocol if their table is lost). The new file says ``failed``, where it came
from, and exactly what was lost, in rows.

The damaged file is read through the one reader (``SessionReader.damaged``); the new
file is made and filled through the one appender (rig/session/appender.py): each table
of the layout gets whole rows, a column an older file lacks filled, never left short.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.core.clock import utc_now_iso
from rig.core.errors import SessionFileError, check_writable
from rig.core.events import Event, severity_of
from rig.core.layout import FORMAT, TABLES
from rig.core.lock import SessionLock, exclusive
from rig.session._damage import Readable, check_file, read_prefix
from rig.session.appender import SessionAppender
from rig.session.reader import SessionReader

__all__ = ["salvage", "salvage_blocker"]


#: Root attributes the engine writes; looked up one by one when the attribute index is lost.
_KNOWN_ATTRS = (
    "format", "format_version", "status", "started_at", "ended_at", "software_version",
    "simulated", "hardware_config", "hardware_config_source", "protocol", "protocol_sha256",
    "fish", "seed", "clock", "volumes_expected", "bouts_detected", "frames_shown",
    "frames_dropped", "volumes_dropped", "frames_missing",
)  # fmt: skip


def _attrs(src: h5py.File) -> dict[str, Any]:
    """Every root attribute that still reads; a cut file often loses only their index."""
    try:
        names = list(src.attrs)
    except (OSError, RuntimeError, KeyError):
        names = list(_KNOWN_ATTRS)
    out: dict[str, Any] = {}
    for k in names:
        try:
            out[k] = src.attrs[k]
        except (OSError, RuntimeError, KeyError):
            continue
    return out


def _timeline(attrs: dict[str, Any]) -> Any:
    """The run's timeline, rebuilt from the protocol and rig stored in the file (or None)."""
    from rig.core.config import config_from_json
    from stimuli.protocol import protocol_from_dict
    from stimuli.schedule import Schedule

    try:
        rig = config_from_json(str(attrs["hardware_config"]))
        proto = protocol_from_dict(json.loads(str(attrs["protocol"])), "")
        return Schedule.build(proto, rig)
    except Exception:  # a damaged or foreign description: salvage without it
        return None


def salvage_blocker(src: h5py.File) -> str | None:
    """Why salvage cannot help with this file (None: it can)."""
    attrs = _attrs(src)
    if str(attrs.get("format", "")) != FORMAT:
        return "its root attributes cannot be read, so it cannot be told from a foreign file"
    try:
        raw = src["volumes/raw"]
        int(raw.shape[0])
        float(src["stimuli_and_ephys"].attrs["sample_rate_hz"])
    except (OSError, RuntimeError, KeyError) as e:
        return f"the stream or volume layout cannot be read ({str(e).split('(')[0].strip()})"
    return None


def _volumes_readable(raw: h5py.Dataset, limit: int) -> int:
    """Volumes that read back, from the first; stops at the first that fails."""
    for t in range(limit):
        try:
            raw[t, :1, :1, :1]
            raw[t, -1:, -1:, -1:]
        except (OSError, RuntimeError):
            return t
    return limit


def salvage(path: str | Path, out: str | Path) -> str:
    """Copy every readable sample, volume and table of ``path`` into the new file ``out``."""
    src_path, dst_path = Path(path), Path(out)
    with exclusive(src_path, "salvaging", only_reads=True):
        if dst_path.exists() or dst_path.is_symlink():
            raise SessionFileError(
                f"{dst_path}: exists already; give a new file name to salvage into"
            )
        check_writable(dst_path, "--salvage")
        dst_lock = SessionLock(dst_path, os.getpid(), doing="salvaging into")
        dst_lock.acquire()
        try:
            return _salvage(src_path, dst_path)
        finally:
            dst_lock.release()


#: Datasets cut to the salvaged stream's length, and to its number of volumes.
_PER_SAMPLE = ("stimuli_and_ephys", "analog_inputs")
_PER_VOLUME = ("volumes/raw",)  # ground truth traces are kept whole: the truth is never cut
_VOLUME_SAMPLES = ("volumes/start_sample", "volumes/plane_sample", "volumes/marker_sample")


def _salvage(src_path: Path, dst_path: Path) -> str:
    import hdf5plugin  # noqa: F401 - compressed sessions need the Blosc filter

    check = check_file(src_path)
    if not check.is_hdf5:
        raise SessionFileError(f"{src_path}: {check.problem()}; nothing to salvage")
    if os.path.realpath(dst_path) == os.path.realpath(src_path):
        raise SessionFileError(f"{dst_path}: salvage into a new file, not the original")
    with SessionReader.damaged(src_path) as reader:
        src = reader.file
        if (why := salvage_blocker(src)) is not None:
            raise SessionFileError(f"{src_path}: {why}; salvage cannot help, nothing was written")
        attrs = _attrs(src)
        readable = reader.readable()
        raw = src["volumes/raw"]
        shape_zyx = tuple(int(x) for x in raw.shape[1:])
        raw_attrs = dict(raw.attrs)
        stream_fs = float(src["stimuli_and_ephys"].attrs["sample_rate_hz"])
        tl = _timeline(attrs)
        n_rows, n_vol = _extent(raw, readable, tl)
        attrs.update(
            status="failed",
            ended_at=str(attrs.get("ended_at", "")) or utc_now_iso(),
            salvaged_from=str(src_path),
            salvaged_at=utc_now_iso(),
        )
        # every table of the layout, through the one appender; the datasets the layout
        # does not make (ground truth, /live) are added out of SWMR mode, as the source's
        dst = SessionAppender.create(
            dst_path,
            attrs,
            shape_zyx=shape_zyx,
            voxel_size_um=tuple(float(x) for x in raw_attrs.get("voxel_size_um", (1.0, 1.0, 1.0))),
            volume_period_s=float(raw_attrs.get("volume_period_s", 1.0)),
            sample_rate_hz=stream_fs,
            compression=str(raw_attrs.get("compression", "none")),
        )
        try:
            with dst:
                lost = _copy(src, dst, readable, tl, n_rows, n_vol)
                msg = (
                    f"salvaged from {src_path} ({check.problem() or 'damaged'}): "
                    f"{n_rows} samples and {n_vol} volumes copied"
                    + (f"; lost: {'; '.join(lost)}" if lost else "; nothing else lost")
                )
                dst.append_events([Event(n_rows, time.time(), "fault", msg, source="engine")])
        except BaseException:
            dst_path.unlink(missing_ok=True)  # half a salvage is not a session file
            raise
    return f"{dst_path}: {msg}; status 'failed'; {src_path} was left untouched"


def _extent(raw: h5py.Dataset, readable: Readable, tl: Any) -> tuple[int, int]:
    """Samples and volumes to keep: readable, and cut so that volumes and TTL pulses agree."""
    n_rows = readable.rows.get("stimuli_and_ephys", (0, 0))[0]
    n_vol = min(
        _volumes_readable(raw, int(raw.shape[0])), readable.rows.get("volumes/raw", (0, 0))[0]
    )
    if tl is not None:
        # the dataset's decoder reads a timestep as the planes between two markers, so a
        # volume is whole in the stream only with its closing marker (the next volume's
        # start marker) and a sample after that pulse's peak
        tail = tl.onset_delay_samples + 1
        closed = int(np.searchsorted(tl.marker_samples[1:] + tail, n_rows, side="right"))
        n_vol = min(n_vol, closed, tl.n_volumes)
        if n_vol < tl.n_volumes:
            # end just after the last salvaged volume's closing marker, as a complete
            # session ends: no condition starts in a volume the file does not hold, and
            # a condition starting in the last one still decodes to it
            n_rows = min(n_rows, int(tl.marker_samples[n_vol]) + tail)
    return n_rows, n_vol


def _copy_rows(sd: h5py.Dataset, dd: h5py.Dataset, n: int, block_bytes: int = 64 << 20) -> int:
    """Copy the first ``n`` rows block by block (memory stays bounded); rows copied."""
    row_bytes = max(1, int(np.prod(sd.shape[1:], dtype=np.int64)) * sd.dtype.itemsize)
    block = max(1, block_bytes // row_bytes)
    if sd.chunks is not None:
        block = max(sd.chunks[0], block // sd.chunks[0] * sd.chunks[0])
    done = 0
    dd.resize((n, *dd.shape[1:]) if dd.maxshape[1:] == dd.shape[1:] else (n, *sd.shape[1:]))
    while done < n:
        b = min(n, done + block)
        try:
            part = sd[done:b]
        except (OSError, RuntimeError):
            break
        dd[done:b] = part
        done = b
    if done < n:
        dd.resize((done, *dd.shape[1:]))
    return done


def _ensure(dst: h5py.File, src: h5py.File, name: str) -> h5py.Dataset:
    """``name`` in ``dst``, made like the source's (type, chunks, filters) if missing."""
    from h5py import h5d, h5s

    if name in dst:
        return dst[name]
    sd = src[name]
    parent = dst.require_group(name.rsplit("/", 1)[0]) if "/" in name else dst
    if not sd.shape:
        space = h5s.create(h5s.SCALAR)
    else:
        fixed = sd.maxshape == sd.shape  # not extendible (often contiguous): made whole
        shape = sd.shape if fixed else (0, *sd.shape[1:])
        most = tuple(h5s.UNLIMITED if m is None else m for m in sd.maxshape)
        space = h5s.create_simple(shape, most)
    h5d.create(parent.id, name.rsplit("/", 1)[-1].encode(), sd.id.get_type(), space,
               dcpl=sd.id.get_create_plist())  # fmt: skip
    return dst[name]


def _groups_and_attrs(src: h5py.File, dst: h5py.File, names: list[str]) -> None:
    """Every group of the copied datasets, with the source's attributes on groups and datasets."""
    for name in names:
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in dst:
                continue
            try:
                for k, v in src[sub].attrs.items():
                    dst[sub].attrs[k] = v
            except (OSError, RuntimeError, KeyError):
                continue


def _table_groups(readable: Readable) -> dict[str, int]:
    """Groups whose datasets are the columns of one table (the same recorded length): the
    rows readable in every column. A group of unequal datasets (ground truth) is not one."""
    by_group: dict[str, list[tuple[int, int]]] = {}
    for name, counts in readable.rows.items():
        if "/" in name:
            by_group.setdefault(name.rsplit("/", 1)[0], []).append(counts)
    broken = {name.rsplit("/", 1)[0] for name in readable.lost}
    out = {}
    for g, cols in by_group.items():
        if len({n for _, n in cols}) == 1 and g not in ("volumes", "ground_truth"):
            out[g] = 0 if g in broken else min(ok for ok, _ in cols)
    return out


def _copy(
    src: h5py.File, app: SessionAppender, readable: Readable, tl: Any, n_rows: int, n_vol: int
) -> list[str]:
    dst = app.file
    lost: list[str] = [f"{name}: unreadable ({why})" for name, why in readable.lost.items()]
    tables = _table_groups(readable)
    copied: list[str] = []
    for name, (ok, total) in sorted(readable.rows.items()):
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        if name in _VOLUME_SAMPLES or group == "protocol/conditions":
            continue  # below: they must agree with the volumes and the stream kept
        if group in TABLES:
            continue  # below: whole rows, through the appender
        want = (
            n_rows if name in _PER_SAMPLE
            else min(n_vol, ok) if name in _PER_VOLUME
            else tables.get(group, ok)
        )  # fmt: skip
        try:
            dd = _ensure(dst, src, name)
            if not src[name].shape or src[name].maxshape == src[name].shape:
                if ok < total:  # a fixed-size dataset is kept whole or not at all
                    raise OSError(f"{total - ok} of {total} rows past the end of the file")
                dd[()] = src[name][()]
                copied.append(name)
                continue
            got = _copy_rows(src[name], dd, want)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            lost.append(f"{name}: unreadable ({str(e).split('(')[0].strip()})")
            continue
        copied.append(name)
        if got < total and group not in tables:
            lost.append(f"{name}: {total - got} of {total} rows")
    for g, n in tables.items():
        total = max(t for k, (_, t) in readable.rows.items() if k.rsplit("/", 1)[0] == g)
        if g not in TABLES and n < total:
            lost.append(f"{g}: {total - n} of {total} rows")
    for table in TABLES:
        if table != "protocol/conditions":
            lost += _table(src, app, readable, table, copied)
    _groups_and_attrs(src, dst, copied)
    lost += _volume_samples(src, dst, readable, tl, n_vol)
    lost += _conditions(src, app, readable, tl, n_rows, n_vol)
    return lost


def _default_column(table: str, col: str, rows: dict[str, np.ndarray], n: int) -> np.ndarray:
    """A column the source lacks (an older format's table): events get the engine as their
    source and the severity of their kind; other columns -1, NaN or "" (not recorded)."""
    if table == "events" and col == "source":
        return np.array(["engine"] * n, dtype=object)
    if table == "events" and col == "severity":
        return np.array([severity_of(str(k)) for k in rows["kind"][:n]], dtype=object)
    dt = np.dtype(TABLES[table][col])
    if dt.kind == "O":
        return np.array([""] * n, dtype=object)
    return np.full(n, np.nan if dt.kind == "f" else -1, dtype=dt)


def _decoded(data: np.ndarray) -> np.ndarray:
    """Strings as ``str`` objects (h5py reads them as bytes)."""
    if h5py.check_string_dtype(data.dtype) is None and data.dtype.kind not in "OS":
        return data
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in data], dtype=object)


def _table(
    src: h5py.File, app: SessionAppender, readable: Readable, table: str, copied: list[str]
) -> list[str]:
    """A layout table's readable rows, whole (every column cut to the same length), appended
    through the appender; a column an older file lacks (or left short: a note once wrote
    4 of the 6 event columns) is filled as :func:`_default_column` says."""
    cols = TABLES[table]
    if any(name.rsplit("/", 1)[0] == table for name in readable.lost):
        return []  # the lost column is already listed: the table is lost with it
    have = {c: readable.rows[f"{table}/{c}"] for c in cols if f"{table}/{c}" in readable.rows}
    if not have:
        return []
    total = max(t for _, t in have.values())
    # columns an older writer left out or short are rebuilt, not allowed to cut the table
    filled = {c for c, (_, t) in have.items() if t < total and table == "events"
              and c in ("source", "severity")}  # fmt: skip
    full = {c: ok for c, (ok, _) in have.items() if c not in filled}
    n = min(full.values()) if full else 0
    rows: dict[str, np.ndarray] = {}
    for c in full:
        rows[c] = _decoded(read_prefix(src[f"{table}/{c}"], n))
        copied.append(f"{table}/{c}")
    n = min((len(v) for v in rows.values()), default=0)  # a block that failed part-way
    rows = {c: v[:n] for c, v in rows.items()}
    for c in cols:
        if c not in rows:
            rows[c] = _default_column(table, c, rows, n)
            if c in filled:  # the rows it has keep their values
                kept = _decoded(read_prefix(src[f"{table}/{c}"], min(n, have[c][0])))
                rows[c][: len(kept)] = kept
                copied.append(f"{table}/{c}")
    app.append(table, rows)
    lost = []
    if n < total:
        lost.append(f"{table}: {total - n} of {total} rows")
    extra = sorted(name for name in readable.rows if name.rsplit("/", 1)[0] == table
                   and name.rsplit("/", 1)[1] not in cols)  # fmt: skip
    lost += [f"{name}: not a column of this version's layout" for name in extra]
    return lost


def _volume_samples(
    src: h5py.File, dst: h5py.File, readable: Readable, tl: Any, n_vol: int
) -> list[str]:
    lost = []
    rebuild: dict[str, Callable[[], np.ndarray]] = {
        "volumes/start_sample": lambda: tl.volume_starts,
        "volumes/plane_sample": lambda: tl.plane_samples,
        "volumes/marker_sample": lambda: tl.marker_samples,
    }
    for d, timeline_values in rebuild.items():
        if d not in dst:
            continue
        dd = dst[d]
        ok = readable.rows.get(d, (0, 0))[0]
        if ok >= n_vol:
            vals = read_prefix(src[d], n_vol)
        elif tl is not None:
            vals = timeline_values()[:n_vol]
            lost.append(f"{d}: {n_vol - ok} of {n_vol} rows (rebuilt from the protocol)")
        else:
            vals = np.zeros((0, *dd.shape[1:]), dtype=dd.dtype)
        dd.resize(vals.shape)
        dd[...] = vals
    return lost


def _conditions(
    src: h5py.File, app: SessionAppender, readable: Readable, tl: Any, n_rows: int, n_vol: int
) -> list[str]:
    """The conditions that started in the salvaged samples: the file's rows where they read,
    the protocol's where they do not (a crash also loses the running condition's row)."""
    n = readable.table_rows("protocol/conditions")
    cols = {
        c: read_prefix(src[f"protocol/conditions/{c}"], n) for c in app.file["protocol/conditions"]
    }
    n = min(len(v) for v in cols.values())
    have = {c: v[:n] for c, v in cols.items()}
    keep = have["start_sample"] < n_rows
    rows = {c: v[keep] for c, v in have.items()}
    rows["stop_sample"] = np.minimum(rows["stop_sample"], n_rows)
    rows["stop_volume"] = np.minimum(rows["stop_volume"], n_vol)
    lost = []
    if tl is not None:
        starts = tl.condition_start_samples
        missing = [
            c for c in range(tl.n_conditions) if starts[c] < n_rows and c >= len(rows["index"])
        ]
        if missing:
            extra = {
                "name": np.array([tl.protocol.conditions[c].name for c in missing], dtype=object),
                "index": np.array(missing, dtype=np.int32),
                "start_volume": np.array([tl.condition_bounds[c] for c in missing], np.int64),
                "stop_volume": np.array(
                    [min(tl.condition_bounds[c + 1], n_vol) for c in missing], np.int64
                ),
                "start_sample": np.array([starts[c] for c in missing], np.int64),
                "stop_sample": np.array(
                    [min(int(starts[c + 1]), n_rows) for c in missing], np.int64
                ),
            }
            rows = {c: np.concatenate([rows[c], extra[c].astype(rows[c].dtype)]) for c in rows}
            lost.append(f"protocol/conditions: {len(missing)} rows (rebuilt from the protocol)")
    app.append("protocol/conditions", rows)
    return lost
