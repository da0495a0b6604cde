"""A ring of volume buffers in shared memory, lent by the writer to the camera backend.

Lock-free by ownership: each slot's state byte goes FREE -> FILLING -> QUEUED on
the engine side and QUEUED -> FREE on the writer side, so neither process ever
waits for the other. When no slot is free the volume is dropped (and counted)
rather than stalling the closed loop.

Each slot also has a generation number, raised whenever the engine takes the slot
for a new volume. A reader that does not own slots (the readout process) notes it
before reading and checks it after: a changed number means the slot was reused
while it read, and what it read is thrown away. Readers never hold a slot.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing import shared_memory

import numpy as np

from acquisition._memory import prefault
from rig.core.errors import ConfigError

__all__ = ["FILLING", "FREE", "QUEUED", "VolumeRing", "ring_too_big", "shared_memory_free"]

FREE, FILLING, QUEUED = 0, 1, 2


#: Where POSIX shared memory lives on Linux (a tmpfs with a size limit of its own).
SHM_DIR = "/dev/shm"


def shared_memory_free(shm_dir: str = SHM_DIR) -> int | None:
    """Bytes free for shared memory (None where it cannot be read: not Linux)."""
    try:
        st = os.statvfs(shm_dir)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def ring_too_big(slot_bytes: int, n_slots: int, shm_dir: str = SHM_DIR) -> str | None:
    """Why a ring of ``n_slots`` volumes does not fit in shared memory, with the fix; or None.

    The ring is touched page by page as soon as it is made (acquisition/_memory.py);
    a tmpfs that runs out of room answers a touch with SIGBUS, which would kill the
    engine with no message. So the room is checked first (where it can be read).
    """
    free = shared_memory_free(shm_dir)
    need = slot_bytes * n_slots
    if free is None or need <= free:
        return None
    fit = free // slot_bytes
    fewer = (
        f"Set writer.volume_slots to {fit} or fewer in the rig config, or give"
        if fit >= 2  # the config's minimum: one slot filling while the writer saves another
        else "Give"
    )
    return (
        f"writer.volume_slots = {n_slots}: the writer's ring needs {need / 1e9:.2f} GB of "
        f"shared memory ({n_slots} volumes of {slot_bytes / 1e6:.0f} MB) but {shm_dir} has "
        f"{free / 1e9:.2f} GB free. {fewer} {shm_dir} more room "
        f"(mount -o remount,size=<N>G {shm_dir})"
    )


class VolumeRing:
    def __init__(
        self,
        shape_zyx: tuple[int, int, int],
        n_slots: int,
        name: str | None = None,
        states: ctypes.Array[ctypes.c_byte] | None = None,
        generations: ctypes.Array[ctypes.c_longlong] | None = None,
    ) -> None:
        self.shape = tuple(shape_zyx)
        self.n_slots = n_slots
        self.slot_bytes = int(np.prod(self.shape)) * 2
        if name is None:
            problem = ring_too_big(self.slot_bytes, n_slots)
            if problem:
                raise ConfigError(problem)
            self.shm = shared_memory.SharedMemory(create=True, size=self.slot_bytes * n_slots)
            self.owner = True
        else:
            self.shm = shared_memory.SharedMemory(name=name)
            self.owner = False
        self.states = (
            states if states is not None else mp.get_context("spawn").RawArray("b", n_slots)
        )
        self.generations = (
            generations
            if generations is not None
            else mp.get_context("spawn").RawArray("q", n_slots)
        )
        self._next = 0
        self._arr = np.ndarray((n_slots, *self.shape), dtype=np.uint16, buffer=self.shm.buf)
        # allocate (or map) every page now, not in the image lane's first volumes
        prefault(self._arr, write=self.owner)

    def spec(self) -> dict[str, object]:
        """What the writer process needs to attach."""
        return {"shape": self.shape, "n_slots": self.n_slots, "name": self.shm.name}

    def slot(self, i: int) -> np.ndarray:
        result: np.ndarray = self._arr[i]
        return result

    def take_free(self, ready: Callable[[int], bool] | None = None) -> int | None:
        """A free slot, now FILLING; ``ready(i)`` may refuse slot ``i`` (a reader still on it).

        Round robin from the slot after the last one taken: a slot is refilled as late as
        possible, which gives a reader that does not hold slots (the readout) about
        ``n_slots`` volume periods, not one, before its volume is overwritten.
        """
        for k in range(self.n_slots):
            i = (self._next + k) % self.n_slots
            if self.states[i] == FREE and (ready is None or ready(i)):
                self._next = (i + 1) % self.n_slots
                self.generations[i] += 1  # before any byte of the new volume lands
                self.states[i] = FILLING
                return i
        return None

    def in_use(self) -> int:
        return sum(1 for i in range(self.n_slots) if self.states[i] != FREE)

    def close(self) -> None:
        del self._arr
        self.shm.close()
        if self.owner:
            self.shm.unlink()
