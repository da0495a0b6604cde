"""Live data from the engine process to the app through shared memory, never through a lock.

The engine process writes; the app only reads. Neither side ever waits for the
other: the engine's listeners copy a chunk into the next slot of a ring and
bump a counter (a few microseconds, on the lane that calls them), and the app
copies whatever slots are newer than the last one it took. A reader that falls
more than the ring's length behind loses the oldest chunks and counts them;
the engine never notices.

Torn reads are caught without locks. The ring's counter is written after its
slot (x86 keeps stores in order), and a slot copied while the writer may have
lapped it is thrown away. The volume slot is a sequence lock: the sequence is
odd while the engine writes, and a copy is kept only if the sequence was even
and unchanged across it. The engine process also writes the volume's max
projection and its display levels there, so the app copies two small images
(the projection and the plane shown), never a whole volume.

Nothing here imports Qt: the engine process imports this module too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from stimuli.state import FRAME_DTYPE

__all__ = [
    "ChunkRing",
    "LiveShape",
    "VolumePreview",
    "VolumeSlot",
    "projection_levels",
    "slot_dtype",
]

#: Displayed frames kept per chunk (60 Hz display, 100 chunks/s: 0 or 1; a late batch a few).
MAX_FRAMES = 16


@dataclass(frozen=True, slots=True)
class LiveShape:
    """Sizes both processes agree on (picklable; the app sends it to the engine process)."""

    chunk_samples: int
    capacity: int  # chunks in the ring (512: ~5 s at 100 chunks/s)
    volume_zyx: tuple[int, int, int]  # the largest preview volume (subsampled)
    volume_stride: int  # spatial subsampling of the preview


def slot_dtype(chunk_samples: int) -> np.dtype:
    """One chunk's record: what :class:`rig.engine.LiveChunk` carries, at fixed size."""
    n = int(chunk_samples)
    return np.dtype(
        [
            ("s0", "i8"),
            ("n_tail", "i4"),
            ("n_power", "i4"),
            ("n_frames", "i4"),
            ("condition", "i4"),
            ("swimming", "i4"),
            ("velocity", "f8"),
            ("gain", "f8"),
            ("threshold", "f8", (2,)),
            ("tail", "f4", (n, 2)),
            ("power", "f4", (n, 2)),
            ("power_samples", "i8", (n,)),
            ("frames", FRAME_DTYPE, (MAX_FRAMES,)),
        ],
        align=True,
    )


class _Shared:
    """A named shared-memory block: created by the app, attached by the engine process."""

    def __init__(self, size: int, name: str | None) -> None:
        if name is None:
            self.shm = shared_memory.SharedMemory(create=True, size=max(1, size))
        else:
            self.shm = shared_memory.SharedMemory(name=name)
        self.owner = name is None

    @property
    def name(self) -> str:
        return self.shm.name

    def close(self) -> None:
        """Detach; the app (the creator) also removes the name. Safe to call twice."""
        shm, self.shm = self.shm, None  # type: ignore[assignment]
        if shm is None:
            return
        shm.close()
        if self.owner:
            # already removed when the resource tracker cleaned up after a crash
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()


class ChunkRing(_Shared):
    """The newest ``capacity`` live chunks. One writer (the engine's listener), one reader."""

    def __init__(self, shape: LiveShape, name: str | None = None) -> None:
        self.dtype = slot_dtype(shape.chunk_samples)
        self.capacity = shape.capacity
        super().__init__(64 + self.capacity * self.dtype.itemsize, name)
        buf = self.shm.buf
        assert buf is not None
        self._count = np.ndarray((1,), np.int64, buffer=buf, offset=0)
        self._slots = np.ndarray((self.capacity,), self.dtype, buffer=buf, offset=64)
        self.taken = 0
        self.lost = 0

    # -- engine process -------------------------------------------------------------------
    def put(
        self,
        s0: int,
        tail: np.ndarray,
        power: np.ndarray,
        power_samples: np.ndarray,
        threshold: np.ndarray,
        velocity: float,
        gain: float,
        condition: int,
        swimming: bool,
        frames: np.ndarray,
    ) -> None:
        w = int(self._count[0])
        slot = self._slots[w % self.capacity]
        n, e, f = len(tail), len(power), min(len(frames), MAX_FRAMES)
        slot["s0"] = s0
        slot["n_tail"], slot["n_power"], slot["n_frames"] = n, e, f
        slot["condition"], slot["swimming"] = condition, int(swimming)
        slot["velocity"], slot["gain"] = velocity, gain
        slot["threshold"] = threshold
        slot["tail"][:n] = tail
        slot["power"][:e] = power
        slot["power_samples"][:e] = power_samples
        if f:
            slot["frames"][:f] = frames[-f:]
        self._count[0] = w + 1  # after the slot: a reader never sees the count before the data

    # -- app ------------------------------------------------------------------------------
    @property
    def written(self) -> int:
        return int(self._count[0])

    def take(self) -> np.ndarray:
        """Copies of the slots written since the last call, oldest first (their own arrays)."""
        w = int(self._count[0])
        first = max(self.taken, w - self.capacity + 1)
        if first >= w:
            return np.zeros(0, self.dtype)
        idx = np.arange(first, w) % self.capacity
        out = self._slots[idx]  # fancy indexing copies
        # slots the writer may have reached while we copied are not trusted
        w2 = int(self._count[0])
        safe = max(first, w2 - self.capacity + 1)
        self.lost += safe - self.taken
        self.taken = w
        return out[safe - first :]


def projection_levels(mip: np.ndarray) -> tuple[float, float]:
    """Display levels of a preview: the 1st and 99.7th percentiles of its max projection."""
    if not mip.size:
        return 0.0, 1.0
    lo, hi = np.percentile(mip, (1.0, 99.7))
    return float(lo), float(max(hi, lo + 1))


@dataclass(frozen=True, slots=True)
class VolumePreview:
    """What the live views draw of a volume: its max projection, levels, and one plane.

    Made where the volume is (the engine process, or the app for a file's volume), so
    the window never copies or reduces a whole volume. ``read_plane(z)`` gives another
    plane of the same volume, or None once that volume is gone (a newer one replaced it).
    """

    t: int
    n_planes: int
    mip: np.ndarray  # (y, x) uint16
    levels: tuple[float, float]  # the mip's 1st and 99.7th percentiles
    z: int  # the plane in ``plane``
    plane: np.ndarray  # (y, x)
    read_plane: Callable[[int], np.ndarray | None]

    @classmethod
    def of(cls, t: int, volume: np.ndarray, z: int) -> VolumePreview:
        """From a whole (z, y, x) volume held here (a file's volume)."""
        vol = np.asarray(volume)
        mip = vol.max(axis=0)
        z = min(max(0, z), vol.shape[0] - 1)

        def read_plane(k: int) -> np.ndarray | None:
            return vol[min(max(0, k), vol.shape[0] - 1)]

        return cls(t, vol.shape[0], mip, projection_levels(mip), z, vol[z], read_plane)


class VolumeSlot(_Shared):
    """The newest preview volume (uint16, subsampled) and its max projection, behind a
    sequence lock. The engine process writes both; the app copies the projection and one
    plane (never the whole volume)."""

    HEADER = 8  # int64s: sequence, t, z, y, x, levels lo, levels hi (x 1000)

    def __init__(self, shape: LiveShape, name: str | None = None) -> None:
        z, y, x = shape.volume_zyx
        self.max_voxels = z * y * x
        self.max_pixels = y * x
        super().__init__(self.HEADER * 8 + 2 * (self.max_voxels + self.max_pixels), name)
        buf = self.shm.buf
        assert buf is not None
        self._head = np.ndarray((self.HEADER,), np.int64, buffer=buf, offset=0)
        off = self.HEADER * 8
        self._mip = np.ndarray((self.max_pixels,), np.uint16, buffer=buf, offset=off)
        off += 2 * self.max_pixels
        self._data = np.ndarray((self.max_voxels,), np.uint16, buffer=buf, offset=off)
        self._seen = 0

    def put(self, t: int, volume: np.ndarray) -> None:
        """Write a (z, y, x) preview and its max projection (engine process); a volume larger
        than the slot is skipped."""
        z, y, x = volume.shape
        if z * y * x > self.max_voxels:
            return  # the app sized the slot from the rig; a mismatch is not worth a crash
        h = self._head
        h[0] += 1  # odd: being written
        h[1:5] = (t, z, y, x)
        vol = self._data[: z * y * x].reshape(z, y, x)
        vol[...] = volume
        mip = self._mip[: y * x].reshape(y, x)
        np.max(vol, axis=0, out=mip)
        lo, hi = projection_levels(mip)
        h[5:7] = (round(lo * 1000), round(hi * 1000))
        h[0] += 1  # even: whole

    def take(self, z: int) -> VolumePreview | None:
        """The newest volume's preview with plane ``z``, if a new, whole one is there (app)."""
        h = self._head
        seq = int(h[0])
        if seq == self._seen or seq % 2:
            return None
        t, nz, y, x, lo, hi = (int(v) for v in h[1:7])
        z = min(max(0, z), nz - 1)
        mip = self._mip[: y * x].reshape(y, x).copy()
        plane = self._data[z * y * x : (z + 1) * y * x].reshape(y, x).copy()
        if int(h[0]) != seq:
            return None  # overwritten while copying: the next tick gets the newer one
        self._seen = seq

        def read_plane(k: int) -> np.ndarray | None:
            return self._plane(seq, k)

        return VolumePreview(t, nz, mip, (lo / 1000, hi / 1000), z, plane, read_plane)

    def _plane(self, seq: int, z: int) -> np.ndarray | None:
        """Plane ``z`` of the volume written as sequence ``seq``, if it is still there."""
        if self.shm is None:
            return None
        h = self._head
        if int(h[0]) != seq:
            return None
        nz, y, x = (int(v) for v in h[2:5])
        z = min(max(0, z), nz - 1)
        plane = self._data[z * y * x : (z + 1) * y * x].reshape(y, x).copy()
        return plane if int(h[0]) == seq else None
