"""Write-behind and drop-behind for the session file: the page cache stays small and warm.

A buffered ``write()`` copies into page-cache pages the kernel must first find. Left
alone, the kernel keeps every written page cached until memory runs short, so a
session writing 428 MB/s takes a *new* free page for every 4 KB it writes. On a
virtual machine whose balloon reports free pages to the host (virtio
``VIRTIO_BALLOON_F_REPORTING``, on here: bit 5 of
``/sys/bus/virtio/drivers/virtio_balloon/virtio*/features``), a page that has been
free for a few seconds has been handed back, and touching it again costs a fault in
the host. Measured on this machine (``benchmarks/write_cost.py``): 2.3–2.6 ms of CPU
per MB written, one whole core at the dataset's rate, against 0.3 ms per MB when the
same pages are reused. That core was the writer's; the app and the loop waited for it.
The first run after an idle pause was the worst, because by then all free memory had
been reported.

So the writer does what a streaming recorder does on any OS that allows it:

* it starts the write-back of each volume as soon as it is written
  (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait for the disk);
* it drops from the cache what was written more than ``keep_bytes`` ago
  (``posix_fadvise(POSIX_FADV_DONTNEED)``), which frees only clean pages: a page the
  disk has not yet taken stays, and is dropped by a later call, so a slow disk still
  has the kernel's dirty-page allowance as its buffer and nothing waits.

The freed pages are the next ones the kernel hands out, within the second, before they
are reported. Nothing is lost by dropping: the data are on disk (or still dirty, and
kept). HDF5's occasional in-place update of an old metadata block then reads one page
back, in this process, never in the loop's.

Where the calls do not exist (not Linux) this does nothing: the file is written as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable

__all__ = ["DropBehind"]

#: sync_file_range(2)'s flag: start write-back of the range's dirty pages, do not wait.
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """libc's ``sync_file_range`` with the WRITE flag, or None where there is none."""
    if not hasattr(os, "posix_fadvise"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        if fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ESPIPE, errno.ENOSYS):
                return  # a file system or file that cannot: it is written back as usual
            raise OSError(err, f"starting write-back failed: {os.strerror(err)}")

    return start_writeback


class DropBehind:
    """Starts write-back of what the writer appended and drops what is older than ``keep_bytes``.

    Call :meth:`advance` after each volume. The session file grows at its end (HDF5
    allocates new chunks there), so "what was appended" is the range between two
    end-of-file marks. ``step_bytes`` batches the drops, so small volumes (the demo's)
    cost one ``posix_fadvise`` per that many bytes, not one per volume.
    """

    def __init__(self, fd: int, keep_bytes: int = 1 << 30, step_bytes: int = 256 << 20) -> None:
        self.fd = fd
        self.keep_bytes = keep_bytes
        self.step_bytes = step_bytes
        self._writeback = _sync_file_range()
        self.enabled = self._writeback is not None
        self._written_to = os.fstat(fd).st_size  # write-back started up to here
        self._dropped_to = 0  # the cache dropped below here
        #: Bytes dropped so far (what a test and the benchmark read)
        self.dropped_bytes = 0

    def advance(self) -> None:
        """The writer appended data: start its write-back, drop what is ``keep_bytes`` behind."""
        if self._writeback is None:
            return
        end = os.fstat(self.fd).st_size
        if end > self._written_to:
            self._writeback(self.fd, self._written_to, end - self._written_to)
            self._written_to = end
        low = end - self.keep_bytes
        if low - self._dropped_to >= self.step_bytes:
            # From 0, not from the last mark: pages that were still dirty last time are
            # clean by now and go too. The kernel walks only the pages that are cached.
            os.posix_fadvise(self.fd, 0, low, os.POSIX_FADV_DONTNEED)
            self.dropped_bytes += low - self._dropped_to
            self._dropped_to = low
