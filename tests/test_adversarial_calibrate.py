"""``zaprig calibrate display`` refuses a bad measurement (issue 24, item 4).

Reproducers: a short dwell per level wrote ``gamma = 5.000`` (the fit's bound; the
projector's is 2.2) because the light had not settled; ``--levels 0``/``-5`` and
``--seconds-per-level 0``/``-1``/``nan``/``inf`` gave tracebacks; ``--levels 100000``
ran on with no limit. Now each is refused with one line saying why, exit 2, and the
rig config is left as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rig.cli import main
from rig.core.config import DEFAULT_CONFIG


@pytest.mark.parametrize(
    ("arg", "value", "says"),
    [
        ("--levels", "0", "3 to 256 levels"),
        ("--levels", "-5", "3 to 256 levels"),
        ("--levels", "100000", "3 to 256 levels"),
        ("--seconds-per-level", "0", "from 0.05 to 60"),
        ("--seconds-per-level", "-1", "from 0.05 to 60"),
        ("--seconds-per-level", "nan", "from 0.05 to 60"),
        ("--seconds-per-level", "inf", "from 0.05 to 60"),
    ],
)
def test_sweep_arguments_out_of_range_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arg: str, value: str, says: str
) -> None:
    out = tmp_path / "c"
    assert main(["calibrate", "display", arg, value, "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert says in err and f"{arg} {value}" in err.replace(".0:", ":"), err
    assert err.count("\n") == 1 and not out.exists()


def _rig(tmp_path: Path, **replace: str) -> Path:
    config = tmp_path / "rig.toml"
    text = DEFAULT_CONFIG.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    return config


def _refused(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    before = config.read_text()
    code = main(["calibrate", "display", "--config", str(config), "--out", str(tmp_path / "c"),
                 *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "nothing written" in err and "Traceback" not in err
    assert config.read_text() == before  # no gamma written
    return err


def test_a_dwell_shorter_than_the_display_latency_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _rig(tmp_path)
    shutil.copy(DEFAULT_CONFIG, config)
    err = _refused(config, tmp_path, capsys, "--seconds-per-level", "0.05")
    assert "the levels would be read before their light" in err
    assert "--seconds-per-level (e.g. 0.2)" in err


def test_a_fit_on_its_bound_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _rig(tmp_path, **{"gamma = 2.2 ": "gamma = 5.0 "})  # the projector's own gamma
    err = _refused(config, tmp_path, capsys, "--seconds-per-level", "0.3", "--levels", "6")
    assert "the fit ended on its bound" in err
