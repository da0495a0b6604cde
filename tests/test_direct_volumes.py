"""Volumes reach the disk past the page cache (O_DIRECT), exactly, or through h5py when they
cannot: the real writer process, its shared-memory ring and a real HDF5 file read back."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_writer import client

from acquisition.writer import WriterClient

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="O_DIRECT and mincore are Linux's")


def cached_fraction(path: Path, start: int, stop: int) -> float:
    """Share of the file's pages in [start, stop) that the page cache holds (mincore)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    length = stop - start
    with open(path, "rb") as fh:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fh.fileno(), start)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        assert libc.mincore(addr, length, vec) == 0, os.strerror(ctypes.get_errno())
        return sum(v & 1 for v in vec) / pages
    finally:
        libc.munmap(addr, length)


def meta(w: WriterClient, t: int) -> None:
    start = 600 + t * 3000
    w.set_volume_meta(t, start, start + np.arange(w.ring.shape[0]) * 750, start - 60)


def record(w: WriterClient, volumes: dict[int, np.ndarray]) -> None:
    """Write ``volumes`` in order; with two slots both held, volume 2 finds no slot (dropped)."""
    held: list[int] = []
    for t in sorted(volumes):
        if t == 2:
            meta(w, 2)
            assert w.acquire(2) is None  # both slots held: dropped and recorded
            for h in held:
                w.commit(h)
            held.clear()
            while w.buffer_fill() > 0.0:
                w.proc.join(0.01)
            continue
        meta(w, t)
        buf = w.acquire(t)
        assert buf is not None
        buf[...] = volumes[t]
        held.append(t)
    for h in held:
        w.commit(h)


def chunk_span(raw: h5py.Dataset, t: int) -> tuple[int, int]:
    """The first and one past the last byte of volume ``t``'s chunks in the file."""
    assert raw.chunks is not None
    planes = range(0, raw.shape[1], raw.chunks[1])  # one chunk per volume, or per plane
    infos = [raw.id.get_chunk_info_by_coord((t, k, 0, 0)) for k in planes]
    return min(i.byte_offset for i in infos), max(i.byte_offset + i.size for i in infos)


def test_volumes_bypass_the_page_cache_and_read_back_exactly(tmp_path: Path) -> None:
    shape = (3, 128, 256)  # volumes of 192 kB, a multiple of the 4 kB alignment
    rng = np.random.default_rng(7)
    volumes = {t: rng.integers(0, 65535, shape, dtype=np.uint16) for t in (0, 1, 3)}
    path = tmp_path / "s.h5"
    w = client(path, slots=2, shape=shape, compression="none")
    w.start()
    assert w.volume_writes.startswith("direct"), w.volume_writes
    with h5py.File(path, "r", swmr=True) as f:
        assert f["volumes/raw"].chunks == (1, *shape)  # one chunk per volume
    record(w, {**volumes, 2: np.zeros(shape, np.uint16)})
    w.close({"status": "complete"})
    assert w.closed_ok, w.errors
    with h5py.File(path, "r") as f:
        raw = f["volumes/raw"]
        spans = [chunk_span(raw, t) for t in volumes]
    # the planes never entered the page cache (asked before anything reads them back);
    # a buffered write leaves every one of them there
    for lo, hi in spans:
        assert lo % 4096 == 0
        assert cached_fraction(path, lo, hi) == 0.0
    with h5py.File(path, "r") as f:
        raw = f["volumes/raw"]
        assert raw.shape == (4, *shape)
        for t, v in volumes.items():
            np.testing.assert_array_equal(raw[t], v)
        assert not raw[2].any()  # the dropped volume reads as zeros
        assert list(f["volumes/dropped/volume"][...]) == [2]


@pytest.mark.parametrize(
    ("shape", "compression", "why"),
    [((3, 10, 30), "none", "not a multiple of 4096"), ((3, 128, 256), "lz4", "compressed")],
)
def test_volumes_that_cannot_go_direct_go_through_h5py(
    tmp_path: Path, shape: tuple[int, int, int], compression: str, why: str
) -> None:
    import hdf5plugin  # noqa: F401 - reads the lz4 volumes

    rng = np.random.default_rng(3)
    volumes = {t: rng.integers(0, 4000, shape, dtype=np.uint16) for t in (0, 1)}
    path = tmp_path / "s.h5"
    w = client(path, slots=4, shape=shape, compression=compression)
    w.start()
    assert w.volume_writes.startswith("buffered") and why in w.volume_writes, w.volume_writes
    record(w, volumes)
    w.close({"status": "complete"})
    assert w.closed_ok, w.errors
    if compression == "none":  # the buffered path leaves what it wrote in the page cache
        with h5py.File(path, "r") as f:
            lo, hi = chunk_span(f["volumes/raw"], 0)
        assert cached_fraction(path, lo - lo % 4096, hi) > 0.9
    with h5py.File(path, "r") as f:
        for t, v in volumes.items():
            np.testing.assert_array_equal(f["volumes/raw"][t], v)
