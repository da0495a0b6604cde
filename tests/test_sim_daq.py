"""The simulated board in virtual time: the closed loop gets the tail at once, the rest of
each chunk is made later for a batch of chunks, and the recording is the same."""

from __future__ import annotations

import numpy as np
import pytest

from rig.core.clock import VirtualClock
from rig.core.config import load_config
from rig.devices import make_devices
from stimuli.builtin import dataset_protocol
from stimuli.closed_loop import LoopState
from stimuli.schedule import Schedule


def _chunks(extra_inputs: dict[str, str], deferred: bool, n_chunks: int) -> list[np.ndarray]:
    """Chunks read the way the engine reads them: frames shown after each read, and (deferred)
    the rest of the chunks filled in 64 at a time, as the record lane does."""
    rig = load_config()
    rig = rig.model_copy(update={"daq": rig.daq.model_copy(update={"extra_inputs": extra_inputs})})
    fs = rig.daq.sample_rate_hz
    tl = Schedule.build(dataset_protocol().scaled(0.01), rig)
    dev = make_devices(rig, VirtualClock(fs), seed=3)
    assert dev.projector is not None  # the simulated rig has a photodiode over its sync patch
    dev.daq.open()
    dev.renderer.start(tl, fs)
    dev.daq.start(tl)
    if deferred:
        assert dev.daq.defer_inputs()
    out, batch = [], []
    loop = LoopState(velocity=0.0, condition=0)
    for k in range(n_chunks):
        chunk = dev.daq.read()
        s0 = k * len(chunk)
        loop.velocity = 5.0 * np.sin(k / 20)  # frames whose state changes
        dev.renderer.publish(loop, s0 + len(chunk), len(chunk))
        frames = dev.renderer.collect()
        assert dev.fish is not None
        dev.fish.show(frames)
        dev.projector.show(frames)
        out.append(chunk)
        batch.append((s0, chunk))
        if deferred and (len(batch) == 64 or k == n_chunks - 1):
            dev.daq.complete(batch)
            batch = []
    dev.daq.close()
    return out


@pytest.mark.parametrize("extra", [{}, {"thermistor": "ai5"}])
def test_chunks_completed_in_batches_equal_chunks_read_whole(extra: dict[str, str]) -> None:
    n = 1000  # 10 s: planes, volume markers and ~600 frames with their light steps
    whole = np.concatenate(_chunks(extra, deferred=False, n_chunks=n))
    batched = np.concatenate(_chunks(extra, deferred=True, n_chunks=n))
    assert whole.shape == batched.shape == (n * 60, 4 + len(extra))
    assert np.ptp(whole[:, 2]) > 1.0 and np.ptp(whole[:, 3]) > 0.5  # pulses and light steps
    assert whole.tobytes() == batched.tobytes()
