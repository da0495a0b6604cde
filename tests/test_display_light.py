"""The photodiode: each frame's light measured, latency reported, dropped frames found from the light.

Sessions run on the simulated rig, whose photodiode looks at the sync patch
through the simulated projector (``[sim_projector]`` in hardware_configs/simulated.toml).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from acquisition.daq._photodiode import LightDecoder
from acquisition.daq._sim_projector import SimProjector
from rig.cli import main
from rig.core.config import FaultConfig, RigConfig, load_config
from rig.engine import Engine, RunState
from rig.session import SessionReader, summarise
from rig.session.light import light_timing
from stimuli.library import Flash, Flow
from stimuli.protocol import Protocol, condition, step
from stimuli.render.sync_patch import SYNC_LEVELS, sync_level
from stimuli.state import FRAME_DTYPE

PROTO = Protocol(
    name="light drill",
    conditions=[
        condition("flow", step(Flow(gain=4.0), 6.0), seconds=6.0),
        condition("flash", step(Flash(period_s=2, on_s=1), 2.0), seconds=2.0),
    ],
)


def expected_latency_samples(rig: RigConfig) -> float:
    """Flip -> 50 % of the light step as the simulated projector is configured."""
    fs = rig.daq.sample_rate_hz
    model = SimProjector(rig.display, rig.sim.sim_projector, fs, np.random.default_rng(0))
    return model.expected_latency_samples


def run(tmp_path: Path, rig: RigConfig) -> Engine:
    engine = Engine(rig, PROTO, tmp_path, clock="virtual", seed=4)
    assert engine.run() is RunState.COMPLETE
    return engine


def test_latency_of_a_one_percent_run_is_the_configured_one(
    short_session: Path, check_session
) -> None:
    """The built-in protocol at 1 %: measured flip -> light p50 within one sample of the model."""
    rig = load_config()
    want = expected_latency_samples(rig)
    with SessionReader(short_session) as r:
        a = r.analog_inputs
        assert a is not None and a.shape == (r.n_samples, 1)
        assert list(a.attrs["channel_names"]) == ["photodiode"]
        assert list(a.attrs["physical_channels"]) == [rig.daq.photodiode_channel]
        fr = r.file["stimulus/frames"]
        light = fr["light_sample"][...]
        flip = fr["flip_sample"][...]
        t = light_timing(r.file)
    seen = light >= 0
    # all but the first frame (black, like the dark before it) and the last ones (light after the end)
    assert seen.sum() >= len(light) - 4
    assert abs(np.median(light[seen] - flip[seen]) - want) <= 1.0
    assert t.measured and len(t.dropped) == 0 and t.repeated == 0
    assert t.stats(t.onset_to_light_ms) is not None
    assert check_session(short_session).returncode == 0


def test_frames_the_projector_drops_are_found_from_the_light(tmp_path: Path, capsys) -> None:
    rig = load_config().with_simulation(faults=FaultConfig(display_drops_frames_at_s=(2.0, 4.5)))
    engine = run(tmp_path, rig)
    assert engine.devices is not None and engine.devices.projector is not None
    skipped = engine.devices.projector.skipped
    assert len(skipped) == 2
    with SessionReader(engine.path) as r:
        t = light_timing(r.file)
        # the software saw nothing wrong: every frame was flipped on time
        assert int(r.attr("frames_dropped")) == 0
    assert t.dropped is not None
    assert t.dropped.tolist() == skipped
    # the frame before each dropped one stayed up for two refreshes
    assert t.repeated == 2
    assert main(["inspect", str(engine.path)]) == 0
    out = capsys.readouterr().out
    assert f"2 dropped (never seen: {skipped[0]}, {skipped[1]})" in out
    assert "2 repeated" in out


def test_inspect_and_report_give_latency_or_not_measured(tmp_path: Path, capsys) -> None:
    with_pd = run(tmp_path / "pd", load_config())
    data = load_config().model_dump(mode="json")
    data["daq"]["photodiode_channel"] = None
    without = run(tmp_path / "none", RigConfig.model_validate(data))
    assert main(["inspect", str(with_pd.path)]) == 0
    out = capsys.readouterr().out
    assert "display latency flip -> light: p50" in out
    assert "swim onset -> light (closed loop): p50" in out
    light = summarise(with_pd.path).light
    assert light is not None
    onset = light.stats(light.onset_to_light_ms)
    assert onset is not None
    assert f"p99 {onset[1]:.1f}" in out
    assert main(["inspect", str(without.path)]) == 0
    out = capsys.readouterr().out
    assert "light     not measured (no photodiode on this rig)" in out
    with h5py.File(without.path, "r") as f:
        assert "analog_inputs" not in f
        assert (f["stimulus/frames/light_sample"][...] == -1).all()
    for eng, words in (
        (with_pd, "display latency (flip -&gt; light)</th><td>p50"),
        (without, "not measured"),
    ):
        html_dir = tmp_path / f"report_{eng.path.stem}"
        assert main(["report", str(eng.path), "--out", str(html_dir)]) == 0
        page = (html_dir / "index.html").read_text()
        assert words in page


def test_extra_inputs_are_recorded_beside_the_photodiode(tmp_path: Path) -> None:
    data = load_config().model_dump(mode="json")
    data["daq"]["extra_inputs"] = {"water_temp": "ai5"}
    engine = run(tmp_path, RigConfig.model_validate(data))
    with h5py.File(engine.path, "r") as f:
        a = f["analog_inputs"]
        assert list(a.attrs["channel_names"]) == ["photodiode", "water_temp"]
        assert list(a.attrs["physical_channels"]) == ["ai3", "ai5"]
        assert a.shape == (f["stimuli_and_ephys"].shape[0], 2)
        # an unconnected input reads noise around 0 V; the photodiode reads light
        assert abs(float(np.mean(a[:, 1]))) < 0.01
        assert float(np.max(a[:, 0])) > 1.0


def test_decoder_tells_a_skipped_frame_from_a_repeated_one() -> None:
    """Through the projector model alone: frame 10 never shown, frame 20 shown twice."""
    rig = load_config()
    fs, hz = rig.daq.sample_rate_hz, rig.display.refresh_hz
    proj = SimProjector(rig.display, rig.sim.sim_projector, fs, np.random.default_rng(0))
    dec = LightDecoder(fs, hz)
    fr = np.zeros(200, dtype=FRAME_DTYPE)
    fr["frame"] = np.arange(200)
    slots = np.arange(200) + (np.arange(200) > 20)  # frame 21 onwards one refresh late
    fr["flip_sample"] = np.floor(slots * fs / hz + 0.5).astype(np.int64)
    fr["sync_level"] = [sync_level(k) for k in range(200)]
    fr["light_sample"] = -1
    shown = fr[fr["frame"] != 10]
    out = []
    for s0 in range(0, 210 * 100, 60):
        new = shown[(shown["flip_sample"] >= s0) & (shown["flip_sample"] < s0 + 60)]
        proj.show(new)
        logged = fr[(fr["flip_sample"] >= s0) & (fr["flip_sample"] < s0 + 60)]
        out.append(dec.feed(s0, proj.read(s0, 60), logged))
    got = np.concatenate([*out, dec.flush()])
    assert got["frame"].tolist() == list(range(200))
    never = got["frame"][got["light_sample"] < 0].tolist()
    assert 10 in never and 20 not in never
    gaps = np.diff(got["light_sample"][21:199])
    assert set(np.rint(gaps / (fs / hz)).astype(int).tolist()) == {1}
    assert np.rint((got["light_sample"][21] - got["light_sample"][20]) / (fs / hz)) == 2
    assert len(SYNC_LEVELS) == 4


def test_hardware_config_in_session_carries_the_display_model(short_session: Path) -> None:
    with h5py.File(short_session, "r") as f:
        cfg = json.loads(str(f.attrs["hardware_config"]))
    assert cfg["display"]["sync_patch"]["corner"] == "bottom-left"
    assert cfg["sim_projector"]["input_lag_ms"] == pytest.approx(25.0)


def _photodiode_session(seed: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(s0, photodiode trace, frames logged) per 60-sample chunk through the projector model:
    a dropped frame, 40 frames logged but never shown (given out unlit after max_latency),
    frames shown late, a 1.2 s pause (a run longer than max_latency), and 5x the
    configured photodiode noise, so that a run's level measured on part of it differs."""
    rig = load_config()
    fs, hz = rig.daq.sample_rate_hz, rig.display.refresh_hz
    model = rig.sim.sim_projector.model_copy(update={"noise_v": 5 * rig.sim.sim_projector.noise_v})
    drops = (2.5, *(3.0 + k / hz for k in range(40)))
    proj = SimProjector(
        rig.display, model, fs, np.random.default_rng(seed), drops_frames_at_s=drops
    )
    n = 500
    fr = np.zeros(n, dtype=FRAME_DTYPE)
    fr["frame"] = np.arange(n)
    slots = np.arange(n) + (np.arange(n) > 90) + 72 * (np.arange(n) > 350)
    fr["flip_sample"] = np.floor(slots * fs / hz + 0.5).astype(np.int64)
    fr["sync_level"] = [sync_level(k) for k in range(n)]
    fr["light_sample"] = -1
    chunks = []
    for s0 in range(0, int(fr["flip_sample"][-1]) + 6000, 60):
        new = fr[(fr["flip_sample"] >= s0) & (fr["flip_sample"] < s0 + 60)]
        proj.show(new)
        chunks.append((s0, proj.read(s0, 60), new.copy()))
    return chunks


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_decoding_many_chunks_at_once_gives_what_chunk_by_chunk_gives(seed: int) -> None:
    """The record lane decodes a batch of chunks at once (LightDecoder.feed_many): the same
    frames, lights and unmatched edges as one chunk at a time, for any batch sizes."""
    chunks = _photodiode_session(seed)
    one = LightDecoder(6000.0, 60.0)
    want = np.concatenate([*(one.feed(*c) for c in chunks), one.flush()])
    many = LightDecoder(6000.0, 60.0)
    rng = np.random.default_rng(seed)
    got, i = [], 0
    while i < len(chunks):
        k = int(rng.integers(1, 65))
        got.append(many.feed_many(chunks[i : i + k]))
        i += k
    got.append(many.flush())
    out = np.concatenate(got)
    assert (want["light_sample"] >= 0).sum() > 300
    assert np.array_equal(out, want)
    assert many.unmatched_edges == one.unmatched_edges
