"""Touch large buffers before a run, so no page fault happens while it runs.

The writer's ring (shared memory) and Micro-Manager's circular buffer are
gigabytes that the kernel hands out lazily: the first write to each 4 KB page
stops the writing thread while the kernel finds, zeroes and maps a page. At the
dataset's size that is ~110,000 faults a second through the first few volumes,
taken by the camera and the image lane while they must keep up with 428 MB/s;
a real-time system touches (or locks) its memory before it starts. Touching
one byte a page at arm time costs about a second for a few GB and nothing later.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

__all__ = ["prefault", "prefault_sequence_buffer"]

_PAGE = mmap.PAGESIZE


def prefault(a: np.ndarray, write: bool = True) -> None:
    """Touch every page of ``a`` once, keeping its contents (``a`` must be contiguous).

    ``write=False`` only reads: enough to map pages another process already
    allocated (a shared-memory ring attached by name).
    """
    if a.size == 0:
        return
    if not a.flags.c_contiguous:
        raise ValueError("prefault needs a contiguous array (a copy would be touched instead)")
    pages = a.reshape(-1).view(np.uint8)[::_PAGE]
    if write:
        np.add(pages, 0, out=pages)
    else:
        pages.max()


def prefault_sequence_buffer(core: Any, nbytes: int) -> None:
    """Touch the first ``nbytes`` of ``UniMMCore``'s circular buffer.

    pymmcore-plus's ``UniMMCore`` keeps its sequence buffer in one lazily allocated
    numpy array (``SequenceBuffer._pool``, made anew by
    ``setCircularBufferMemoryFootprint``) and fills it from the start, wrapping at
    the end: a run of ``nbytes`` of frames uses that much of it. The C++ MMCore
    allocates its own buffer; for it (and anything else without that pool) this
    touches nothing.
    """
    pool = getattr(getattr(core, "_seq_buffer", None), "_pool", None)
    if isinstance(pool, np.ndarray) and pool.ndim == 1 and pool.flags.c_contiguous:
        prefault(pool.view(np.uint8)[: max(0, nbytes)])
