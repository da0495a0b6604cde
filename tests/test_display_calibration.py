"""``zaprig calibrate display`` on the simulated rig: the light is linear in luminance after it.

The simulated projector's light goes as ``level ** 2.2`` (``[sim_projector] gamma``);
the calibration must find that through the photodiode and the rig config must then
make five relative luminances give photodiode levels on a straight line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rig.calibrate import measure_levels, write_gamma
from rig.cli import main
from rig.core.config import DEFAULT_CONFIG, load_config
from rig.core.errors import ConfigError

FIVE = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def off_line(volts: np.ndarray) -> float:
    """Largest distance of the levels from the black-white line, as a fraction of full scale."""
    rel = (volts - volts[0]) / (volts[-1] - volts[0])
    return float(np.max(np.abs(rel - FIVE)))


def test_calibration_makes_light_linear(tmp_path: Path, capsys) -> None:
    config = tmp_path / "rig.toml"
    shutil.copy(DEFAULT_CONFIG, config)
    before, _ = measure_levels(load_config(config), FIVE, tmp_path / "s", 0.3, config)
    # gamma 2.2 uncorrected: half luminance gives about a fifth of the light
    assert off_line(before) > 0.2

    assert main(["calibrate", "display", "--config", str(config), "--out", str(tmp_path / "c"),
                 "--seconds-per-level", "0.3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rig = load_config(config)
    assert rig.display.gamma == pytest.approx(rig.sim.sim_projector.gamma, abs=0.05)
    assert f"gamma     {rig.display.gamma:.3f}  written to {config}" in out
    # the file keeps its comments and the simulated projector's own gamma
    text = config.read_text()
    assert "# The simulated projector the photodiode looks at" in text
    assert "gamma = 2.2           # light = level ** gamma" in text

    after, _ = measure_levels(rig, FIVE, tmp_path / "s", 0.3, config)
    assert off_line(after) < 0.02


def test_calibration_needs_a_photodiode(tmp_path: Path, capsys) -> None:
    config = tmp_path / "rig.toml"
    text = DEFAULT_CONFIG.read_text().replace('photodiode_channel = "ai3"\n', "")
    config.write_text(text)
    assert main(["calibrate", "display", "--config", str(config), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "daq.photodiode_channel is not set" in err and str(config) in err


def test_gamma_is_added_to_a_display_table_without_one(tmp_path: Path) -> None:
    config = tmp_path / "rig.toml"
    config.write_text(
        'name = "r"\nsimulated = true\n\n[display]  # the projector\nrefresh_hz = 60\n\n[laser]\n'
    )
    write_gamma(config, 1.87)
    assert load_config(config).display.gamma == pytest.approx(1.87)
    write_gamma(config, 2.05)
    assert config.read_text().count("gamma") == 1
    with pytest.raises(ConfigError, match="gamma"):
        write_gamma(config, 9.0)
    assert load_config(config).display.gamma == pytest.approx(2.05)
