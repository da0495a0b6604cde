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

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing import shared_memory
from multiprocessing.sharedctypes import SynchronizedArray

import numpy as np

from acquisition._memory import prefault

__all__ = ["FILLING", "FREE", "QUEUED", "VolumeRing"]

FREE, FILLING, QUEUED = 0, 1, 2


class VolumeRing:
    def __init__(
        self,
        shape_zyx: tuple[int, int, int],
        n_slots: int,
        name: str | None = None,
        states: SynchronizedArray | None = None,
        generations: SynchronizedArray | None = None,
    ) -> None:
        self.shape = tuple(shape_zyx)
        self.n_slots = n_slots
        self.slot_bytes = int(np.prod(self.shape)) * 2
        if name is None:
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
        return self._arr[i]

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
