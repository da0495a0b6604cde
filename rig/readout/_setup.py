"""From ``[readout]`` to what the engine needs: settings, the labels, the ``/live`` layout.

Everything that can be wrong with the labels (a missing or misshapen label file)
is found here, when the engine arms, before the session file or any device exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rig.core.config import RigConfig
from rig.readout._compute import LabelIndex
from rig.readout._labels import disk_index, load_label_file
from rig.readout._state import ReadoutSettings

__all__ = ["live_layout", "prepare_labels", "readout_settings"]


def readout_settings(rig: RigConfig) -> ReadoutSettings:
    r = rig.readout
    m = rig.microscope
    return ReadoutSettings(
        shape_zyx=m.shape_zyx,
        voxel_size_um=tuple(float(v) for v in m.voxel_size_um),  # type: ignore[arg-type]
        config=r,
    )


def prepare_labels(
    rig: RigConfig, positions_zyx: np.ndarray | None, label_file: str | None = None
) -> LabelIndex | None:
    """The labels known before the run (None: detected on the reference volume).

    ``label_file`` (the session's own, e.g. ``zaprig run --labels``) overrides the rig's.
    """
    r = rig.readout
    shape = rig.microscope.shape_zyx
    source = "file" if label_file else r.labels
    if source == "detect":
        return None
    if source == "file":
        spec = label_file or r.label_file
        assert spec is not None  # the config's validator insists
        return LabelIndex.from_labels(load_label_file(spec, shape), r.max_voxels_per_label)
    if positions_zyx is None:
        from rig.core.errors import ConfigError

        raise ConfigError(
            "readout.labels = 'ground_truth' needs the simulated brain: use 'file' or 'detect'"
        )
    return disk_index(positions_zyx, shape, r.label_radius_px, r.max_voxels_per_label)


def live_layout(
    rig: RigConfig, labels: LabelIndex | None, label_file: str | None = None
) -> dict[str, Any]:
    """Keyword arguments of :func:`rig.core.live_layout.create_live_group`."""
    r = rig.readout
    source = "file" if label_file else r.labels
    return {
        "planes": rig.microscope.planes_per_volume,
        "n_labels": labels.n if labels is not None else None,
        "attrs": {
            "reference_volumes": r.reference_volumes,
            "downsample_xy": r.downsample,
            "baseline_volumes": r.baseline_volumes,
            "baseline_percentile": r.baseline_percentile,
            "baseline_block_volumes": r.baseline_block_volumes,
            "background": r.background,
            "annulus_px": list(r.annulus_px),
            "background_factor": r.background_factor,
            "drift_warn_um": r.drift_warn_um,
            "forecast_horizon": r.forecast_horizon,
            "forecast_components": r.forecast_components,
            "forecast_history": r.forecast_history,
            "brightness": "plane median over the tissue less the dark level, over the "
            "reference's; NaN for a plane without tissue",
            "traces_dff": "dF/F of the label's mean less the dark level and "
            "background_factor x its ring's signal (rig/readout/_background.py), over a "
            "low percentile of block means over baseline_volumes (rig.readout.Baseline)",
            "rows": "one per read-out volume from the last reference volume on; "
            "/live/volume says which timestep",
        },
        "label_attrs": {
            "source": source,
            "label_file": str(label_file or r.label_file or ""),
            "radius_px": r.label_radius_px,
            "max_voxels_per_label": r.max_voxels_per_label,
            "ids": "ground_truth: label k is /ground_truth neuron k - 1",
        },
        "ids": labels.ids if labels is not None else None,
        "positions_zyx": labels.positions_zyx if labels is not None else None,
    }
