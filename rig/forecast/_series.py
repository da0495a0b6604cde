"""The activity series a forecast is scored on: (timesteps, neurons) float32 from a session.

The benchmark forecasts ΔF/F (zapbench/constants.py ``MIN_MAX_VALUES`` is -0.25..1.5
of it). A session holds two candidates: the live readout's ΔF/F (``/live/traces_dff``,
one row per read-out volume) and, on a simulated rig, the virtual neurons' ground-truth
fluorescence (``/ground_truth/traces``). ``live`` is the default where it exists: it
is what an experimenter's rig measures. Timesteps the readout has no row for (the
reference volumes, skipped volumes) are NaN; windows that touch them are left out and
counted, as the benchmark's series has no gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rig.core.errors import SessionFileError
from rig.session import SessionReader

__all__ = ["Series", "load_series"]

SOURCES = ("live", "ground_truth")


@dataclass(frozen=True)
class Series:
    """A session's series and the condition offsets that cut it (like CONDITION_OFFSETS)."""

    values: np.ndarray  # (t, f) float32, NaN where there is no value
    offsets: tuple[int, ...]
    names: tuple[str, ...]
    source: str
    volume_period_s: float


def load_series(session: str | Path, source: str | None = None) -> Series:
    """Read the series named ``source`` (``live``, ``ground_truth``; None: live if present)."""
    path = Path(session)
    with SessionReader(path) as r:
        f = r.file
        have = [s for s, key in (("live", "live/traces_dff"), ("ground_truth", "ground_truth/traces"))
                if key in f]  # fmt: skip
        if source is None:
            if not have:
                raise SessionFileError(
                    f"{path}: no traces to forecast: neither /live/traces_dff nor "
                    "/ground_truth/traces (record with [readout] enabled = true)"
                )
            source = have[0]
        if source not in SOURCES:
            raise SessionFileError(f"{path}: --traces must be one of {SOURCES}, not {source!r}")
        if source not in have:
            raise SessionFileError(
                f"{path}: --traces {source}: the file has no "
                f"{'/live/traces_dff' if source == 'live' else '/ground_truth/traces'} "
                f"(it has: {', '.join(have) or 'none'})"
            )
        offsets = tuple(int(x) for x in r.condition_offsets)
        names = tuple(r.condition_names)
        t_n = int(r.shape_tzyx[0])
        if source == "ground_truth":
            values = np.asarray(f["ground_truth/traces"][...], dtype=np.float32)
        else:
            rows = np.asarray(f["live/traces_dff"][...], dtype=np.float32)
            vol = np.asarray(f["live/volume"][...], dtype=np.int64)
            values = np.full((t_n, rows.shape[1]), np.nan, dtype=np.float32)
            ok = (vol >= 0) & (vol < t_n)
            values[vol[ok]] = rows[ok]
        period = float(r.volume_period_s)
    if not offsets or offsets[-1] > len(values):
        raise SessionFileError(
            f"{path}: conditions end at timestep {offsets[-1] if offsets else 0} but the "
            f"{source} series has {len(values)} timesteps"
        )
    return Series(values, offsets, names, source, period)
