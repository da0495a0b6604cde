"""The files ZAPBench's forecasting code opens, beside a zapbench export (``--format zapbench``).

google-research/zapbench's ``ts_forecasting`` configs open, through ``zapbench.constants``:

* ``SPECS['240930_traces']``: the traces, (t, f) (configs/common.py ``get_config``);
* ``COVARIATE_SPECS['240930_stimuli_features']``: stimulus covariates (t, 26), opened by every
  config (common.py ``_get_specs``, ``infer_spec``), used by TiDE (configs/tide.py);
* ``COVARIATE_SPECS['240930_stimulus_evoked_response']``: (t, f), the stimulus baseline's
  prediction (configs/stimulus.py ``_ARGS['covariate_series']``);
* ``POSITION_EMBEDDING_SPECS['240930_traces']``: (f, 192), TiDE's static covariates
  (tide.py ``get_position_embedding_spec``, opened for its shape even when ablated);
* ``SEGMENTATION_DATAFRAMES['240930_traces']``: a JSON of columns with ``label``
  (data_utils.py ``get_segmentation_dataframe``);
* ``CONDITION_OFFSETS`` (data_utils.py ``get_condition_bounds``).

This module writes each of them for the session (under the dataset's key names, so every
config runs unchanged) and ``zapbench_specs.json``, the constants in the code's own form;
:func:`rig.export.zapbench_constants.point_at` sets a ``zapbench.constants`` module to it.
The columns of the stimulus covariates are :data:`COVARIATE_COLUMNS` (docs/export.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorstore as ts

from rig.export._common import SessionInfo

__all__ = ["COVARIATE_COLUMNS", "SPEC_FILE", "write_forecasting_files"]

SPEC_FILE = "zapbench_specs.json"
TRACES_KEY = "240930_traces"
FEATURES_KEY = "240930_stimuli_features"
EVOKED_KEY = "240930_stimulus_evoked_response"
#: constants.py ``POSITION_EMBEDDING_SPECS``: 192 values per neuron.
EMBEDDING_DIM = 192

#: The 26 stimulus covariates per timestep, from the 6 kHz stream's samples of that timestep
#: (a timestep runs from its first plane trigger to the next one's, as the dataset's
#: processing/stimuli.ipynb ``idx_to_t`` reads it). The dataset's code opens 26 columns but
#: does not publish how its own were made; these are the rig's, one per stimulus row fact.
COVARIATE_COLUMNS: tuple[str, ...] = (
    *(f"condition_{c}" for c in range(9)),  # row 4 (1-based condition) one-hot: share of samples
    "param4_mean",  # row 3
    "param5_mean",  # row 5
    "param3_mean",  # row 6
    "stim_id_mean",  # row 7
    "velocity_mean",  # row 8, visual velocity
    "gain_mean",  # row 9, closed-loop gain
    "param4_std",
    "param3_std",
    "velocity_std",
    "velocity_min",
    "velocity_max",
    "stim_id_changes",  # times row 7 changed within the timestep
    "tail_left_power",  # row 0: variance (V^2) within the timestep: fictive swimming
    "tail_right_power",  # row 1
    "seconds_in_condition",  # since the condition's start (row 4's last change)
    "seconds_in_stimulus",  # since row 7's last change
    "condition_fraction",  # how far into the condition (0..1)
)
assert len(COVARIATE_COLUMNS) == 26


def _open(path: Path, shape: tuple[int, ...], labels: list[str], driver: str) -> ts.TensorStore:
    """A float32 array with the dataset's driver for this quantity (zarr3 or zarr v2)."""
    chunks = [max(1, min(n, 4096)) for n in shape]
    spec: dict[str, Any] = {
        "driver": driver,
        "kvstore": {"driver": "file", "path": str(path)},
        "create": True,
    }
    if driver == "zarr3":
        spec["metadata"] = {
            "shape": list(shape),
            "data_type": "float32",
            "dimension_names": labels,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        }
    else:
        spec["metadata"] = {"shape": list(shape), "dtype": "<f4", "chunks": chunks}
    return ts.open(spec).result()


def _spec(path: Path, shape: tuple[int, ...], labels: list[str], driver: str) -> dict[str, Any]:
    """A spec as constants.py writes them: the first dimension's upper bound implicit (``[n]``)."""
    spec: dict[str, Any] = {"kvstore": {"driver": "file", "path": str(path.resolve()) + "/"}}
    spec["driver"] = driver
    if driver == "zarr":
        spec["rank"] = 2
        spec["metadata"] = {"shape": list(shape)}
    spec["transform"] = {
        "input_inclusive_min": [0, 0],
        "input_exclusive_max": [[shape[0]], shape[1] if driver == "zarr3" else [shape[1]]],
        "input_labels": labels,
    }
    return spec


def stimulus_features(f: h5py.File, t_n: int, block: int = 256) -> np.ndarray:
    """(t_n, 26) float32: :data:`COVARIATE_COLUMNS` per timestep, the stream read in blocks."""
    stream = f["stimuli_and_ephys"]
    fs = float(stream.attrs.get("sample_rate_hz", 6000.0))
    starts = np.asarray(f["volumes/start_sample"][...], dtype=np.int64)[:t_n]
    bounds = np.append(starts, max(int(stream.shape[0]), int(starts[-1]) + 1) if len(starts) else 0)
    out = np.zeros((t_n, 26), dtype=np.float32)
    cond_since = stim_since = 0.0
    last_cond = last_stim = None
    cond_len: dict[int, int] = {}
    for a in range(0, t_n, block):
        b = min(t_n, a + block)
        s0, s1 = int(bounds[a]), int(bounds[b])
        x = np.asarray(stream[s0:s1], dtype=np.float64)
        for t in range(a, b):
            seg = x[int(bounds[t]) - s0 : int(bounds[t + 1]) - s0]
            if not len(seg):
                continue
            row = out[t]
            cond = np.rint(seg[:, 4]).astype(np.int64) - 1
            for c in range(9):
                row[c] = np.mean(cond == c)
            row[9:15] = seg[:, [3, 5, 6, 7, 8, 9]].mean(axis=0)
            row[15], row[16], row[17] = seg[:, 3].std(), seg[:, 6].std(), seg[:, 8].std()
            row[18], row[19] = seg[:, 8].min(), seg[:, 8].max()
            stim = seg[:, 7]
            row[20] = np.count_nonzero(np.diff(stim))
            row[21], row[22] = seg[:, 0].var(), seg[:, 1].var()
            # time since the condition / stimulus id last changed, at the timestep's end
            c_now, s_now = int(cond[-1]), float(stim[-1])
            if c_now != last_cond:
                cond_since = 0.0
            if s_now != last_stim or c_now != last_cond:
                stim_since = 0.0
            cond_since += len(seg) / fs
            stim_since += len(seg) / fs
            last_cond, last_stim = c_now, s_now
            row[23], row[24] = cond_since, stim_since
            cond_len[c_now] = cond_len.get(c_now, 0) + 1
    # how far into its condition each timestep is, once every condition's length is known
    major = np.argmax(out[:, :9], axis=1)
    seen: dict[int, int] = {}
    for t in range(t_n):
        c = int(major[t]) if out[t, :9].any() else -1
        seen[c] = seen.get(c, 0) + 1
        total = cond_len.get(c, 0)
        out[t, 25] = seen[c] / total if total and c >= 0 else 0.0
    return out


def evoked_response(
    traces: np.ndarray, features: np.ndarray, offsets: tuple[int, ...]
) -> np.ndarray:
    """(t, f) the response each timestep's stimulus evokes on average: per condition, the mean
    trace over the train part (data_utils.py ``adjust_condition_bounds_for_split('train')``) of
    the timesteps with the same stimulus id and the same time since its onset; the
    condition's train mean where no train timestep matches. The stimulus baseline
    (configs/stimulus.py) returns it as its forecast."""
    from rig.forecast import condition_bounds, split_bounds

    out = np.zeros(traces.shape, dtype=np.float32)
    key_stim = np.rint(features[:, 12] * 1000).astype(np.int64)
    key_time = np.rint(features[:, 24] * 10).astype(np.int64)  # 0.1 s bins
    for c in range(len(offsets) - 1):
        a, b = offsets[c], offsets[c + 1]
        if b <= a:
            continue
        try:
            ta, tb = split_bounds("train", *condition_bounds(offsets, c))
        except ValueError:
            ta, tb = a, b
        train = np.arange(ta, tb)
        finite = np.isfinite(traces[train]).all(axis=1)
        train = train[finite]
        fallback = traces[train].mean(axis=0) if len(train) else np.zeros(traces.shape[1])
        means: dict[tuple[int, int], np.ndarray] = {}
        for k in {(int(key_stim[t]), int(key_time[t])) for t in train}:
            sel = train[(key_stim[train] == k[0]) & (key_time[train] == k[1])]
            means[k] = traces[sel].mean(axis=0)
        for t in range(a, b):
            out[t] = means.get((int(key_stim[t]), int(key_time[t])), fallback)
    return np.nan_to_num(out)


def position_embedding(positions_zyx: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """(f, 192): sines and cosines of each neuron's position, 32 frequencies per axis (a
    Fourier-feature embedding; the dataset's own 192 values are not published with the code).
    """
    n = len(positions_zyx)
    rel = positions_zyx / np.maximum(np.asarray(shape_zyx, dtype=np.float64), 1.0)  # 0..1
    freqs = 2.0 ** np.linspace(0.0, 6.0, 32) * np.pi  # (32,)
    ang = rel[:, :, None] * freqs[None, None, :]  # (f, 3, 32)
    emb = np.concatenate([np.sin(ang), np.cos(ang)], axis=2).reshape(n, EMBEDDING_DIM)
    return emb.astype(np.float32)


def write_forecasting_files(f: h5py.File, info: SessionInfo, out: Path) -> dict[str, Any] | None:
    """Write the covariates, stimulus-evoked response, position embedding, segmentation
    dataframe and ``zapbench_specs.json`` beside the export's ``traces/``; None (nothing
    written) when the export has no traces."""
    if not (out / "traces").exists():
        return None
    traces_ts = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / "traces")}}
    ).result()
    traces = np.asarray(traces_ts.read().result(), dtype=np.float32)
    t_n, n = traces.shape
    features = stimulus_features(f, t_n)
    _open(out / "stimuli_features", features.shape, ["t", "f"], "zarr").write(features).result()
    offsets = tuple(int(o) for o in info.condition_offsets)
    evoked = evoked_response(traces, features, offsets)
    _open(out / "stimulus_evoked_response", evoked.shape, ["t", "f"], "zarr3").write(
        evoked
    ).result()
    if "ground_truth/positions_zyx" in f and len(f["ground_truth/positions_zyx"]) == n:
        pos = np.asarray(f["ground_truth/positions_zyx"][...], dtype=np.float64)
    elif "live/labels/positions_zyx" in f and len(f["live/labels/positions_zyx"]) == n:
        pos = np.asarray(f["live/labels/positions_zyx"][...], dtype=np.float64)
    else:
        pos = np.zeros((n, 3))
    _t, z, y, x = info.shape_tzyx
    emb = position_embedding(pos, (z, y, x))
    _open(out / "position_embedding", emb.shape, ["f", "a"], "zarr").write(emb).result()
    vz, vy, vx = info.voxel_size_um_zyx
    frame = {
        "label": list(range(1, n + 1)),  # label k is trace column k - 1 (data_utils.py)
        "z": np.round(pos[:, 0], 3).tolist(),
        "y": np.round(pos[:, 1], 3).tolist(),
        "x": np.round(pos[:, 2], 3).tolist(),
        "z_um": np.round(pos[:, 0] * vz, 3).tolist(),
        "y_um": np.round(pos[:, 1] * vy, 3).tolist(),
        "x_um": np.round(pos[:, 2] * vx, 3).tolist(),
    }
    (out / "segmentation").mkdir(exist_ok=True)
    (out / "segmentation" / "dataframe.json").write_text(json.dumps(frame), encoding="utf-8")
    finite = traces[np.isfinite(traces)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-0.25, 1.5)
    specs = {
        "CONDITION_OFFSETS": list(offsets),
        "CONDITION_NAMES": list(info.condition_names),
        "TIMESERIES_NAME": TRACES_KEY,
        "COVARIATE_SERIES_NAME": FEATURES_KEY,
        "SPECS": {TRACES_KEY: _spec(out / "traces", (t_n, n), ["t", "f"], "zarr3")},
        "MIN_MAX_VALUES": {TRACES_KEY: [lo, hi]},
        "SEGMENTATION_DATAFRAMES": {
            TRACES_KEY: str((out / "segmentation" / "dataframe.json").resolve())
        },
        "POSITION_EMBEDDING_SPECS": {
            TRACES_KEY: _spec(out / "position_embedding", emb.shape, ["f", "a"], "zarr")
        },
        "COVARIATE_SPECS": {
            FEATURES_KEY: _spec(out / "stimuli_features", features.shape, ["t", "f"], "zarr"),
            EVOKED_KEY: _spec(out / "stimulus_evoked_response", evoked.shape, ["t", "f"], "zarr3"),
        },
        "covariate_columns": list(COVARIATE_COLUMNS),
        "relative_paths": {
            "traces": "traces/",
            "stimuli_features": "stimuli_features/",
            "stimulus_evoked_response": "stimulus_evoked_response/",
            "position_embedding": "position_embedding/",
            "segmentation_dataframe": "segmentation/dataframe.json",
        },
    }
    (out / SPEC_FILE).write_text(json.dumps(specs, indent=1) + "\n", encoding="utf-8")
    return specs
