"""The zapbench export carries what ZAPBench's forecasting code opens, and point_at sets the
code's constants to it (tested against a stand-in module with the real module's names)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ts = pytest.importorskip("tensorstore")
REPO = Path(__file__).resolve().parents[1]


def stand_in_constants() -> types.ModuleType:
    """A module named and shaped like zapbench/constants.py (its released values)."""
    m = types.ModuleType("zapbench.constants")
    m.CONDITION_OFFSETS = (0, 649, 2422, 3078, 3735, 5047, 5638, 6623, 7279, 7879)
    m.CONDITION_PADDING = 1
    m.CONDITIONS_TRAIN = (0, 1, 2, 4, 5, 6, 7, 8)
    m.CONDITIONS_HOLDOUT = (3,)
    m.CONDITION_NAMES = ("gain", "dots", "flash", "taxis", "turning", "position",
                         "open loop", "rotation", "dark")  # fmt: skip
    m.VAL_FRACTION, m.TEST_FRACTION = 0.1, 0.2
    m.MAX_CONTEXT_LENGTH, m.PREDICTION_WINDOW_LENGTH = 256, 32
    m.TIMESERIES_NAME = "240930_traces"
    gs = "gs://zapbench-release/volumes/20240930/"
    m.SPECS = {"240930_traces": {"kvstore": gs + "traces/", "driver": "zarr3", "transform": {
        "input_exclusive_max": [[7879], 71721], "input_inclusive_min": [0, 0],
        "input_labels": ["t", "f"]}}}  # fmt: skip
    m.MIN_MAX_VALUES = {"240930_traces": (-0.25, 1.5)}
    m.SEGMENTATION_DATAFRAMES = {"240930_traces": gs + "segmentation/dataframe.json"}
    m.POSITION_EMBEDDING_SPECS = {"240930_traces": {"kvstore": gs + "position_embedding/"}}
    m.COVARIATE_SERIES_NAME = "240930_stimuli_features"
    m.COVARIATE_SPECS = {
        "240930_stimuli_features": {"kvstore": gs + "stimuli_features/"},
        "240930_stimulus_evoked_response": {"kvstore": gs + "stimulus_evoked_response/"},
    }
    m.RASTERMAP_SORTINGS = {"240930_traces": gs + "traces_rastermap_sorted/sorting.json"}
    return m


def test_export_opens_as_the_dataset_code_opens_it(short_session: Path, tmp_path: Path) -> None:
    from rig.export.zapbench_constants import point_at

    out = tmp_path / "export"
    r = subprocess.run(
        [sys.executable, "-m", "rig", "export", str(short_session), "--format", "zapbench",
         str(out)], capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    moved = tmp_path / "moved"  # point_at re-roots the paths: the folder may move
    out.rename(moved)
    m = stand_in_constants()
    specs_dict = m.SPECS
    point_at(moved, m)
    assert m.SPECS is specs_dict  # updated in place: `from constants import SPECS` sees it
    name = m.TIMESERIES_NAME
    # data_utils.get_spec / get_covariate_spec / get_position_embedding_spec: ts.Spec(...)
    traces = ts.open(ts.Spec(m.SPECS[name])).result()
    t_n, n = traces.shape
    assert traces.domain.labels == ("t", "f") and n == 300  # simulated.toml's n_neurons
    assert m.CONDITION_OFFSETS[-1] == t_n and len(m.CONDITION_OFFSETS) == 10
    assert m.RASTERMAP_SORTINGS["240930_traces"].startswith("gs://")  # left alone
    cov = ts.open(ts.Spec(m.COVARIATE_SPECS[m.COVARIATE_SERIES_NAME])).result()
    assert cov.shape == (t_n, 26) and cov.domain.labels == ("t", "f")
    evoked = ts.open(ts.Spec(m.COVARIATE_SPECS["240930_stimulus_evoked_response"])).result()
    assert evoked.shape == (t_n, n)
    emb = ts.open(ts.Spec(m.POSITION_EMBEDDING_SPECS[name])).result()
    assert emb.shape == (n, 192) and np.isfinite(emb.read().result()).all()
    # data_utils.adjust_spec_for_condition_and_split slices the spec on its 't' label
    c = 4
    lo, hi = m.CONDITION_OFFSETS[c] + 1, m.CONDITION_OFFSETS[c + 1] - 1
    part = ts.open(ts.Spec(m.SPECS[name])[ts.d["t"][lo:hi]].translate_to[0]).result()
    assert part.shape == (hi - lo, n)
    # the covariates' condition columns say which condition each timestep is in
    x = cov.read().result()
    names = json.loads((moved / "zapbench_specs.json").read_text())["covariate_columns"]
    assert names[:9] == [f"condition_{i}" for i in range(9)]
    for i in range(9):
        a, b = m.CONDITION_OFFSETS[i], m.CONDITION_OFFSETS[i + 1]
        assert np.argmax(x[a + 1 : b, :9], axis=1).tolist() == [i] * (b - a - 1)
    # data_utils.get_segmentation_dataframe: a JSON of columns with `label`, label k = column k-1
    frame = json.loads(Path(m.SEGMENTATION_DATAFRAMES[name]).read_text())
    assert frame["label"] == list(range(1, n + 1))
    lo_v, hi_v = m.MIN_MAX_VALUES[name]
    assert isinstance(m.MIN_MAX_VALUES[name], tuple) and lo_v < hi_v


def test_point_at_names_a_folder_without_specs(tmp_path: Path) -> None:
    from rig.core.errors import SessionFileError
    from rig.export.zapbench_constants import point_at

    with pytest.raises(SessionFileError, match=r"zapbench_specs\.json"):
        point_at(tmp_path, stand_in_constants())
