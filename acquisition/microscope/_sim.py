"""The simulated microscope: renders the virtual fish's brain when the DAQ triggers its planes.

A volume is exposed plane by plane as triggers arrive; when its last plane has
been triggered the brain is rendered into the writer's buffer and committed.
Fault injection: stop delivering frames, or drop one frame, at a set time.
"""

from __future__ import annotations

import numpy as np

from acquisition.fish import VirtualFish
from acquisition.microscope._base import Microscope, MicroscopeEvent, VolumeSink
from rig.config import MicroscopeConfig
from rig.timeline import Timeline

__all__ = ["SimMicroscope"]


class SimMicroscope(Microscope):
    def __init__(
        self,
        cfg: MicroscopeConfig,
        fish: VirtualFish,
        sample_rate_hz: float,
        stops_at_s: float | None = None,
        drops_frame_at_s: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.fish = fish
        self.fs = sample_rate_hz
        self._timeline: Timeline | None = None
        self._sink: VolumeSink | None = None
        self._done = 0
        self._events: list[MicroscopeEvent] = []
        self._stop_at = None if stops_at_s is None else round(stops_at_s * sample_rate_hz)
        self._drop_at = (
            None if drops_frame_at_s is None else round(drops_frame_at_s * sample_rate_hz)
        )
        self._missing: dict[int, list[int]] = {}
        self._last_frame_sample = 0
        self._stalled_reported = False

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.cfg.shape_zyx

    @property
    def volumes_done(self) -> int:
        return self._done

    def open(self) -> None:
        return None

    def start(self, timeline: Timeline, sink: VolumeSink) -> None:
        self._timeline = timeline
        self._sink = sink
        self._done = 0
        self._last_frame_sample = 0

    def on_triggers(self, plane_index: np.ndarray, samples: np.ndarray) -> None:
        if self._timeline is None or self._sink is None:
            return
        z = self._timeline.planes_per_volume
        for k, s in zip(plane_index.tolist(), samples.tolist(), strict=True):
            t, p = divmod(k, z)
            if self._stop_at is not None and s >= self._stop_at:
                self._check_stall(s)
                continue
            if self._drop_at is not None and s >= self._drop_at:
                self._missing.setdefault(t, []).append(p)
                self._drop_at = None
                self._events.append(
                    MicroscopeEvent("warning", f"camera frame missing: volume {t}, plane {p}", t)
                )
            else:
                self._last_frame_sample = s
            if p == z - 1:
                self._finish(t)

    def _check_stall(self, s: int) -> None:
        # 0.5 s without a frame while triggered: many plane intervals, and inside the 1 s target
        if not self._stalled_reported and s - self._last_frame_sample > 0.5 * self.fs:
            self._stalled_reported = True
            self._events.append(
                MicroscopeEvent(
                    "fault",
                    f"camera stopped delivering frames (none for "
                    f"{(s - self._last_frame_sample) / self.fs:.1f} s while triggered)",
                    self._done,
                )
            )

    def _finish(self, t: int) -> None:
        assert self._timeline is not None and self._sink is not None
        buf = self._sink.acquire(t)
        dt = self._timeline.volume_period_s
        if buf is None:
            # the writer is full: the brain still evolves, the volume is lost (and counted)
            scratch = np.empty(self.shape_zyx, dtype=np.uint16)
            self.fish.image_volume(dt, scratch)
            self._events.append(
                MicroscopeEvent("warning", f"volume {t} dropped: writer buffer full", t)
            )
            self._done += 1
            return
        self.fish.image_volume(dt, buf)
        missing = tuple(self._missing.pop(t, ()))
        for p in missing:
            buf[p] = 0
        self._sink.commit(t, missing)
        self._done += 1

    def poll(self) -> list[MicroscopeEvent]:
        ev, self._events = self._events, []
        return ev

    def stop(self) -> None:
        self._timeline = None

    def close(self) -> None:
        self.stop()
