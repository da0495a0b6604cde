"""The simulated microscope: the virtual fish's brain, exposed plane by plane as the DAQ triggers.

Split across the lanes like a real camera: :meth:`SimMicroscope.on_triggers`
(loop lane) only notes which planes were exposed and, at a volume's last plane,
advances the brain one volume (per neuron, cheap), so the brain follows what the
fish saw exactly, whatever the imaging does; :meth:`SimMicroscope.poll` (image
lane) renders each exposed plane straight into the writer's buffer through the
shared :class:`~acquisition.microscope._assembler.VolumeAssembler`, as a camera
delivers frames. Fault injection: stop delivering frames, or lose one frame, at a
set time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from acquisition.fish import DARK_LEVEL, VirtualFish
from acquisition.microscope._assembler import VolumeAssembler
from acquisition.microscope._base import Microscope, MicroscopeEvent, VolumeSink
from rig.core.config import MicroscopeConfig
from rig.core.simulation import SimMicroscopeConfig
from rig.core.timeline import Timeline

__all__ = ["SimMicroscope"]


class SimMicroscope(Microscope):
    def __init__(
        self,
        cfg: MicroscopeConfig,
        fish: VirtualFish,
        sample_rate_hz: float,
        stops_at_s: float | None = None,
        drops_frame_at_s: float | None = None,
        motion: SimMicroscopeConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.motion = motion if motion is not None else SimMicroscopeConfig()
        self.fish = fish
        self.fs = sample_rate_hz
        self._timeline: Timeline | None = None
        self._assembler: VolumeAssembler | None = None
        self._events: deque[MicroscopeEvent] = deque()
        self._stop_at = None if stops_at_s is None else round(stops_at_s * sample_rate_hz)
        self._drop_at = (
            None if drops_frame_at_s is None else round(drops_frame_at_s * sample_rate_hz)
        )
        # (volume, its neurons' fluorescence, the planes the camera delivered, each plane's
        # background scale) per volume
        self._jobs: deque[tuple[int, np.ndarray, list[int], np.ndarray]] = deque()
        self._delivered: list[int] = []
        self._triggered = 0
        self._last_frame_sample = 0
        self._stalled_reported = False
        self._image_lock = threading.Lock()  # poll() and stop() may race at the end
        #: Seconds the image lane spent rendering planes (benchmarks' cost breakdown).
        self.render_seconds = 0.0
        self.clock: Callable[[], float] = time.perf_counter

    def use_cost_clock(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.cfg.shape_zyx

    @property
    def volumes_done(self) -> int:
        return self._assembler.committed if self._assembler else 0

    @property
    def backlog(self) -> int:
        return len(self._jobs)

    @property
    def frames_missing(self) -> int:
        return self._assembler.missing if self._assembler else 0

    def open(self) -> None:
        return None

    def start(self, timeline: Timeline, sink: VolumeSink) -> None:
        self._timeline = timeline
        self._assembler = VolumeAssembler(
            self.shape_zyx, timeline.n_volumes, sink, self._events.append
        )
        self._jobs.clear()
        self._delivered = []
        self._triggered = 0
        self._last_frame_sample = 0

    # -- loop lane ---------------------------------------------------------------------------
    def on_triggers(self, plane_index: np.ndarray, samples: np.ndarray) -> None:
        if self._timeline is None:
            return
        z = self._timeline.planes_per_volume
        # each plane samples the brain at its own trigger (the fish keeps the state then)
        self.fish.note_planes(plane_index, samples)
        for k, s in zip(plane_index.tolist(), samples.tolist(), strict=True):
            t, p = divmod(k, z)
            self._triggered = k + 1
            if self._stop_at is not None and s >= self._stop_at:
                self._check_stall(s)
            elif self._drop_at is not None and s >= self._drop_at:
                self._drop_at = None  # exposed, lost on the way: the assembler will name it
            else:
                self._last_frame_sample = s
                self._delivered.append(p)
            if p == z - 1:
                f = self.fish.volume_fluorescence(self._timeline.volume_period_s)
                bg = self.fish.brain.background_scale
                self._jobs.append((t, f, self._delivered, bg))
                self._delivered = []

    def _check_stall(self, s: int) -> None:
        # 0.5 s without a frame while triggered: many plane intervals, and inside the 1 s target
        if not self._stalled_reported and s - self._last_frame_sample > 0.5 * self.fs:
            self._stalled_reported = True
            self._events.append(
                MicroscopeEvent(
                    "fault",
                    f"camera stopped delivering frames (none for "
                    f"{(s - self._last_frame_sample) / self.fs:.1f} s while triggered)",
                    self.volumes_done,
                    sample=s,
                )
            )

    # -- image lane --------------------------------------------------------------------------
    def poll(self) -> list[MicroscopeEvent]:
        """Render the exposed planes into their volumes (the image lane's work)."""
        with self._image_lock:
            self._render_pending()
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def drift_voxels(self, t: int) -> tuple[int, int, int]:
        """Where volume ``t``'s sample is drawn, displaced in whole voxels (z, y, x)."""
        m = self.motion
        seconds = t * self.cfg.volume_period_s
        um = np.asarray(m.drift_um_per_min, dtype=float) * seconds / 60.0
        if m.drift_step_at_s is not None and seconds >= m.drift_step_at_s:
            um = um + np.asarray(m.drift_step_um, dtype=float)
        vox = np.rint(um / np.asarray(self.cfg.voxel_size_um, dtype=float)).astype(int)
        return (int(vox[0]), int(vox[1]), int(vox[2]))

    def bleach(self, t: int) -> float:
        """The fraction of its first brightness the sample still emits at volume ``t``."""
        minutes = t * self.cfg.volume_period_s / 60.0
        return float((1.0 - self.motion.bleaching_per_min) ** minutes)

    def _render_plane(
        self,
        f: np.ndarray,
        t: int,
        p: int,
        dest: np.ndarray,
        tmp: np.ndarray | None,
        bg: np.ndarray,
    ) -> None:
        """Plane ``p`` of volume ``t`` as the camera sees it: the sample moved and faded."""
        brain = self.fish.brain
        bleach = self.bleach(t)
        if tmp is None:
            brain.render_plane(f, p, dest, bleach, float(bg[p]))
            return
        dz, dy, dx = self.drift_voxels(t)
        src = p - dz
        z, y, x = self.shape_zyx
        if not 0 <= src < z:
            dest[...] = round(DARK_LEVEL)  # the sample moved out of this plane
            return
        brain.render_plane(f, src, tmp, bleach, float(bg[src]))
        dest[...] = round(DARK_LEVEL)
        ys, yd = (slice(0, y - dy), slice(dy, y)) if dy >= 0 else (slice(-dy, y), slice(0, y + dy))
        xs, xd = (slice(0, x - dx), slice(dx, x)) if dx >= 0 else (slice(-dx, x), slice(0, x + dx))
        dest[yd, xd] = tmp[ys, xs]

    def _render_pending(self) -> None:
        asm = self._assembler
        if asm is None:
            return
        z = self.shape_zyx[0]
        t0 = self.clock()
        tmp = np.empty(self.shape_zyx[1:], np.uint16) if self.motion.moves else None
        while self._jobs:
            t, f, planes, bg = self._jobs.popleft()
            for p in planes:
                dest = asm.plane(t * z + p)
                if dest is not None:
                    self._render_plane(f, t, p, dest, tmp, bg)
                    asm.filled(t * z + p)
            if len(planes) < z:
                asm.close_volume(t)  # the camera sends no more frames of it: save it as it is
        self.render_seconds += self.clock() - t0

    def stop(self) -> None:
        with self._image_lock:
            self._render_pending()
            if self._assembler is not None:
                self._assembler.close(self._triggered)
        self._timeline = None

    def close(self) -> None:
        self.stop()
