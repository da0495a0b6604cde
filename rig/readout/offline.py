"""The offline readout: drift, brightness and ΔF/F over every volume of a recorded session.

``zaprig readout SESSION [--out FILE]`` lands in :func:`cli_readout`. It runs the
live lane's own code (:class:`~rig.readout.Readout`: the reference, the labels, the
drift, the brightness, the background rings; :class:`~rig.readout.Baseline` for
ΔF/F), so the two agree wherever both have a row; the offline readout has one for
every volume, the reference volumes included (the live one starts after them).

It is built in three pieces so that a cluster can run the middle one in parallel
(one Dask task per range of volumes):

1. :func:`build_readout` reads the first ``reference_volumes`` volumes and returns a
   :class:`Readout` whose reference is complete (picklable: it travels to the tasks);
2. :func:`readout_volumes` measures volumes ``[start, stop)`` (any range, any order);
3. :func:`assemble` joins the chunks in order, fills dropped volumes from their
   neighbours, and takes ΔF/F over the whole series (the baseline looks back, so it
   is the one step that cannot be split); :func:`write_offline` writes the sidecar.

The result goes to a **sidecar file** (default ``SESSION.readout.h5``; the session
file is never rewritten: it is the record of what happened, and SWMR allows no new
groups once written), in a ``/readout`` group described in docs/session-format.md.
Like exports, a sidecar is never overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import h5py
import numpy as np

from rig.core.config import ReadoutConfig, config_from_json
from rig.core.errors import SessionFileError
from rig.readout._compute import Baseline
from rig.readout._setup import prepare_labels
from rig.readout._state import Readout, ReadoutSettings

__all__ = [
    "OfflineChunk",
    "OfflineReadout",
    "assemble",
    "build_readout",
    "read_offline",
    "readout_session",
    "readout_volumes",
    "sidecar_path",
    "write_offline",
]

#: Volumes read per chunk by :func:`readout_session` (one volume is read at a time).
CHUNK_VOLUMES = 64


@dataclass(frozen=True)
class OfflineChunk:
    """The measurements of volumes ``[start, stop)``; NaN rows for dropped volumes."""

    start: int
    stop: int
    drift_um: np.ndarray  # (k, 3)
    brightness: np.ndarray  # (k, z) float32
    traces_raw: np.ndarray  # (k, n) float32
    traces_f: np.ndarray  # (k, n) float32
    seconds: float


@dataclass(frozen=True)
class OfflineReadout:
    """A whole session's offline readout (what the sidecar's ``/readout`` holds)."""

    drift_um: np.ndarray  # (t, 3)
    brightness: np.ndarray  # (t, z) float32, NaN columns: planes without tissue
    traces_raw: np.ndarray  # (t, n) float32 mean counts per label
    traces_f: np.ndarray  # (t, n) float32 less the dark level and the background
    traces_dff: np.ndarray  # (t, n) float32, finite everywhere
    filled: np.ndarray  # (t,) bool: a dropped volume, its traces copied from a neighbour
    ids: np.ndarray  # (n,) label ids
    positions_zyx: np.ndarray  # (n, 3)
    empty_planes: list[int]
    config: ReadoutConfig


def sidecar_path(session: str | Path) -> Path:
    """Where ``zaprig readout`` writes by default: beside the session, ``NAME.readout.h5``."""
    p = Path(session)
    return p.with_name(p.stem + ".readout.h5")


def _settings(f: h5py.File, config: ReadoutConfig | None) -> tuple[ReadoutSettings, Readout]:
    """The session's readout settings and a fresh :class:`Readout` with its labels."""
    text = f.attrs.get("hardware_config", "")
    if not text:
        raise SessionFileError(
            f"{f.filename}: has no hardware_config attribute; the readout needs the rig's "
            "settings (a file written by zaprig has them)"
        )
    if "volumes/raw" not in f:
        raise SessionFileError(f"{f.filename}: has no /volumes/raw; nothing to read out")
    rig = config_from_json(str(text))
    cfg = config if config is not None else rig.readout
    raw = f["volumes/raw"]
    shape = tuple(int(s) for s in raw.shape[1:])
    vox = tuple(float(v) for v in raw.attrs.get("voxel_size_um", rig.microscope.voxel_size_um))
    settings = ReadoutSettings(shape_zyx=shape, voxel_size_um=vox, config=cfg)  # type: ignore[arg-type]
    rig = rig.model_copy(update={"readout": cfg})
    positions = f["ground_truth/positions_zyx"][...] if "ground_truth/positions_zyx" in f else None
    if positions is not None and (positions.ndim != 2 or positions.shape[1] != 3):
        raise SessionFileError(
            f"{f.filename}: /ground_truth/positions_zyx has shape {positions.shape}, "
            "want (n, 3) (z, y, x per neuron); the file was not written by zaprig or was edited"
        )
    if cfg.labels == "ground_truth" and positions is None:
        raise SessionFileError(
            f"{f.filename}: readout.labels = 'ground_truth' but the file has no "
            "/ground_truth (a real rig's session): set labels to 'file' or 'detect'"
        )
    labels = prepare_labels(rig, positions)
    return settings, Readout(settings, labels)


#: A session file's path, or the file already open by the session reader (an export reads
#: through its own reader's handle: HDF5 refuses a second open of one file with other flags).
Source: TypeAlias = "str | Path | h5py.File"


@contextlib.contextmanager
def _opened(session: Source) -> Iterator[h5py.File]:
    if isinstance(session, h5py.File):
        yield session
        return
    from rig.session import SessionReader

    with SessionReader(session) as r:
        yield r.file


def _dropped(f: h5py.File) -> set[int]:
    if "volumes/dropped/volume" not in f:
        return set()
    return {int(v) for v in f["volumes/dropped/volume"][...]}


def build_readout(session: Source, config: ReadoutConfig | None = None) -> Readout:
    """The session's :class:`Readout` with its reference complete (from the first volumes
    that were not dropped), ready for :func:`readout_volumes`."""
    with _opened(session) as f:
        _, readout = _settings(f, config)
        raw = f["volumes/raw"]
        dropped = _dropped(f)
        for t in range(int(raw.shape[0])):
            if t in dropped:
                continue
            if readout.add_reference(np.asarray(raw[t])):
                return readout
    raise SessionFileError(
        f"{session}: fewer volumes than readout.reference_volumes "
        f"({readout.s.config.reference_volumes}); nothing to read out"
    )


def readout_volumes(
    session: Source,
    start: int,
    stop: int,
    readout: Readout | None = None,
    config: ReadoutConfig | None = None,
) -> OfflineChunk:
    """Measure volumes ``[start, stop)`` with ``readout`` (built from the session if None).

    Independent of every other range: one Dask task each. Dropped volumes (zeros in
    the file) get NaN rows, which :func:`assemble` fills.
    """
    if readout is None:
        readout = build_readout(session, config)
    c0 = time.thread_time()
    with _opened(session) as f:
        raw = f["volumes/raw"]
        stop = min(stop, int(raw.shape[0]))
        k = max(0, stop - start)
        z = int(raw.shape[1])
        n = readout.labels.n if readout.labels is not None else 0
        out = OfflineChunk(
            start=start,
            stop=start + k,
            drift_um=np.full((k, 3), np.nan),
            brightness=np.full((k, z), np.nan, np.float32),
            traces_raw=np.full((k, n), np.nan, np.float32),
            traces_f=np.full((k, n), np.nan, np.float32),
            seconds=0.0,
        )
        dropped = _dropped(f)
        for i, t in enumerate(range(start, start + k)):
            if t in dropped:
                continue
            m = readout.measure(t, np.asarray(raw[t]))
            out.drift_um[i] = m.drift_um
            out.brightness[i] = m.brightness
            out.traces_raw[i] = m.traces_raw
            out.traces_f[i] = m.traces_f
    return OfflineChunk(
        out.start,
        out.stop,
        out.drift_um,
        out.brightness,
        out.traces_raw,
        out.traces_f,
        time.thread_time() - c0,
    )


def _fill(a: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Rows ``missing`` copied from the nearest earlier row kept (the first kept for a
    leading run)."""
    if not missing.any() or missing.all():
        return a
    kept = np.flatnonzero(~missing)
    src = np.searchsorted(kept, np.arange(len(a)), side="right") - 1
    src = kept[np.maximum(src, 0)]
    return a[src]


def assemble(readout: Readout, chunks: list[OfflineChunk]) -> OfflineReadout:
    """Join chunks (in volume order, contiguous from 0) and take ΔF/F over the whole."""
    chunks = sorted(chunks, key=lambda c: c.start)
    at = 0
    for c in chunks:
        if c.start != at:
            raise ValueError(f"offline readout chunks: volumes {at}..{c.start} are missing")
        at = c.stop
    cfg = readout.s.config
    n = readout.labels.n if readout.labels is not None else 0
    z = readout.s.shape_zyx[0]

    def cat(name: str, width: int, dtype: type) -> np.ndarray:
        parts = [getattr(c, name) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros((0, width), dtype)

    traces_f = cat("traces_f", n, np.float32)
    missing = ~np.isfinite(traces_f).all(axis=1) if n else np.zeros(len(traces_f), bool)
    traces_f = _fill(traces_f, missing)
    dff = Baseline.series(
        traces_f, cfg.baseline_volumes, cfg.baseline_percentile, cfg.baseline_block_volumes
    )
    labels = readout.labels
    return OfflineReadout(
        drift_um=cat("drift_um", 3, np.float64),
        brightness=cat("brightness", z, np.float32),
        traces_raw=_fill(cat("traces_raw", n, np.float32), missing),
        traces_f=traces_f,
        traces_dff=dff,
        filled=missing,
        ids=labels.ids if labels is not None else np.zeros(0, np.int64),
        positions_zyx=labels.positions_zyx if labels is not None else np.zeros((0, 3)),
        empty_planes=readout.empty_planes,
        config=cfg,
    )


def write_offline(out: Path, session: Path, r: OfflineReadout) -> None:
    """Write ``r`` to the sidecar ``out`` (via a ``.part`` file, so a file that exists is whole)."""
    tmp = out.with_name(out.name + ".part")
    with h5py.File(tmp, "w") as f:
        g = f.create_group("readout")
        g.attrs["session"] = session.name
        g.attrs["config"] = r.config.model_dump_json()
        g.attrs["empty_planes"] = np.asarray(r.empty_planes, np.int64)
        g.attrs["rows"] = "row t is volume t of the session's /volumes/raw, every volume"
        for name, data, units in (
            ("drift_um", r.drift_um, "um (z, y, x) against the reference"),
            ("brightness", r.brightness, "plane level / the reference's; NaN: no tissue"),
            ("traces_raw", r.traces_raw, "mean counts per label"),
            ("traces_f", r.traces_f, "counts less the dark level and the local background"),
            ("traces_dff", r.traces_dff, "dF/F of traces_f (rig.readout.Baseline)"),
            ("filled", r.filled, "a dropped volume: its traces copied from a neighbour"),
        ):
            d = g.create_dataset(name, data=data)
            d.attrs["units"] = units
        lab = g.create_group("labels")
        lab.create_dataset("id", data=r.ids)
        lab.create_dataset("positions_zyx", data=r.positions_zyx)
    tmp.replace(out)


def readout_session(
    session: Source,
    out: str | Path | None = None,
    config: ReadoutConfig | None = None,
    chunk_volumes: int = CHUNK_VOLUMES,
    write: bool = True,
) -> tuple[Path, OfflineReadout]:
    """The whole session's offline readout, written to ``out`` (default: the sidecar;
    ``write`` False: only returned)."""
    name = Path(session.filename if isinstance(session, h5py.File) else session)
    dest = Path(out) if out is not None else sidecar_path(name)
    if write and dest.exists():
        raise SessionFileError(
            f"{dest}: the offline readout already exists; delete it or pick another --out"
        )
    readout = build_readout(session, config)
    with _opened(session) as f:
        t_n = int(f["volumes/raw"].shape[0])
    chunks = [
        readout_volumes(session, a, min(a + chunk_volumes, t_n), readout)
        for a in range(0, t_n, max(1, chunk_volumes))
    ]
    result = assemble(readout, chunks)
    if write:
        write_offline(dest, name, result)
    return dest, result


def read_offline(path: str | Path) -> OfflineReadout:
    """A sidecar written by :func:`readout_session`."""
    with h5py.File(path, "r") as f:
        if "readout" not in f:
            raise SessionFileError(f"{path}: not an offline readout (no /readout group)")
        g = f["readout"]
        return OfflineReadout(
            drift_um=g["drift_um"][...],
            brightness=g["brightness"][...],
            traces_raw=g["traces_raw"][...],
            traces_f=g["traces_f"][...],
            traces_dff=g["traces_dff"][...],
            filled=g["filled"][...].astype(bool),
            ids=g["labels/id"][...],
            positions_zyx=g["labels/positions_zyx"][...],
            empty_planes=[int(v) for v in g.attrs.get("empty_planes", [])],
            config=ReadoutConfig.model_validate(json.loads(str(g.attrs["config"]))),
        )


def cli_readout(args: argparse.Namespace) -> int:
    """``zaprig readout``: 0 on success; bad input raises SessionFileError (exit code 2)."""
    from rig.core.lock import refuse_if_live
    from rig.session import SessionReader

    refuse_if_live(args.session, "the offline readout")
    # the session reader diagnoses a missing, truncated or foreign file in one line
    with SessionReader(args.session) as reader:
        dest, r = readout_session(reader.file, args.out)
    t, n = r.traces_dff.shape
    print(f"zaprig: offline readout of {args.session} -> {dest}")
    print(
        f"  {t} volumes x {n} traces (dF/F finite everywhere: {bool(np.isfinite(r.traces_dff).all())})"
    )
    if r.filled.any():
        print(f"  {int(r.filled.sum())} dropped volumes filled from their neighbours")
    if r.empty_planes:
        print(f"  planes without tissue (brightness NaN): {r.empty_planes}")
    return 0
