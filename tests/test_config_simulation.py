"""The simulation apart (issue 25, item 6): only a simulated rig has simulation settings.

``[fish]``, ``[faults]``, ``[sim_projector]`` and ``[sim_microscope]`` stay top-level
tables of a rig file; they fill ``RigConfig.simulation`` (``SimulationConfig``), which a
rig of real hardware does not have: its file is refused if it names one, with the file,
the table and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.cli import main
from rig.core.config import CONFIG_DIR, config_from_json, load_config
from rig.core.errors import ConfigError
from rig.core.simulation import SIMULATION_TABLES
from rig.devices import make_fish, make_projector

REAL = CONFIG_DIR / "example-lightsheet.toml"

SIM_TABLES = """
[daq]
photodiode_channel = "ai3"
[fish]
n_neurons = 37
indicator = "GCaMP6f"
[faults]
brain_change_at_s = 12.5
display_drops_frames_at_s = [3.0]
[sim_projector]
input_lag_ms = 40.0
[sim_microscope]
bleaching_per_min = 0.0
"""


def test_a_simulated_rig_file_with_the_simulation_tables_loads_and_drives_its_devices(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "rig.toml"
    cfg.write_text("simulated = true\n" + SIM_TABLES)
    rig = load_config(cfg)
    assert rig.simulation is not None
    assert rig.sim.sim_microscope.bleaching_per_min == 0.0
    fish = make_fish(rig, seed=0)
    assert fish is not None
    assert len(fish.brain.positions) == 37
    assert fish.change_at_s == 12.5
    assert fish.cfg.indicator == "GCaMP6f"
    projector = make_projector(rig, seed=0)
    assert projector is not None
    assert projector.model.input_lag_ms == 40.0
    # a session's hardware_config holds them as the file does, at the top level, and reads back
    stored = json.loads(rig.to_json())
    assert "simulation" not in stored
    assert stored["fish"]["n_neurons"] == 37
    assert stored["faults"]["brain_change_at_s"] == 12.5
    assert config_from_json(rig.to_json()) == rig


@pytest.mark.parametrize("table", SIMULATION_TABLES)
def test_a_real_hardware_file_with_a_simulation_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str
) -> None:
    cfg = tmp_path / "lightsheet.toml"
    cfg.write_text(REAL.read_text() + f"\n[{table}]\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert msg.startswith(f"{cfg}: invalid")
    assert f"{table}: [{table}] is for the simulated rig only" in msg
    assert 'daq.backend = "nidaqmx" and microscope.backend = "pymmcore"' in msg
    assert f"remove the [{table}] table" in msg
    # the CLI says the same, in one message, and exits 2
    assert main(["plan", "--config", str(cfg), "--time-scale", "0.01"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and f"remove the [{table}] table" in err, err


def test_a_simulation_table_under_simulation_is_refused_with_the_top_level_form(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "rig.toml"
    cfg.write_text("simulated = true\n[simulation.fish]\nn_neurons = 10\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert str(cfg) in msg
    assert "simulation: not a table of a rig file" in msg
    assert "[fish], [faults], [sim_projector], [sim_microscope]" in msg


def test_shipped_configs_load_and_only_the_simulated_ones_have_simulation_settings() -> None:
    shipped = sorted(CONFIG_DIR.glob("*.toml"))
    assert len(shipped) >= 3
    for path in shipped:
        rig = load_config(path)
        assert (rig.simulation is not None) == rig.simulated, path
    real = load_config(REAL)
    assert real.simulation is None
    assert not any(t in json.loads(real.to_json()) for t in SIMULATION_TABLES)
    with pytest.raises(ConfigError, match="no device is simulated"):
        real.sim  # noqa: B018


def test_an_older_real_rig_sessions_config_still_reads() -> None:
    """Before the simulation had its own model every rig's hardware_config held its tables
    (at their defaults): a real rig's is read without them, not refused."""
    old = json.loads(load_config(REAL).to_json())
    simulated = json.loads(load_config().to_json())
    old.update({t: simulated[t] for t in SIMULATION_TABLES})
    rig = config_from_json(json.dumps(old))
    assert rig == load_config(REAL)
    assert rig.simulation is None
