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

How: the session's raw volumes are uncompressed chunks of one volume each, allocated by
HDF5 as the dataset grows (allocation time *early*, fill time *never*,
:func:`rig.core.layout.create_session_file`) at 4 KiB-aligned addresses (the file's
alignment). The writer asks HDF5 where volume ``t``'s chunk lies and writes the volume
there on a descriptor of its own, in one ``pwrite``. HDF5 writes all the metadata (the
chunk index too) as before, so the file is an ordinary HDF5 file to every reader.
Anything that does not fit (compressed chunks, a volume that is not a multiple of
4 KiB, a filesystem that refuses ``O_DIRECT``) is written through h5py, as before;
:attr:`DirectVolumes.mode` says which path a session took.
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
    plist = raw.id.get_create_plist()
    if raw.compression is not None or plist.get_nfilters():
        return "compressed chunks are written through HDF5's filters"
    if raw.chunks != (1, *raw.shape[1:]):
        return f"chunks {raw.chunks} are not one volume each (an older layout)"
    if plist.get_alloc_time() != h5py.h5d.ALLOC_TIME_EARLY:
        return "the file's volumes are not allocated as the dataset grows (an older layout)"
    if plist.get_fill_time() != h5py.h5d.FILL_TIME_NEVER:
        return "HDF5 would write fill values over the volumes"
    size = int(np.prod(raw.shape[1:])) * raw.dtype.itemsize
    if size % ALIGN:
        return f"a volume is {size} bytes, not a multiple of {ALIGN}"
    return None


class DirectVolumes:
    """Writes whole volumes of a session's ``/volumes/raw`` past the page cache.

    ``write`` returns False when this volume must go through h5py instead (the caller
    then writes it there); an error of the disk (``ENOSPC``, ``EIO``) is raised as the
    h5py path would raise it.
    """

    def __init__(self, path: str, raw: h5py.Dataset) -> None:
        self.raw = raw
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
        """Write volume ``t`` (allocated by the dataset's resize); False: use h5py instead."""
        if self._fd is None:
            return False
        if volume.ctypes.data % ALIGN or not volume.flags.c_contiguous:
            return False
        offset = self.raw.id.get_chunk_info_by_coord((t, 0, 0, 0)).byte_offset
        if offset is None or offset % ALIGN:
            return False
        data = memoryview(volume.data).cast("B")
        try:
            self._pwrite_all(data, offset)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise  # the disk's own error: full, or failing
            # the filesystem takes O_DIRECT opens but not these writes: h5py from now on
            self.why_not = f"the filesystem refused an O_DIRECT write ({e.strerror})"
            self.close()
            return False
        return True

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
