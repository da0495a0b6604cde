"""Rig configs and protocols: valid ones load and round-trip, bad ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.core.config import CONFIG_DIR, DEFAULT_CONFIG, RigConfig, config_from_json, load_config
from rig.core.errors import ConfigError, ProtocolError
from stimuli.builtin import CONDITION_NAMES, CONDITION_OFFSETS, dataset_protocol
from stimuli.protocol import Protocol, load_protocol
from stimuli.schedule import Schedule


def test_shipped_configs_load_and_round_trip() -> None:
    sim = load_config(DEFAULT_CONFIG)
    real = load_config(CONFIG_DIR / "example-lightsheet.toml")
    assert sim.simulated and not real.simulated
    assert real.microscope.shape_zyx == (72, 1328, 2048)
    for cfg in (sim, real):
        assert config_from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[daq]\nsample_rate_hz = -5\n", ["daq.sample_rate_hz", "greater than or equal"]),
        ("[daq]\nbackend = 'labview'\n", ["daq.backend", "'sim'", "'nidaqmx'"]),
        ("[microscope]\nplanes_per_volum = 8\n", ["microscope.planes_per_volum", "unknown field"]),
        ("[daq]\nplane_trigger_v = 4.0\n", ["plane_trigger_v must be between 1 and 3.55"]),
        (
            "[microscope]\nplanes_per_volume = 200\nvolume_period_s = 0.9141\n",
            ["50", "fewer planes"],
        ),
        # the volume-start marker must stay > 50 samples from plane 0 and from the last plane
        ("[daq]\nmarker_lead_ms = 5\n", ["daq.marker_lead_ms", "raise daq.marker_lead_ms"]),
        (
            "[daq]\nmarker_lead_ms = 20\n[microscope]\nflyback_ms = 0\nplanes_per_volume = 72\n",
            ["microscope.flyback_ms", "previous volume's last plane"],
        ),
        ("[daq\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_file_field_and_fix(tmp_path: Path, toml: str, names: list[str]) -> None:
    p = tmp_path / "rig.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg
    for n in names:
        assert n in msg


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_builtin_protocol_matches_the_dataset_offsets() -> None:
    proto = dataset_protocol()
    assert tuple(c.name for c in proto.conditions) == CONDITION_NAMES
    tl = Schedule.build(proto, RigConfig())
    assert tl.condition_bounds == CONDITION_OFFSETS
    assert tl.n_volumes == 7879
    assert abs(tl.duration_s - 7879 * 0.9141 - 0.1) < 0.01


def test_protocol_round_trips_through_json_with_a_stable_hash() -> None:
    proto = dataset_protocol()
    again = Protocol.model_validate_json(proto.to_json())
    assert again == proto and again.sha256 == proto.sha256
    assert proto.scaled(0.5).sha256 != proto.sha256


GOOD = """
name = "flashes"
[[conditions]]
name = "flash"
seconds = 120
[[conditions.steps]]
duration_s = 60
stimulus = { kind = "flash", period_s = 60, on_s = 30 }
"""


def test_toml_and_python_protocols_give_the_same_model(tmp_path: Path) -> None:
    t = tmp_path / "p.toml"
    t.write_text(GOOD)
    py = tmp_path / "p.py"
    py.write_text(
        "from stimuli.protocol import Protocol, condition, step\n"
        "from stimuli.library import Flash\n"
        "PROTOCOL = Protocol(name='flashes', conditions=[\n"
        "    condition('flash', step(Flash(period_s=60, on_s=30), 60), seconds=120)])\n"
    )
    a, b = load_protocol(t), load_protocol(py)
    assert a == b and a.sha256 == b.sha256


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (('kind = "flash"', 'kind = "flsh"'), ["conditions[0].steps[0].stimulus", "'flash'"]),
        (("duration_s = 60", "duration_s = -3"), ["conditions[0].steps[0].duration_s", "greater"]),
        (("on_s = 30", "on_s = 30, brightness = 2"), ["brightness", "unknown field"]),
        (("seconds = 120", ""), ["give its length as volumes or seconds"]),
    ],
)
def test_bad_protocol_fails_naming_the_field(
    tmp_path: Path, change: tuple[str, str], expect: list[str]
) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(GOOD.replace(*change))
    with pytest.raises(ProtocolError) as e:
        load_protocol(p)
    msg = str(e.value)
    assert str(p) in msg
    for x in expect:
        assert x in msg


def test_replay_trace_file_is_read_at_load_time(tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("1.0\n2.0\n-3.0\n")
    p = tmp_path / "replay.toml"
    p.write_text(
        'name = "r"\n[[conditions]]\nname = "open loop"\nseconds = 10\n'
        "[[conditions.steps]]\nduration_s = 10\n"
        'stimulus = { kind = "replay", trace_file = "trace.csv", trace_rate_hz = 60 }\n'
    )
    proto = load_protocol(p)
    assert proto.conditions[0].steps[0].stimulus.velocities_mm_s == (1.0, 2.0, -3.0)
    p.write_text(p.read_text().replace("trace.csv", "missing.csv"))
    with pytest.raises(ProtocolError, match=r"missing\.csv not found"):
        load_protocol(p)
