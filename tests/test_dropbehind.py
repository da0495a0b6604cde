"""The writer's drop-behind: what is written is handed to the disk and leaves the page cache.

Checked on a real file with the kernel's own account of which pages are cached
(``mincore`` on a mapping of the file), on Linux, where the calls exist.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from pathlib import Path

import pytest

from acquisition.writer._dropbehind import DropBehind

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sync_file_range is Linux's")

MB = 1 << 20


def cached_fraction(path: Path, start: int, stop: int) -> float:
    """Share of the file's pages in [start, stop) that the page cache holds."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
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


def test_old_data_leaves_the_cache_and_the_newest_stays(tmp_path: Path) -> None:
    path = tmp_path / "session.bin"
    block = os.urandom(4 * MB)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        behind = DropBehind(fd, keep_bytes=8 * MB, step_bytes=4 * MB)
        assert behind.enabled
        for _ in range(10):  # 40 MB, as ten volumes
            os.write(fd, block)
        os.fsync(fd)  # all clean: nothing left for the disk to take
        assert cached_fraction(path, 0, 40 * MB) > 0.9  # the kernel kept everything
        behind.advance()
        assert cached_fraction(path, 0, 32 * MB) < 0.05  # dropped: older than keep_bytes
        assert cached_fraction(path, 32 * MB, 40 * MB) > 0.9  # the newest 8 MB stay
        assert behind.dropped_bytes == 32 * MB
        with open(path, "rb") as fh:  # nothing lost: read back from the disk
            assert fh.read(4 * MB) == block
    finally:
        os.close(fd)


def test_small_appends_are_batched_into_steps(tmp_path: Path) -> None:
    """The demo's small volumes: one drop per step_bytes written, not one per volume."""
    path = tmp_path / "session.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        behind = DropBehind(fd, keep_bytes=2 * MB, step_bytes=4 * MB)
        drops = []
        for _ in range(40):  # 40 appends of 256 KB = 10 MB
            os.write(fd, b"\1" * (MB // 4))
            before = behind.dropped_bytes
            behind.advance()
            drops.append(behind.dropped_bytes - before)
        # 10 MB written, the newest 2 MB kept: two drops of 4 MB, at 6 MB and at 10 MB written
        assert {i: d for i, d in enumerate(drops) if d} == {23: 4 * MB, 39: 4 * MB}
    finally:
        os.close(fd)
