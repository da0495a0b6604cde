"""``zaprig forecast``: the forecasting benchmark's splits, windows and MAE on a real session.

The hand computation below is written from the benchmark's definitions
(google-research/zapbench data_utils.py ``get_condition_bounds``,
``adjust_condition_bounds_for_split``, ``get_num_windows``; models/naive.py
``MeanBaseline``) with plain loops, independently of rig/forecast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

#: A rig whose volumes are small and quick (2 planes every 0.1 s): at --time-scale 0.45 the
#: built-in protocol's 3,545 volumes (every condition long enough for the benchmark's
#: windows) take about 20 s of virtual time.
FAST_RIG = """
name = "fast"
[daq]
backend = "sim"
chunk_samples = 300
[microscope]
backend = "sim"
planes_per_volume = 2
volume_period_s = 0.1
width = 48
height = 32
voxel_size_um = [4.0, 6.496, 6.496]
[display]
backend = "headless"
[laser]
backend = "sim"
[fish]
n_neurons = 60
[readout]
enabled = true
"""


def zaprig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def _session(d: Path, scale: float) -> Path:
    """The built-in protocol at ``scale`` of its length on the fast rig, in virtual time."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    (d / "fast.toml").write_text(FAST_RIG)
    engine = Engine(
        load_config(d / "fast.toml"), dataset_protocol().scaled(scale), d, clock="virtual", seed=5
    )
    assert engine.run() is RunState.COMPLETE
    assert engine.path is not None
    return engine.path


@pytest.fixture(scope="module")
def fitting_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in protocol at the smallest time scale whose conditions fit the windows."""
    return _session(tmp_path_factory.mktemp("forecast"), 0.45)


@pytest.fixture(scope="module")
def full_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in protocol at its full length (7,879 volumes; ~3.5 min on an idle core)."""
    return _session(tmp_path_factory.mktemp("forecast_full"), 1.0)


def hand_mean_mae(path: Path) -> dict[int, float]:
    """MAE of the mean baseline per scored condition, by the benchmark's definitions."""
    with h5py.File(path, "r") as f:
        starts = f["protocol/conditions/start_volume"][...]
        stops = f["protocol/conditions/stop_volume"][...]
        order = np.argsort(f["protocol/conditions/index"][...])
        offsets = [int(v) for v in starts[order]] + [int(stops[order][-1])]
        rows = f["live/traces_dff"][...].astype(np.float64)
        volume = f["live/volume"][...]
        n_t = f["volumes/raw"].shape[0]
    x = np.full((n_t, rows.shape[1]), np.nan)
    x[volume] = rows
    out = {}
    for c in range(9):
        lo, hi = offsets[c] + 1, offsets[c + 1] - 1  # CONDITION_PADDING = 1
        total = hi - lo
        # 3 is CONDITIONS_HOLDOUT: its test set starts MAX_CONTEXT_LENGTH - context in; the
        # others' is their last int(20 %), reaching back 4 timesteps (into val) for context
        lo = lo + 256 - 4 if c == 3 else lo + (total - int(total * 0.2)) - 4
        windows = hi - lo - 32 - 4 + 1
        errors = []
        for w in range(windows):
            inputs = x[lo + w : lo + w + 4]
            targets = x[lo + w + 4 : lo + w + 36]
            if np.isnan(inputs).any() or np.isnan(targets).any():
                continue
            prediction = inputs.mean(axis=0)  # the same for all 32 steps
            errors.append(np.abs(targets - prediction).mean())
        out[c] = float(np.mean(errors))
    return out


def _check_mean_baseline_against_hand(session: Path, tmp_path: Path) -> dict[int, float]:
    out = tmp_path / "f.json"
    png = tmp_path / "f.png"
    r = zaprig("forecast", str(session), "--out", str(out), "--png", str(png))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["traces"] == "live" and result["context"] == 4 and result["horizon"] == 32
    hand = hand_mean_mae(session)
    got = {s["condition"]: s["mean"]["mae"] for s in result["sets"]}
    assert sorted(got) == list(range(9))
    for c in range(9):
        assert round(got[c], 3) == round(hand[c], 3), (c, got[c], hand[c])
    # the benchmark's order and names: train conditions' test sets, then the held-out one
    assert [s["name"] for s in result["sets"]][-1] == "test_holdout_condition_3"
    for s in result["sets"]:
        assert len(s["mean"]["mae_step"]) == 32
        assert s["linear"]["mae"] is not None and np.isfinite(s["linear"]["mae"])
    assert result["too_short"] == []
    assert "test_holdout_condition_3" in r.stdout
    assert png.stat().st_size > 10_000
    return got


def test_forecast_mean_baseline_matches_hand_computation(
    fitting_session: Path, tmp_path: Path
) -> None:
    _check_mean_baseline_against_hand(fitting_session, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the session takes ~3.5 min on an idle core, >10 min under load
def test_forecast_mean_baseline_matches_hand_computation_on_a_full_length_session(
    full_session: Path, tmp_path: Path
) -> None:
    """Issue 28's acceptance as written: the full-length session (time scale 1)."""
    with h5py.File(full_session, "r") as f:
        assert f["volumes/raw"].shape[0] > 7_800
    got = _check_mean_baseline_against_hand(full_session, tmp_path)
    print("mean baseline MAE per condition (zaprig forecast):", got)
    _check_live_forecaster_beats_the_mean_baseline(full_session)


def test_plan_and_export_name_the_smallest_time_scale_that_fits(
    short_session: Path, tmp_path: Path
) -> None:
    r = zaprig("plan", "--time-scale", "0.01")
    assert r.returncode == 0, r.stderr
    assert "too short for the benchmark's windows" in r.stdout
    assert "3 taxis (7 of 290 timesteps)" in r.stdout
    assert "smallest time scale that fits is 0.45" in r.stdout
    r = zaprig("plan", "--time-scale", "0.45")
    assert r.returncode == 0 and "too short" not in r.stdout
    r = zaprig("export", str(short_session), "--format", "zapbench", str(tmp_path / "z"))
    assert r.returncode == 0, r.stderr
    assert "smallest time scale that fits is 0.45" in r.stdout


def test_forecast_of_a_short_session_says_why_nothing_was_scored(
    short_session: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.json"
    r = zaprig("forecast", str(short_session), "--out", str(out))
    assert r.returncode == 1
    result = json.loads(out.read_text())
    assert result["mean_mae"] is None and len(result["too_short"]) == 9
    assert "needs 290" in r.stdout
    # the plot went into the report folder, and the report shows it
    report = tmp_path / "report"
    r = zaprig(
        "forecast", str(short_session), "--out", str(out), "--png", str(report / "forecast.png")
    )
    assert (report / "forecast.png").stat().st_size > 5_000
    r = zaprig("report", str(short_session), "--out", str(report))
    assert r.returncode == 0, r.stderr
    assert 'src="forecast.png"' in (report / "index.html").read_text()


def test_forecast_refuses_a_missing_trace_source(short_session: Path, tmp_path: Path) -> None:
    r = zaprig("forecast", str(short_session), "--traces", "live", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert "/live/traces_dff" in r.stderr and "Traceback" not in r.stderr


def _check_live_forecaster_beats_the_mean_baseline(session: Path) -> None:
    """Every forecast is made from the past only; the second half is scored per lead."""
    with h5py.File(session, "r") as f:
        mae = f["live/forecast/mae"][...]
        base = f["live/forecast/baseline_mae"][...]
        assert f["live/forecast"].attrs["horizon"] == 4
        assert f["live/forecast/next"].shape == f["live/traces_dff"].shape
    half = len(mae) // 2
    model, mean = np.nanmean(mae[half:], axis=0), np.nanmean(base[half:], axis=0)
    assert model.shape == (4,) and np.all(np.isfinite(model))
    print("live forecaster / mean baseline MAE, second half, leads 1..4:", model / mean)
    # strictly better at every lead, and by a margin over all of them (measured 5.0 %
    # better on the 0.45 session of the fixture's seed; 5 to 7 % on seeds 5 to 7)
    assert np.all(model < mean)
    assert np.mean(model) <= 0.98 * np.mean(mean)


def test_the_live_forecaster_beats_the_mean_baseline_on_the_second_half(
    fitting_session: Path,
) -> None:
    _check_live_forecaster_beats_the_mean_baseline(fitting_session)
