"""Point the ZAPBench code's constants at a zaprig export, so its forecasting runs on it.

google-research/zapbench reads every location, size and condition offset from module
constants (``zapbench/constants.py``), fixed to the released recording. After

    import zapbench.constants, rig.export.zapbench_constants as z
    z.point_at("OUT_DIR", zapbench.constants)

its ``data_utils`` and ``ts_forecasting`` configs (mean, linear, stimulus, TiDE, TSMixer)
open the export instead. This module only sets attributes and imports nothing of zapbench
(which needs jax, flax and tensorflow); as part of ``rig.export`` it loads tensorstore,
which zapbench needs too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from rig.core.errors import SessionFileError

__all__ = ["CONSTANT_NAMES", "point_at"]

SPEC_FILE = "zapbench_specs.json"

#: The constants of zapbench/constants.py that point_at sets (the others, e.g. the split
#: fractions and the window lengths, define the benchmark and stay as they are).
CONSTANT_NAMES = (
    "CONDITION_OFFSETS",
    "CONDITION_NAMES",
    "TIMESERIES_NAME",
    "COVARIATE_SERIES_NAME",
    "SPECS",
    "MIN_MAX_VALUES",
    "SEGMENTATION_DATAFRAMES",
    "POSITION_EMBEDDING_SPECS",
    "COVARIATE_SPECS",
)

_PATH_OF = {
    ("SPECS", "240930_traces"): "traces",
    ("POSITION_EMBEDDING_SPECS", "240930_traces"): "position_embedding",
    ("COVARIATE_SPECS", "240930_stimuli_features"): "stimuli_features",
    ("COVARIATE_SPECS", "240930_stimulus_evoked_response"): "stimulus_evoked_response",
}


def _load(export_dir: Path) -> dict[str, Any]:
    path = export_dir / SPEC_FILE
    if not path.is_file():
        raise SessionFileError(
            f"{path}: not found: point_at needs a zaprig zapbench export with traces "
            "(zaprig export SESSION --format zapbench OUT_DIR)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SessionFileError(f"{path}: cannot read the spec file: {e}") from None
    missing = [k for k in CONSTANT_NAMES if k not in data]
    if missing:
        raise SessionFileError(f"{path}: lacks {', '.join(missing)}: export the session again")
    return data


def point_at(export_dir: str | Path, module: ModuleType) -> dict[str, Any]:
    """Set ``module``'s constants (``zapbench.constants``) to the export in ``export_dir``.

    Paths are re-rooted at ``export_dir`` (the folder may have moved since the export).
    The dictionaries are updated in place (entries for the export's keys replaced, others
    kept), so modules that imported them by name see the change too; the tuples and
    names are replaced. Returns what was set.
    """
    root = Path(export_dir).resolve()
    data = _load(root)
    rel = data.get("relative_paths", {})
    for (table, key), name in _PATH_OF.items():
        spec = data[table].get(key)
        if spec is not None:
            spec["kvstore"] = {"driver": "file", "path": f"{root / rel.get(name, name)}/"}
    for key in data["SEGMENTATION_DATAFRAMES"]:
        df = rel.get("segmentation_dataframe", "segmentation/dataframe.json")
        data["SEGMENTATION_DATAFRAMES"][key] = str(root / df)
    done: dict[str, Any] = {}
    for name in CONSTANT_NAMES:
        value = data[name]
        current = getattr(module, name, None)
        if isinstance(value, dict):
            if name == "MIN_MAX_VALUES":
                value = {k: tuple(v) for k, v in value.items()}
            if isinstance(current, dict):
                current.update(copy.deepcopy(value))
                done[name] = current
                continue
            value = copy.deepcopy(value)
        elif isinstance(value, list):
            value = tuple(value)
        setattr(module, name, value)
        done[name] = value
    return done
