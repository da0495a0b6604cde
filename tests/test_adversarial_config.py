"""Config in strict mode (issue 24, item 5): nothing passes silently.

Reproducers: ``[faults] writer_dies_at_s = -1`` ran; ``sample_rate_hz = "6000"`` (a string)
was converted; an empty config, or one without ``[daq]``, ``[display]`` or ``[microscope]``,
ran as the simulated rig with no word. Each is now refused by ``zaprig plan`` (its CLI entry, in-process) with exit 2
and one message naming the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.cli import main
from rig.core.config import CONFIG_DIR, load_config

HW = "[daq]\n[microscope]\n[display]\n"


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("", "no [daq], [microscope], [display] table"),
        ("[microscope]\n[display]\n", "no [daq] table"),
        ("[daq]\n[microscope]\n", "no [display] table"),
        ("[daq]\n[display]\n", "no [microscope] table"),
        ('name = "rig"\n', "write simulated = true at the top of the file"),
        ("simulated = true\n[faults]\nwriter_dies_at_s = -1\n",
         "faults.writer_dies_at_s: Input should be greater than or equal to 0"),
        ("simulated = true\n[faults]\ndisplay_drops_frames_at_s = [1.0, -2.0]\n",
         "faults.display_drops_frames_at_s[1]"),
        (HW.replace("[daq]\n", '[daq]\nsample_rate_hz = "6000"\n'),
         "daq.sample_rate_hz: Input should be a valid number (got '6000') (write the number "
         "without quotes"),
        (HW.replace("[microscope]\n", "[microscope]\nplanes_per_volume = 8.0\n"),
         "microscope.planes_per_volume"),
        (HW.replace("[display]\n", '[display]\nrefresh_hz = "60"\n'), "display.refresh_hz"),
        ('simulated = "yes"\n', "simulated: must be true or false"),
        ('simulated = true\n[daq]\nbackend = "nidaqmx"\n', "daq.backend names real hardware"),
        ("simulated = true\n[fish]\nnoise_v = inf\n", "fish.noise_v"),
    ],
)  # fmt: skip
def test_a_config_that_would_pass_silently_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, says: str
) -> None:
    cfg = tmp_path / "rig.toml"
    cfg.write_text(toml)
    assert main(["plan", "--config", str(cfg), "--time-scale", "0.01"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and says in err, err


def test_a_config_that_says_it_is_simulated_and_the_shipped_ones_load(tmp_path: Path) -> None:
    cfg = tmp_path / "rig.toml"
    cfg.write_text("simulated = true\n")
    assert load_config(cfg).simulated
    cfg.write_text(HW.replace("[daq]\n", "[daq]\nsample_rate_hz = 6000\n"))  # an int for a float
    assert load_config(cfg).daq.sample_rate_hz == 6000.0
    for shipped in sorted(CONFIG_DIR.glob("*.toml")):
        load_config(shipped)
