"""``zaprig recover --salvage OUT``: copy what a damaged session file still holds into a new one.

The original is only read, never changed. Every dataset is copied up to the
first row that cannot be read (see :mod:`rig.session._damage`); the volume
table's trigger samples, if they are lost, are rebuilt from the protocol and rig
stored in the root attributes (the engine computes them the same way), and the
stream is cut before the first unsalvaged volume's marker pulse, so that
the new file's volumes and TTL pulses agree. The new file says ``failed``, where
it came from, and what was lost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.clock import utc_now_iso
from rig.errors import SessionFileError
from rig.session._damage import (
    ATTEMPTS_DAMAGED,
    ATTEMPTS_LIVE,
    Readable,
    check_file,
    open_swmr_bounded,
    read_prefix,
    readable_rows,
)
from rig.session._layout import FORMAT, TABLES, append_columns, create_session_file
from rig.session._lock import refuse_if_live

__all__ = ["salvage"]


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
    from rig.config import config_from_json
    from rig.timeline import Timeline
    from stimuli.protocol import protocol_from_dict

    try:
        rig = config_from_json(str(attrs["hardware_config"]))
        proto = protocol_from_dict(json.loads(str(attrs["protocol"])), "")
        return Timeline.build(proto, rig)
    except Exception:  # a damaged or foreign description: salvage without it
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
    import hdf5plugin  # noqa: F401 - compressed sessions need the Blosc filter

    src_path, dst_path = Path(path), Path(out)
    refuse_if_live(src_path, "salvaging")
    check = check_file(src_path)
    if not check.is_hdf5:
        raise SessionFileError(f"{src_path}: {check.problem()}; nothing to salvage")
    if dst_path.exists():
        raise SessionFileError(f"{dst_path}: exists already; give a new file name to salvage into")
    if dst_path.resolve() == src_path.resolve():
        raise SessionFileError(f"{dst_path}: salvage into a new file, not the original")
    attempts = ATTEMPTS_DAMAGED if check.truncated else ATTEMPTS_LIVE
    with open_swmr_bounded(src_path, attempts) as src:
        attrs = _attrs(src)
        if str(attrs.get("format", "")) != FORMAT:
            raise SessionFileError(f"{src_path}: not a zaprig session file; nothing to salvage")
        readable = readable_rows(src, check.size)
        try:
            raw = src["volumes/raw"]
            shape_zyx = tuple(int(x) for x in raw.shape[1:])
            raw_attrs = dict(raw.attrs)
            stream_fs = float(src["stimuli_and_ephys"].attrs["sample_rate_hz"])
        except (OSError, RuntimeError, KeyError) as e:
            raise SessionFileError(
                f"{src_path}: the stream or volume layout cannot be read ({e}); nothing to salvage"
            ) from None
        tl = _timeline(attrs)
        n_rows = readable.rows.get("stimuli_and_ephys", (0, 0))[0]
        n_vol = _volumes_readable(raw, int(raw.shape[0]))
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
        gt = (
            src["ground_truth/positions_zyx"][...]
            if "ground_truth/positions_zyx" in readable.rows
            else None
        )
        attrs.update(
            status="failed",
            ended_at=str(attrs.get("ended_at", "")) or utc_now_iso(),
            salvaged_from=str(src_path),
            salvaged_at=utc_now_iso(),
        )
        dst = create_session_file(
            dst_path,
            attrs,
            shape_zyx,  # type: ignore[arg-type]
            tuple(float(x) for x in raw_attrs.get("voxel_size_um", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
            float(raw_attrs.get("volume_period_s", 1.0)),
            stream_fs,
            str(raw_attrs.get("compression", "none")),
            gt,
        )
        with dst:
            lost = _copy(src, dst, readable, tl, n_rows, n_vol)
            msg = (
                f"salvaged from {src_path} ({check.problem() or 'damaged'}): "
                f"{n_rows} samples and {n_vol} volumes copied"
                + (f"; lost: {', '.join(lost)}" if lost else "")
            )
            append_columns(
                dst["events"],
                {
                    "sample": np.array([n_rows]),
                    "wall_time": np.array([time.time()]),
                    "kind": np.array(["fault"], dtype=object),
                    "message": np.array([msg], dtype=object),
                },
            )
    return f"{dst_path}: {msg}; status 'failed'; {src_path} was left untouched"


def _copy(
    src: h5py.File, dst: h5py.File, readable: Readable, tl: Any, n_rows: int, n_vol: int
) -> list[str]:
    lost: list[str] = []
    s = read_prefix(src["stimuli_and_ephys"], n_rows)
    dst["stimuli_and_ephys"].resize((len(s), 10))
    dst["stimuli_and_ephys"][:] = s
    raw, draw = src["volumes/raw"], dst["volumes/raw"]
    draw.resize((n_vol, *draw.shape[1:]))
    for t in range(n_vol):
        draw[t] = raw[t]
    rebuild = {
        "start_sample": lambda: tl.volume_starts,
        "plane_sample": lambda: tl.plane_samples,
        "marker_sample": lambda: tl.marker_samples,
    }
    for name, timeline_values in rebuild.items():
        d = f"volumes/{name}"
        if d not in dst:
            continue
        dd = dst[d]
        ok = readable.rows.get(d, (0, 0))[0]
        if ok >= n_vol:
            vals = read_prefix(src[d], n_vol)
        elif tl is not None:
            vals = timeline_values()[:n_vol]
            lost.append(f"{d} (rebuilt from the protocol)")
        else:
            vals = np.zeros((0, *dd.shape[1:]), dtype=dd.dtype)
        dd.resize(vals.shape)
        dd[...] = vals
    for table in TABLES:
        n = readable.table_rows(table)
        total = max(
            (r[1] for k, r in readable.rows.items() if k.startswith(table + "/")), default=0
        )
        if (
            table == "protocol/conditions"
            and tl is not None
            and (n < total or n_vol < tl.n_volumes)
        ):
            # also when the table is whole but the stream was cut: its last rows may start
            # in volumes the salvaged file does not hold
            _conditions_from_timeline(dst, tl, n_rows, n_vol)
            if n < total:
                lost.append("protocol/conditions (rebuilt from the protocol)")
            continue
        if n < total:
            lost.append(f"{table} ({total - n} of {total} rows)")
        cols = {c: read_prefix(src[f"{table}/{c}"], n) for c in dst[table]}
        if len({len(v) for v in cols.values()}) > 1:  # a column failed part-way
            m = min(len(v) for v in cols.values())
            cols = {c: v[:m] for c, v in cols.items()}
        append_columns(dst[table], cols)
    for name in ("ground_truth/traces", "ground_truth/dff"):
        if name in readable.rows and name in dst:
            tr = read_prefix(src[name], readable.rows[name][0])
            dst[name].resize(tr.shape)
            dst[name][...] = tr
    return lost


def _conditions_from_timeline(dst: h5py.File, tl: Any, n_rows: int, n_vol: int) -> None:
    """The conditions table as the engine writes it, for the samples that were salvaged."""
    starts = tl.condition_start_samples
    rows = [c for c in range(tl.n_conditions) if starts[c] < n_rows]
    stops = [min(int(starts[c + 1]), n_rows) for c in rows]
    append_columns(
        dst["protocol/conditions"],
        {
            "name": np.array([tl.protocol.conditions[c].name for c in rows], dtype=object),
            "index": np.array(rows, dtype=np.int32),
            "start_volume": np.array([tl.condition_bounds[c] for c in rows], dtype=np.int64),
            "stop_volume": np.array(
                [min(tl.condition_bounds[c + 1], n_vol) for c in rows], dtype=np.int64
            ),
            "start_sample": np.array([starts[c] for c in rows], dtype=np.int64),
            "stop_sample": np.array(stops, dtype=np.int64),
        },
    )
