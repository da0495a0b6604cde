"""The simulated DAQ: the virtual fish's tail, the camera-trigger read-back, paced by a clock.

With ``daq.photodiode_channel`` set, the photodiode column is what the simulated
projector's sync patch gives (acquisition/daq/_sim_projector.py).

It stands in for the NI board sample for sample: the tail channels come from
the virtual fish, the read-back channel is what the rig's wiring gives: the
camera-trigger and volume-marker lines diode-ORed into one analog input (a slight
droop over each pulse plus input noise), and
``read`` returns when the chunk "exists" on the clock (now, in virtual time).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from acquisition.daq._base import Daq
from acquisition.daq._noise import NormalStream
from acquisition.daq._sim_projector import SimProjector
from acquisition.daq._ttl import pulse_width_samples, ttl_readback
from acquisition.fish import VirtualFish
from rig.core.clock import Clock
from rig.core.config import DaqConfig
from rig.core.errors import DeviceError
from rig.core.timeline import Timeline

__all__ = ["SimDaq"]

_READBACK_NOISE_V = 0.002


class SimDaq(Daq):
    def __init__(
        self,
        cfg: DaqConfig,
        clock: Clock,
        fish: VirtualFish,
        rng: np.random.Generator,
        overflow_at_s: float | None = None,
        projector: SimProjector | None = None,
    ) -> None:
        self.cfg = cfg
        self.sample_rate_hz = cfg.sample_rate_hz
        self.chunk_samples = cfg.chunk_samples
        self.clock = clock
        self.fish = fish
        self.rng = rng
        # read-back and unconnected-input noise, drawn in blocks (the same values, fewer calls)
        self._noise = NormalStream(rng, _READBACK_NOISE_V)
        self._n_inputs = 3 + len(cfg.analog_input_names)
        #: What the photodiode looks at (None: the rig has no photodiode).
        self.projector = projector
        self._timeline: Timeline | None = None
        self._pulse_width = 1
        self._pulse_starts: list[int] = []
        self._next = 0
        self._open = False
        #: read() returns the tail only; complete() fills in the rest (defer_inputs)
        self._deferred = False
        #: the timeline the read-back is made from (kept after stop(): chunks read before
        #: it may still be completed while the session closes)
        self._filled_timeline: Timeline | None = None
        self._overflow_at = (
            None if overflow_at_s is None else round(overflow_at_s * cfg.sample_rate_hz)
        )

    @property
    def n_inputs(self) -> int:
        return self._n_inputs

    @property
    def samples_read(self) -> int:
        return self._next

    def open(self) -> None:
        self._open = True

    def start(self, timeline: Timeline) -> None:
        if not self._open:
            raise DeviceError("simulated DAQ: start() before open()")
        self._timeline = self._filled_timeline = timeline
        self._next = 0
        self._pulse_width = pulse_width_samples(self.cfg)
        self._pulse_starts = sorted(
            timeline.all_plane_samples.tolist() + timeline.marker_samples.tolist()
        )
        self.clock.start()

    def read(self) -> np.ndarray:
        if self._timeline is None:
            raise DeviceError("simulated DAQ: read() before start()")
        s0, n = self._next, self.chunk_samples
        self.clock.wait_until(s0 + n)
        if self._overflow_at is not None and s0 + n > self._overflow_at:
            raise DeviceError(
                f"DAQ {self.cfg.device}: input buffer overflow at sample {s0} (simulated fault): "
                "the engine did not read fast enough"
            )
        out = np.empty((n, self._n_inputs), dtype=np.float32)
        out[:, 0:2] = self.fish.tail(s0, n)
        if not self._deferred:
            self._fill(s0, out)
        self._next = s0 + n
        return out

    def defer_inputs(self) -> bool:
        self._deferred = True
        return True

    def complete(self, chunks: Sequence[tuple[int, np.ndarray]]) -> None:
        """The read-back, photodiode and unconnected inputs of ``chunks`` (read while
        deferred): each column made for the whole batch at once. Every value is the one a
        chunk-by-chunk read gives: the noise streams hand out the same values however they
        are cut, pulses and the projector's response are computed sample by sample, and
        the projector's light for a chunk depends only on frames flipped after it ended
        (a flip's light starts ``onset_delay`` later), all shown to it by now."""
        if not chunks:
            return
        tl = self._filled_timeline
        if tl is None:
            raise DeviceError("simulated DAQ: complete() before start()")
        s0 = chunks[0][0]
        n = sum(len(c) for _, c in chunks)
        if self._n_inputs > 3 + bool(self.cfg.photodiode_channel):
            # unconnected inputs draw from the read-back's stream after it, chunk by chunk
            for c0, c in chunks:
                self._fill(c0, c)
            return
        noise = self._noise.take(n)
        if self._pulse_in(s0, n):
            readback = ttl_readback(tl, self.cfg, s0, n, droop=0.05) + noise
        else:
            readback = noise
        light = self._projector_read(s0, n) if self.cfg.photodiode_channel else None
        at = s0
        for c0, c in chunks:
            if c0 != at:
                raise DeviceError(f"simulated DAQ: complete() got sample {c0}, expected {at}")
            i, k = c0 - s0, len(c)
            c[:, 2] = readback[i : i + k]
            if light is not None:
                c[:, 3] = light[i : i + k]
            at += k

    def _pulse_in(self, s0: int, n: int) -> bool:
        """Whether a trigger or marker pulse reaches into samples [s0, s0 + n)."""
        k = bisect.bisect_left(self._pulse_starts, s0 - self._pulse_width + 1)
        return k < len(self._pulse_starts) and self._pulse_starts[k] < s0 + n

    def _projector_read(self, s0: int, n: int) -> np.ndarray:
        if self.projector is None:
            raise DeviceError(
                "simulated DAQ: daq.photodiode_channel is set but no simulated projector "
                "was given (rig/devices.py builds one)"
            )
        return self.projector.read(s0, n)

    def _fill(self, s0: int, out: np.ndarray) -> None:
        """Columns 2 on of one chunk: the read-back, the photodiode, unconnected inputs."""
        tl = self._filled_timeline
        assert tl is not None
        n, n_inputs = out.shape
        noise = self._noise.take(n)
        # most chunks hold no pulse (a plane every 13-114 ms, a chunk is 10 ms): then the
        # read-back is its noise alone, without building two empty waveforms
        if self._pulse_in(s0, n):
            out[:, 2] = ttl_readback(tl, self.cfg, s0, n, droop=0.05) + noise
        else:
            out[:, 2] = noise
        col = 3
        if self.cfg.photodiode_channel:
            out[:, col] = self._projector_read(s0, n)
            col += 1
        # other extra inputs are left unconnected: input noise around 0 V (after the
        # read-back's, from the same stream, as one draw per chunk made them)
        if n_inputs > col:
            out[:, col:] = self._noise.take(n * (n_inputs - col)).reshape(n, n_inputs - col)

    def stop(self) -> None:
        self._timeline = None

    def close(self) -> None:
        self.stop()
        self._open = False
