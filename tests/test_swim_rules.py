"""The swim detector's rule is a rig setting: the lab's rule (DATASET.md) or zaprig's, whose
two differences are documented options (rig/core/_devices.py ``SwimsConfig``; issue 26)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acquisition.swims import OnlineSwimDetector, SwimParams
from rig.cli import main
from rig.core.config import DEFAULT_CONFIG, load_config
from rig.engine import Engine
from stimuli.builtin import dataset_protocol

FS = 6000.0


def _rig_file(tmp_path: Path, swims: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8") + f"\n[swims]\n{swims}\n")
    return path


def test_the_lab_rule_is_the_one_dataset_md_gives_and_values_set_over_it_win() -> None:
    lab = SwimParams.for_rule("lab")
    assert (lab.threshold_k, lab.gap_s) == (1.8, 0.4)
    ours = SwimParams.for_rule()
    assert (ours.threshold_k, ours.gap_s) == (2.5, 0.1)
    assert ours == SwimParams()
    mixed = SwimParams.for_rule("lab", gap_s=0.1)
    assert (mixed.threshold_k, mixed.gap_s) == (1.8, 0.1)


def test_a_rig_file_sets_the_engine_s_detector(tmp_path: Path) -> None:
    rig = load_config(_rig_file(tmp_path, 'rule = "lab"'))
    engine = Engine(rig, dataset_protocol().scaled(0.003), tmp_path, clock="virtual")
    assert (engine.detector.p.threshold_k, engine.detector.p.gap_s) == (1.8, 0.4)


def test_the_gap_splits_bouts_as_set() -> None:
    """Two bursts 0.25 s apart: one bout with the lab's 0.4 s gap, two with zaprig's 0.1 s
    (at zaprig's threshold: the lab's 1.8 also finds bouts in this noise)."""
    rng = np.random.default_rng(0)
    tail = rng.normal(0.0, 0.01, (round(20 * FS), 2))
    for start_s in (15.0, 15.35):  # 0.1 s bursts, 0.25 s apart
        a = round(start_s * FS)
        tail[a : a + 600] += rng.normal(0.0, 0.2, (600, 2))
    counts = []
    for gap_s in (0.4, 0.1):
        det = OnlineSwimDetector(FS, SwimParams.for_rule(gap_s=gap_s))
        bouts = [det.process(tail[i : i + 60], i)[1] for i in range(0, len(tail), 60)]
        counts.append(len(np.concatenate(bouts)))
    assert counts == [1, 2]


def test_a_bad_swims_setting_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _rig_file(tmp_path, 'rule = "fast"')
    assert main(["plan", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "swims.rule" in err
