"""The simulated fish as an analysis sees it: planes sampled at their own time, indicator kinetics,
optokinetic turning, and the tail's artefacts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from acquisition.fish._behaviour import Behaviour
from acquisition.fish._indicator import INDICATORS, PUBLISHED_MS
from acquisition.fish._tail import TailBackground
from acquisition.fish._vision import Seen
from rig.core.config import load_config
from rig.core.errors import ConfigError
from rig.engine import Engine, RunState
from rig.session import read_table
from stimuli.library import Flash
from stimuli.protocol import Protocol, condition, step


def test_a_flash_onset_appears_plane_by_plane(tmp_path: Path) -> None:
    """Light-on cells in planes acquired after the fish saw the light brighten in that volume;
    those in planes acquired before it do not (every plane is the brain at its own trigger)."""
    base = load_config()
    rig = base.with_simulation(fish=base.sim.fish.model_copy(update={"n_neurons": 1500}))
    proto = Protocol(
        name="flashes",
        conditions=[condition("flash", step(Flash(period_s=6.1, on_s=3.05), 6.1), seconds=80.0)],
    )
    engine = Engine(rig, proto, tmp_path, clock="virtual", seed=2)
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    with h5py.File(engine.path, "r") as f:
        traces = f["ground_truth/traces"][...]
        tuning = f["ground_truth/tuning"][...]
        names = [str(x) for x in f["ground_truth/tuning"].attrs["names"]]
        pos = f["ground_truth/positions_zyx"][...]
        planes = f["volumes/plane_sample"][...]  # (t, z) trigger samples
        frames = read_table(f["stimulus/frames"])
    fs = rig.daq.sample_rate_hz
    latency = round(rig.sim.fish.visual_latency_s * fs)
    lum = frames["luminance"]
    onsets = frames["flip_sample"][1:][(lum[1:] > 0.5) & (lum[:-1] < 0.5)] + latency
    on = tuning == names.index("light_on")
    plane_of = np.clip(np.rint(pos[:, 0]).astype(int), 0, planes.shape[1] - 1)
    after_rise, before_rise = [], []
    for onset in onsets:
        t = int(np.searchsorted(planes[:, 0], onset, side="right")) - 1
        if t < 1 or t + 1 >= len(planes) or not planes[t, 0] < onset < planes[t, -1]:
            continue
        trig = planes[t, plane_of]  # each neuron's trigger in this volume
        rise = traces[t] - traces[t - 1]
        after = on & (trig > onset + 0.1 * fs)  # well after: the indicator has risen
        before = on & (trig < onset)
        if after.any() and before.any():
            after_rise.append(rise[after].mean() / traces[t - 1, after].mean())
            before_rise.append(rise[before].mean() / traces[t - 1, before].mean())
    assert len(after_rise) >= 3, "onsets inside a volume's acquisition"
    # cells acquired after the onset have brightened; those before did not (they may still
    # be fading from the last light phase: the nuclear indicator decays over ~1 s)
    after, before = float(np.mean(after_rise)), float(np.mean(before_rise))
    assert after > 0.05, (after_rise, before_rise)
    assert before < 0.02, (after_rise, before_rise)
    assert after - before > 0.08, (after_rise, before_rise)


@pytest.mark.parametrize("name", ["GCaMP6s", "GCaMP6f", "jGCaMP7f", "jGCaMP8m"])
def test_indicator_rises_fast_decays_slower_and_saturates(name: str) -> None:
    ind = INDICATORS[name]
    half_rise, peak, half_decay = ind.impulse_times()
    # a brief burst's response has the source's rise and decay figures (one 1.5 s tau
    # before: 3.3 s from 10 to 90 %)
    rise_ms, which, decay_ms = PUBLISHED_MS[name]
    rise = peak if which == "time to peak" else half_rise
    assert rise * 1000 == pytest.approx(rise_ms, rel=0.03)
    assert half_decay * 1000 == pytest.approx(decay_ms, rel=0.03)
    dff = ind.dff(np.array([0.0, 1.0, 10.0, 100.0]))
    assert dff[0] == pytest.approx(0.0)
    assert dff[1] < dff[2] < dff[3] < ind.dff_max  # saturates below F_max
    assert dff[3] - dff[2] < 0.1 * (dff[2] - dff[0])
    assert INDICATORS["H2B-" + name].impulse_times()[2] > half_decay


def test_bad_indicator_and_ranges_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rig.toml"
    bad.write_text('simulated = true\n[fish]\nindicator = "GCaMP9"\n')
    with pytest.raises(ConfigError, match="indicator"):
        load_config(bad)
    bad.write_text("simulated = true\n[fish]\nburst_hz = [50.0, 20.0]\n")
    with pytest.raises(ConfigError, match="burst_hz"):
        load_config(bad)


def test_the_tail_carries_mains_hum_heartbeat_drift_and_a_noise_level_of_its_own() -> None:
    cfg = load_config().sim.fish
    fs = 6000.0
    tail = TailBackground(cfg, fs, np.random.default_rng(1))
    x = np.concatenate([tail.take(60) for _ in range(2000)])[:, 0]  # 20 s, chunk by chunk
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freq = np.fft.rfftfreq(len(x), 1 / fs)

    def band(lo: float, hi: float) -> float:
        return float(spec[(freq >= lo) & (freq < hi)].mean())

    assert band(49.9, 50.1) > 100 * band(52.0, 60.0)  # mains hum
    assert band(0.05, 0.5) > 10 * band(200.0, 300.0)  # slow drift
    # heartbeat: the envelope of the band-passed signal repeats at the fish's heart rate
    beat = np.abs(np.fft.irfft(np.where((freq > 10) & (freq < 40), np.fft.rfft(x), 0), len(x)))
    env = np.abs(np.fft.rfft(beat - beat.mean())) ** 2
    top = freq[np.argmax(np.where((freq > 1.5) & (freq < 3.5), env, 0))]
    assert top == pytest.approx(tail.heart_hz, abs=0.1)
    others = [TailBackground(cfg, fs, np.random.default_rng(s)).noise_v for s in range(2, 8)]
    assert max(others) > 1.3 * min(others)  # the signal-to-noise ratio differs across fish


def test_rotation_drives_turning_bouts_toward_it() -> None:
    cfg = load_config().sim.fish
    still = Seen(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    ccw = replace(still, rotation_deg_s=45.0)
    counts, biases = [], []
    for seen in (still, ccw):
        b = Behaviour(cfg, 6000.0, np.random.default_rng(0))
        for k in range(12000):  # 120 s in 10 ms chunks
            b.step(k * 60, 60, seen)
        counts.append(len(b.bouts))
        biases.append(np.mean([x.bias for x in b.bouts]) if b.bouts else 0.0)
    assert counts[1] > 5 * max(counts[0], 1)
    assert biases[1] < -0.3  # counter-clockwise: turns to the left
    hz = [x.burst_hz for x in b.bouts]
    assert 20.0 <= min(hz) < max(hz) <= 40.0  # the burst frequency differs between bouts
