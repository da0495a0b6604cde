"""One frame -> volume assembler for every camera: simulated, replayed and Micro-Manager.

Frames are numbered in trigger order from 0 (frame ``i`` is plane ``i % z`` of
volume ``i // z``). The assembler lends the place where a frame goes (a plane of
the volume buffer the writer lends, so a frame is copied once, or rendered in
place), and commits a volume when all its planes are in, or when a frame of a
later volume shows it will get no more. It decides, for every camera alike:

* **missing** frames: planes never filled when their volume is committed are left
  black (zeroed: a lent buffer holds an older volume) and named in the commit;
* **out of order** frames within a volume: placed where they belong;
* **late** frames: a frame of a volume already committed is discarded and reported
  (its plane stays black; the volume is not rewritten);
* **duplicate** frames (a plane filled twice) and **extra** frames (numbered past
  the armed sequence) are discarded and reported;
* a **full writer**: the volume is dropped and counted, never waited for;
* at **stop**: volumes whose triggers were all sent are committed, with their missing
  planes named; a volume cut short is discarded; triggered volumes of which no frame
  came still take their place (all black), so volume ``t`` stays volume ``t``.

It runs on the image lane (rig/lanes), never on the closed loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from acquisition.microscope._base import MicroscopeEvent, VolumeSink

__all__ = ["VolumeAssembler", "describe_frames"]


def describe_frames(indices: Sequence[int], z: int, limit: int = 6) -> str:
    """Frame indices as 'volume 3 plane 5, volume 4 planes 0-2' (grouped, truncated)."""
    groups: list[tuple[int, int, int]] = []  # (volume, first plane, last plane)
    for i in indices:
        t, p = divmod(int(i), z)
        if groups and groups[-1][0] == t and groups[-1][2] == p - 1:
            groups[-1] = (t, groups[-1][1], p)
        else:
            groups.append((t, p, p))
    parts = [
        f"volume {t} plane {a}" if a == b else f"volume {t} planes {a}-{b}"
        for t, a, b in groups[:limit]
    ]
    if len(groups) > limit:
        parts.append(f"... ({len(indices)} frames in all)")
    return ", ".join(parts)


@dataclass
class _Volume:
    t: int
    buffer: np.ndarray | None  # None: the writer was full, the volume is dropped
    filled: np.ndarray  # (z,) bool


class VolumeAssembler:
    """Places numbered frames into volumes and commits them to a :class:`VolumeSink`."""

    def __init__(
        self,
        shape_zyx: tuple[int, int, int],
        n_volumes: int,
        sink: VolumeSink,
        report: Callable[[MicroscopeEvent], None],
    ) -> None:
        self.shape_zyx = shape_zyx
        self.z = shape_zyx[0]
        self.n_frames = n_volumes * self.z
        self._sink = sink
        self._report = report
        self._open: dict[int, _Volume] = {}
        self._scratch = np.empty(shape_zyx[1:], dtype=np.uint16)
        self._next_volume = 0  # every volume below this has been begun
        self.committed = 0
        self.dropped = 0
        self.missing = 0
        self.late = 0
        self.duplicates = 0
        self.extra = 0

    # -- frames ------------------------------------------------------------------------------
    def plane(self, i: int) -> np.ndarray | None:
        """The (y, x) buffer frame ``i`` goes into, or None when the frame is to be discarded.

        Call :meth:`filled` once the frame is in (or use :meth:`put`). A frame of a
        dropped volume gets a scratch plane: it is accounted for, and lost.
        """
        z = self.z
        if i >= self.n_frames or i < 0:
            self.extra += 1
            self._report(
                MicroscopeEvent(
                    "warning",
                    f"extra frame: frame {i} is past the {self.n_frames} armed frames "
                    f"({self.n_frames // z} volumes); discarded",
                )
            )
            return None
        t, p = divmod(i, z)
        vol = self._open.get(t)
        if vol is None:
            if t < self._next_volume:
                self.late += 1
                self._report(
                    MicroscopeEvent(
                        "warning",
                        f"late frame: {describe_frames([i], z)} arrived after its volume was "
                        "saved; discarded (the plane stays black)",
                        volume=t,
                    )
                )
                return None
            # a frame of a later volume: the earlier ones will get no more frames
            for u in sorted(u for u in self._open if u < t):
                self._commit(u)
            for u in range(self._next_volume, t):
                self._begin(u)
                self._commit(u)
            vol = self._begin(t)
        if vol.filled[p]:
            self.duplicates += 1
            self._report(
                MicroscopeEvent(
                    "warning",
                    f"duplicate frame: {describe_frames([i], z)} arrived twice; the second "
                    "was discarded",
                    volume=t,
                )
            )
            return None
        return self._scratch if vol.buffer is None else vol.buffer[p]

    def filled(self, i: int) -> None:
        """Frame ``i`` is in its plane (also for a dropped volume: it was accounted for)."""
        t, p = divmod(i, self.z)
        vol = self._open.get(t)
        if vol is None:
            return
        vol.filled[p] = True
        if vol.filled.all():
            self._commit(t)

    def put(self, i: int, image: np.ndarray) -> bool:
        """Copy frame ``i`` into its plane; False if it was discarded."""
        dest = self.plane(i)
        if dest is None:
            return False
        if image.shape != dest.shape:
            raise ValueError(f"frame {i} is {image.shape}, the volume's planes are {dest.shape}")
        np.copyto(dest, image)
        self.filled(i)
        return True

    # -- stop --------------------------------------------------------------------------------
    def close(self, triggered_frames: int, name_lost: bool = True) -> None:
        """The sequence stopped after ``triggered_frames`` triggers: settle every volume.

        ``name_lost=False``: the camera's frame numbers cannot locate a loss (no
        hardware counter), so the caller says what was lost instead.
        """
        complete = min(triggered_frames, self.n_frames) // self.z
        lost: list[int] = []  # named once, not volume by volume: a stalled camera loses many
        for t in sorted(self._open):
            if t < complete:
                lost += self._commit(t, quiet=True)
            else:
                vol = self._open.pop(t)
                if vol.buffer is not None:
                    self._sink.discard(t)
                self._report(
                    MicroscopeEvent(
                        "info", f"volume {t} was cut short by the stop: not saved", volume=t
                    )
                )
        for u in range(self._next_volume, complete):
            self._begin(u)
            lost += self._commit(u, quiet=True)
        if lost and name_lost:
            self._report(
                MicroscopeEvent(
                    "warning",
                    f"missing frames at stop: {describe_frames(lost, self.z)} were triggered "
                    "but never arrived; left black in the file",
                    volume=lost[0] // self.z,
                )
            )

    def close_volume(self, t: int) -> None:
        """The camera says volume ``t`` gets no more frames: save it now, missing planes black."""
        if t in self._open:
            self._commit(t)

    @property
    def open_volumes(self) -> list[int]:
        return sorted(self._open)

    # -- internals ---------------------------------------------------------------------------
    def _begin(self, t: int) -> _Volume:
        buffer = self._sink.acquire(t)
        if buffer is None:
            self.dropped += 1
            self._report(
                MicroscopeEvent(
                    "warning",
                    f"the writer is full: volume {t} dropped ({self.dropped} dropped so far); "
                    "the disk is not keeping up",
                    volume=t,
                )
            )
        elif buffer.shape != self.shape_zyx or buffer.dtype != np.uint16:
            raise ValueError(
                f"the sink lent a {buffer.dtype}{buffer.shape} buffer for a uint16"
                f"{self.shape_zyx} volume"
            )
        vol = _Volume(t, buffer, np.zeros(self.z, dtype=bool))
        self._open[t] = vol
        self._next_volume = max(self._next_volume, t + 1)
        return vol

    def _commit(self, t: int, quiet: bool = False) -> list[int]:
        """Hand volume ``t`` to the sink; returns its missing frames' numbers."""
        vol = self._open.pop(t)
        missing = tuple(int(p) for p in np.flatnonzero(~vol.filled))
        self.missing += len(missing)
        if missing and not quiet:
            self._report(
                MicroscopeEvent(
                    "warning",
                    f"missing frame{'s' if len(missing) > 1 else ''}: "
                    f"{describe_frames([t * self.z + p for p in missing], self.z)} never "
                    "arrived; left black in the file",
                    volume=t,
                )
            )
        if vol.buffer is not None:
            if missing:
                vol.buffer[list(missing)] = 0  # a lent buffer holds what an older volume left
            self._sink.commit(t, missing)
            self.committed += 1
        return [t * self.z + p for p in missing]
