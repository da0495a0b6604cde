"""Full volumes go to the disk with ``O_DIRECT``, past the page cache.

Why: a buffered ``write()`` copies each volume into the page cache, and the kernel
keeps every page written. On a VM whose memory balloon reports free pages to its host
(``VIRTIO_BALLOON_F_REPORTING``, as on this project's machines) every fresh page costs
a fault in the host: 2.0-2.7 ms of CPU per MB, measured, which at the dataset's
428 MB/s is a whole core taken from the window and the loop. Dropping the written pages
behind the writer (``posix_fadvise``) cut that to a fifth, but freeing ~400 MB a second
stalled the closed loop (issue 31). ``O_DIRECT`` copies nothing: the disk takes the
volume from the shared ring's own pages, which are resident already, for ~0.05 ms of
CPU per MB, and the page cache never fills with the session, so neither writing nor
deleting a session churns the machine's memory. On a bare-metal rig PC it saves the
same copy and keeps the cache for what the lab reads.

How: the session's raw volumes are uncompressed chunks of one plane, allocated by HDF5
as the dataset grows (allocation time *early*, fill time *never*,
:func:`rig.core.layout.create_session_file`) at 4 KiB-aligned addresses (the file's
alignment). The writer asks HDF5 where the chunks of volume ``t`` lie and writes the
planes there on a descriptor of its own. HDF5 writes all the metadata (the chunk index
too) as before, so the file is an ordinary HDF5 file to every reader. Anything that
does not fit (compressed chunks, a plane that is not a multiple of 4 KiB, a filesystem
that refuses ``O_DIRECT``) is written through h5py, as before; :attr:`DirectVolumes.mode`
says which path a session took.
"""

from __future__ import annotations

import errno
import os

import h5py
import numpy as np

__all__ = ["ALIGN", "DirectVolumes"]

#: The alignment of addresses, lengths and memory: a page, which also covers disks with
#: 4 KiB logical blocks (the kernel's rule is the logical block size; 512 on most).
ALIGN = 4096


def _why_not(raw: h5py.Dataset) -> str | None:
    """Why the volumes of ``raw`` cannot be placed directly; None if they can."""
    if raw.compression is not None or raw.id.get_create_plist().get_nfilters():
        return "compressed chunks are written through HDF5's filters"
    y, x = raw.shape[2:]
    if raw.chunks != (1, 1, y, x):
        return f"chunks {raw.chunks} are not one plane each"
    plist = raw.id.get_create_plist()
    if plist.get_alloc_time() != h5py.h5d.ALLOC_TIME_EARLY:
        return "the file's volumes are not allocated as the dataset grows (an older layout)"
    if plist.get_fill_time() != h5py.h5d.FILL_TIME_NEVER:
        return "HDF5 would write fill values over the planes"
    plane = y * x * raw.dtype.itemsize
    if plane % ALIGN:
        return f"a plane is {plane} bytes, not a multiple of {ALIGN}"
    return None


class DirectVolumes:
    """Writes whole volumes of a session's ``/volumes/raw`` past the page cache.

    ``write`` returns False when this volume must go through h5py instead (the caller
    then writes it there); an error of the disk (``ENOSPC``, ``EIO``) is raised as the
    h5py path would raise it.
    """

    def __init__(self, path: str, raw: h5py.Dataset) -> None:
        self.raw = raw
        self.plane_bytes = int(np.prod(raw.shape[2:])) * raw.dtype.itemsize
        self.n_planes = int(raw.shape[1])
        self._fd: int | None = None
        self.why_not = _why_not(raw)
        if self.why_not is None:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError as e:
                self.why_not = f"the filesystem refuses O_DIRECT ({e.strerror})"

    @property
    def mode(self) -> str:
        """How volumes reach the disk: for the log and the benchmarks."""
        if self._fd is not None:
            return "direct (O_DIRECT, past the page cache)"
        return f"buffered (through h5py: {self.why_not})"

    def write(self, t: int, volume: np.ndarray) -> bool:
        """Write volume ``t`` (already allocated by the dataset's resize); False: use h5py."""
        if self._fd is None:
            return False
        if volume.ctypes.data % ALIGN or not volume.flags.c_contiguous:
            return False
        runs = self._runs(t)
        if runs is None:
            return False
        data = memoryview(volume.data).cast("B")
        try:
            for offset, start, length in runs:
                self._pwrite_all(data[start : start + length], offset)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise  # the disk's own error: full, or failing
            # the filesystem takes O_DIRECT opens but not these writes: h5py from now on
            self.why_not = f"the filesystem refused an O_DIRECT write ({e.strerror})"
            self.close()
            return False
        return True

    def _runs(self, t: int) -> list[tuple[int, int, int]] | None:
        """(file offset, offset in the volume, length) for each contiguous run of planes."""
        info = self.raw.id.get_chunk_info_by_coord
        pb, z = self.plane_bytes, self.n_planes
        first = info((t, 0, 0, 0)).byte_offset
        last = info((t, z - 1, 0, 0)).byte_offset
        if first is None or last is None:
            return None
        if last == first + (z - 1) * pb:
            offsets = [first + k * pb for k in range(z)]
        else:
            offsets = [info((t, k, 0, 0)).byte_offset for k in range(z)]
            if any(o is None for o in offsets):
                return None
        if any(o % ALIGN for o in offsets):
            return None
        runs: list[tuple[int, int, int]] = []
        for k, off in enumerate(offsets):
            if runs and runs[-1][0] + runs[-1][2] == off:
                o, s, n = runs[-1]
                runs[-1] = (o, s, n + pb)
            else:
                runs.append((off, k * pb, pb))
        return runs

    def _pwrite_all(self, data: memoryview, offset: int) -> None:
        assert self._fd is not None
        done = 0
        while done < len(data):
            n = os.pwrite(self._fd, data[done:], offset + done)
            if n == 0:
                raise OSError(errno.EIO, "O_DIRECT write wrote nothing")
            done += n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
