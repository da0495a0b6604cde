"""Diagnosing damaged session files without ever waiting on them.

A plain HDF5 open refuses a truncated file, and a file a crash left "open for
writing". Opening such files in SWMR mode works, but HDF5 then retries every
metadata read that fails its checksum, with growing sleeps; on a file cut short
that means retrying for a very long time. So, before HDF5 touches a file, we read its
superblock ourselves (:func:`check_file`): how long the file is, how long its data
say it should be, whether a writer had it open, and whether a live zaprig run
owns it (:mod:`rig.core.lock`). SWMR is used only for files that need it,
and always with a bounded number of read attempts (:func:`open_swmr_bounded`).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from rig.core.errors import SessionFileError
from rig.core.lock import LockInfo, live_owner

__all__ = ["FileCheck", "check_file", "open_swmr_bounded", "readable_rows"]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Superblock consistency flags (HDF5 file format spec, superblock v2/v3).
_FLAG_WRITE, _FLAG_SWMR_WRITE = 0x01, 0x04
#: Metadata read attempts in SWMR mode: a live writer may be mid-update, a cut file never heals.
ATTEMPTS_LIVE, ATTEMPTS_DAMAGED = 20, 1


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@dataclass(frozen=True)
class FileCheck:
    """What a file's first bytes say about it, read without HDF5."""

    path: Path
    size: int
    is_hdf5: bool
    superblock_version: int = -1
    #: Where the file's data end, according to its superblock (None if unknown).
    stored_eof: int | None = None
    open_for_write: bool = False
    owner: LockInfo | None = None

    @property
    def truncated(self) -> bool:
        return self.stored_eof is not None and self.size < self.stored_eof

    @property
    def needs_swmr(self) -> bool:
        """A live writer's file, or one a crash left marked open, or one cut short."""
        return self.owner is not None or self.open_for_write or self.truncated

    def problem(self) -> str | None:
        """One sentence on what is wrong with the file itself, or None."""
        if self.size == 0:
            return "the file is empty (0 bytes): not a session file"
        if not self.is_hdf5:
            return f"not an HDF5 file ({self.size} bytes, no HDF5 signature)"
        if self.truncated:
            assert self.stored_eof is not None
            return (
                f"file ends at {_mb(self.size)}, its data reach {_mb(self.stored_eof)}: "
                f"truncated ({self.size / self.stored_eof:.0%} of it is there)"
            )
        return None


def check_file(path: str | Path) -> FileCheck:
    """Read the superblock: size, stored end of file, the 'open for writing' flags, the lock."""
    p = Path(path)
    if not p.exists():
        raise SessionFileError(f"{p}: no such session file")
    if p.is_dir():
        raise SessionFileError(f"{p}: is a folder; give a session .h5 file")
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise SessionFileError(f"{p}: cannot read: {e}") from None
    owner = live_owner(p)
    # the superblock may sit at 0, 512, 1024, 2048 ... (a user block before it)
    base = next((o for o in (0, 512, 1024, 2048) if head[o : o + 8] == _SIGNATURE), None)
    if base is None:
        return FileCheck(p, size, False, owner=owner)
    version = head[base + 8]
    if version not in (2, 3):
        return FileCheck(p, size, True, version, owner=owner)
    n_off = head[base + 9]
    flags = head[base + 11]
    eof_at = base + 12 + 2 * n_off
    eof = int.from_bytes(head[eof_at : eof_at + n_off], "little")
    return FileCheck(
        p,
        size,
        True,
        version,
        stored_eof=base + eof,
        open_for_write=bool(flags & (_FLAG_WRITE | _FLAG_SWMR_WRITE)),
        owner=owner,
    )


@functools.cache
def _set_read_attempts() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """HDF5's ``H5Pset_metadata_read_attempts``, which h5py does not wrap.

    It is looked up in the libhdf5 that h5py has already loaded (the same library
    instance, so property lists are shared), found through /proc/self/maps.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {ln.split()[-1] for ln in maps if "/libhdf5" in ln and "_hl" not in ln}
    except OSError:
        return None
    for lib in sorted(paths):
        try:
            fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn
    return None


def open_swmr_bounded(path: Path, attempts: int) -> h5py.File:
    """Open read-only in SWMR mode, giving up on bad metadata after ``attempts`` tries."""
    from h5py import h5f, h5p

    setter = _set_read_attempts()
    if setter is None:
        raise SessionFileError(
            f"{path}: cannot bound HDF5's read retries here (libhdf5 not found in this "
            "process), so the file is not opened in SWMR mode: it might never answer"
        )
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_LATEST, h5f.LIBVER_LATEST)
    if setter(fapl.id, attempts) < 0:
        raise SessionFileError(f"{path}: HDF5 refused a bounded number of read attempts")
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY | h5f.ACC_SWMR_READ, fapl=fapl)
    except (OSError, RuntimeError) as e:
        raise SessionFileError(f"{path}: cannot be opened even in SWMR mode: {e}") from None
    return h5py.File(fid)


@dataclass
class Readable:
    """How much of each dataset can be read: rows whose chunks all lie inside the file."""

    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (readable, recorded)
    lost: dict[str, str] = field(default_factory=dict)  # path -> why nothing can be read

    def table_rows(self, table: str) -> int:
        """Rows of a table (a group of columns) readable in every column."""
        cols = [ok for name, (ok, _) in self.rows.items() if name.rsplit("/", 1)[0] == table]
        lost = any(name.rsplit("/", 1)[0] == table for name in self.lost)
        return 0 if lost or not cols else min(cols)

    def lines(self) -> list[str]:
        """One line per dataset, or per table (its columns together)."""
        from rig.core.layout import TABLES

        merged: dict[str, tuple[int, int]] = {}
        for name, (ok, n) in self.rows.items():
            key = name.rsplit("/", 1)[0] if name.rsplit("/", 1)[0] in TABLES else name
            old = merged.get(key, (ok, n))
            merged[key] = (min(old[0], ok), max(old[1], n))
        out = []
        for name, (ok, n) in sorted(merged.items()):
            out.append(f"  {name:<24} {ok} of {n} rows readable" if ok < n else
                       f"  {name:<24} all {n} rows readable")  # fmt: skip
        for name, why in self.lost.items():
            out.append(f"  {name:<24} unreadable ({why})")
        return out


def _rows_inside(d: h5py.Dataset, size: int) -> int:
    """Leading rows of ``d`` whose stored chunks end before byte ``size`` of the file."""
    n = int(d.shape[0]) if d.shape else 0
    if d.chunks is None:
        off = d.id.get_offset()
        return n if off is None or off + d.id.get_storage_size() <= size else 0
    first_bad = n
    rows_per_chunk = d.chunks[0]

    def visit(info: object) -> None:
        nonlocal first_bad
        if info.byte_offset + info.size > size:  # type: ignore[attr-defined]
            first_bad = min(first_bad, int(info.chunk_offset[0]))  # type: ignore[attr-defined]

    try:
        if hasattr(d.id, "chunk_iter"):
            d.id.chunk_iter(visit)
        else:
            for i in range(d.id.get_num_chunks()):
                visit(d.id.get_chunk_info(i))
    except (OSError, RuntimeError):
        # part of the chunk index lies past the cut: ask chunk by chunk, in row order
        return _rows_by_coord(d, size, rows_per_chunk)
    if first_bad >= n:  # every chunk lies inside (a table shorter than one chunk too)
        return n
    return int(min(n, first_bad // rows_per_chunk * rows_per_chunk))


def _rows_by_coord(d: h5py.Dataset, size: int, rows_per_chunk: int) -> int:
    """Leading rows whose every chunk the index can still locate inside the file."""
    n = int(d.shape[0])
    chunks = d.chunks or d.shape
    others = [range(0, int(s), int(c)) for s, c in zip(d.shape[1:], chunks[1:], strict=True)]
    good = 0
    for r0 in range(0, n, rows_per_chunk):
        for rest in itertools.product(*others):
            try:
                info = d.id.get_chunk_info_by_coord((r0, *rest))
            except (OSError, RuntimeError, ValueError):
                return good
            if info.byte_offset is None or info.byte_offset + info.size > size:
                return good
        good = min(n, r0 + rows_per_chunk)
    return good


def readable_rows(f: h5py.File, size: int) -> Readable:
    """Walk every dataset; each answers at once (bounded SWMR) or is reported unreadable."""
    out = Readable()
    names: list[str] = []
    try:
        f.visit(names.append)
    except (OSError, RuntimeError, KeyError) as e:
        names = _known_names(f)  # the root's index is damaged: look each up by its name
        if not names:
            out.lost["/"] = f"the list of datasets is damaged: {e}"
    for name in names:
        try:
            obj = f[name]
            if not isinstance(obj, h5py.Dataset):
                continue
            out.rows[name] = (_rows_inside(obj, size), int(obj.shape[0]) if obj.shape else 0)
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            out.lost[name] = str(e).split("(")[0].strip() or type(e).__name__
    return out


def _known_names(f: h5py.File) -> list[str]:
    """Objects found by the names a session file has, when the root's index cannot be walked
    (a cut through it): each group is walked on its own, or its known columns looked up."""
    from rig.core.layout import TABLES

    tops = ("stimuli_and_ephys", "analog_inputs", "volumes", "protocol", "stimulus", "behavior",
            "events", "ground_truth", "live")  # fmt: skip
    known = [*TABLES, "volumes", "ground_truth", "live"]
    guesses = {
        "volumes": ["raw", "start_sample", "plane_sample", "marker_sample"],
        "ground_truth": ["positions_zyx", "traces", "tuning"],
        **{t: list(cols) for t, cols in TABLES.items()},
    }
    names: list[str] = []
    for top in tops:
        try:
            obj = f[top]
        except (OSError, RuntimeError, KeyError, ValueError):
            continue
        names.append(top)
        if not isinstance(obj, h5py.Group):
            continue
        try:
            obj.visit(lambda n, top=top: names.append(f"{top}/{n}"))
            continue
        except (OSError, RuntimeError, KeyError, ValueError):
            pass
        for group in (g for g in known if g == top or g.startswith(top + "/")):
            for col in guesses.get(group, []):
                name = f"{group}/{col}"
                try:
                    f[name]
                except (OSError, RuntimeError, KeyError, ValueError):
                    continue
                names.append(name)
    return names


def read_prefix(d: h5py.Dataset, n: int, block: int = 65536) -> np.ndarray:
    """The first ``n`` rows of ``d``, in blocks (a cut file may fail part-way: stop there)."""
    parts = []
    for a in range(0, n, block):
        try:
            parts.append(d[a : min(n, a + block)])
        except (OSError, RuntimeError):
            break
    if not parts:
        return np.zeros((0, *d.shape[1:]), dtype=d.dtype)
    return np.concatenate(parts)
