"""The QC report's figures, drawn with matplotlib's object API onto Agg canvases.

``matplotlib.figure.Figure`` is used directly (never pyplot): no global figure
state and no GUI backend, so the report renders the same headless, in tests
and inside the Qt app's process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rig.report._data import LATE_FACTOR, ReportData

__all__ = ["PLOTS", "condition_colour", "draw_all"]

_PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
_DPI = 100


def condition_colour(c: int) -> str:
    return _PALETTE[c % len(_PALETTE)] if c >= 0 else "#888888"


def _shade_conditions(ax: Axes, d: ReportData, labels: bool = False) -> None:
    for c, (a, b) in enumerate(zip(d.condition_start_s, d.condition_stop_s, strict=True)):
        ax.axvspan(a, b, color=condition_colour(c), alpha=0.12, lw=0)
        if labels:
            ax.text(
                (a + b) / 2, 1.0, d.condition_names[c], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=7,
            )  # fmt: skip


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")


def _end_s(d: ReportData) -> float:
    return max(d.summary.duration_s, float(d.condition_stop_s.max(initial=0.0)), 1e-3)


def plot_timeline(d: ReportData) -> Figure:
    """The protocol's conditions on the DAQ clock, with volumes and bouts under them."""
    fig = Figure(figsize=(10, 2.4), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    for c, (a, b) in enumerate(zip(d.condition_start_s, d.condition_stop_s, strict=True)):
        ax.barh(2, b - a, left=a, height=0.8, color=condition_colour(c))
        ax.text((a + b) / 2, 2, d.condition_names[c], ha="center", va="center", fontsize=8)
    ax.eventplot(
        [d.volume_start_s, d.bout_start_s],
        lineoffsets=[1, 0],
        linelengths=0.7,
        linewidths=0.6,
        colors=["#555555", "#d62728"],
    )
    ax.set_yticks([0, 1, 2], ["bouts", "volumes", "conditions"])
    ax.set_xlim(0, _end_s(d))
    ax.set_ylim(-0.6, 2.6)
    ax.set_xlabel("time (s, DAQ clock)")
    ax.set_title(
        f"condition timeline: {len(d.condition_names)} conditions, "
        f"{len(d.volume_start_s)} volumes, {len(d.bout_start_s)} bouts"
    )
    return fig


def plot_swim_raster(d: ReportData) -> Figure:
    """Bouts as ticks, one row per condition, with time since the condition started."""
    fig = Figure(figsize=(10, 3.2), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    n = len(d.condition_names)
    if n == 0 or len(d.bout_start_s) == 0:
        _empty(ax, "no swim bouts" if n else "no conditions recorded")
    rows = []
    for c in range(n):
        k = d.bouts_in(c)
        rows.append(d.bout_start_s[k] - d.condition_start_s[c])
    if n:
        ax.eventplot(
            rows,
            lineoffsets=list(range(n)),
            linelengths=0.8,
            colors=[condition_colour(c) for c in range(n)],
        )
        ax.set_yticks(np.arange(n), d.condition_names)
        ax.set_ylim(n - 0.5, -0.5)
        longest = float((d.condition_stop_s - d.condition_start_s).max())
        ax.set_xlim(0, max(longest, 1e-3))
    ax.set_xlabel("time since the condition started (s)")
    ax.set_title("swim raster: each tick a bout")
    return fig


def plot_vigour(d: ReportData) -> Figure:
    """Bout rate and bout power per condition."""
    fig = Figure(figsize=(10, 3.4), dpi=_DPI, layout="constrained")
    ax_rate, ax_pow = fig.subplots(1, 2)
    n = len(d.condition_names)
    x = np.arange(n)
    rates = [
        len(d.bouts_in(c)) / d.condition_minutes(c) if d.condition_minutes(c) > 0 else 0.0
        for c in range(n)
    ]
    ax_rate.bar(x, rates, color=[condition_colour(c) for c in range(n)])
    ax_rate.set_ylabel("bouts / min")
    ax_rate.set_title("bout rate per condition")
    powers = [d.bout_power[d.bouts_in(c)] for c in range(n)]
    for c, p in enumerate(powers):
        if len(p):
            jitter = np.linspace(-0.25, 0.25, len(p)) if len(p) > 1 else np.zeros(1)
            ax_pow.scatter(c + jitter, p, s=10, color=condition_colour(c), alpha=0.7)
            ax_pow.hlines(np.median(p), c - 0.35, c + 0.35, color="k", lw=1.5)
    if not any(len(p) for p in powers):
        _empty(ax_pow, "no swim bouts")
    ax_pow.set_ylabel("bout power (mean of left, right)")
    ax_pow.set_title("vigour per condition (bar: median)")
    for ax in (ax_rate, ax_pow):
        ax.set_xticks(x, d.condition_names, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, max(n, 1) - 0.4)
    return fig


def plot_velocity_gain(d: ReportData) -> Figure:
    """The closed-loop velocity and gain rows (binned: mean, with the min-max band)."""
    fig = Figure(figsize=(10, 4.2), dpi=_DPI, layout="constrained")
    ax_v, ax_g = fig.subplots(2, 1, sharex=True)
    for ax, b, label in ((ax_v, d.velocity, "velocity (mm/s)"), (ax_g, d.gain, "gain")):
        _shade_conditions(ax, d, labels=ax is ax_v)
        if len(b.t):
            ax.fill_between(b.t, b.lo, b.hi, color="#4e79a7", alpha=0.3, lw=0)
            ax.plot(b.t, b.mean, color="#1f3b5c", lw=0.8)
        else:
            _empty(ax, "no samples")
        ax.set_ylabel(label)
    ax_g.set_xlabel("time (s, DAQ clock)")
    ax_g.set_xlim(0, _end_s(d))
    fig.suptitle("stimulus velocity and closed-loop gain over time")
    return fig


def plot_volume_timing(d: ReportData) -> Figure:
    """Interval to the previous volume minus the volume period, and drift from the schedule."""
    fig = Figure(figsize=(10, 3.4), dpi=_DPI, layout="constrained")
    ax_t, ax_h = fig.subplots(1, 2, width_ratios=[3, 1], sharey=True)
    j = d.volume_jitter_ms
    if len(j):
        v = np.arange(1, len(j) + 1)
        ax_t.plot(v, j, ".", ms=3, color="#4e79a7", label="interval - period")
        ax_t.plot(np.arange(len(d.volume_drift_ms)), d.volume_drift_ms, lw=1, color="#f28e2b",
                  label="drift from schedule")  # fmt: skip
        dv = d.dropped_volumes[(d.dropped_volumes > 0) & (d.dropped_volumes <= len(j))]
        if len(dv):
            ax_t.plot(dv, j[dv - 1], "x", color="#d62728", label="dropped volume")
        ax_t.legend(fontsize=7, loc="upper right")
        ax_h.hist(j, bins=min(50, max(5, len(j) // 4)), color="#4e79a7", orientation="horizontal")
        ax_h.set_xlabel("volumes")
    else:
        _empty(ax_t, "fewer than two volumes")
    one_sample = 1000.0 / d.fs
    ax_t.axhspan(-one_sample, one_sample, color="#59a14f", alpha=0.15, lw=0)
    ax_t.set_xlabel("volume")
    ax_t.set_ylabel("ms")
    ax_t.set_title(
        f"volume timing vs the {d.volume_period_s * 1000:.1f} ms period (green: ±1 DAQ sample)"
    )
    ax_h.set_title("interval - period (ms)")
    return fig


def plot_drops(d: ReportData) -> Figure:
    """When volumes were dropped and frames came late, on the session's time axis."""
    fig = Figure(figsize=(10, 2.2), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    _shade_conditions(ax, d, labels=True)
    vol_t = d.volume_start_s[d.dropped_volumes[d.dropped_volumes < len(d.volume_start_s)]]
    ax.eventplot(
        [vol_t, d.late_frame_s],
        lineoffsets=[1, 0],
        linelengths=0.7,
        colors=["#d62728", "#f28e2b"],
    )
    ax.set_yticks(
        [0, 1],
        [f"late frames ({len(d.late_frame_s)})", f"dropped volumes ({len(d.dropped_volumes)})"],
    )
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlim(0, _end_s(d))
    ax.set_xlabel("time (s, DAQ clock)")
    if not len(vol_t) and not len(d.late_frame_s):
        _empty(ax, "no dropped volumes, no late frames")
    return fig


def plot_frame_intervals(d: ReportData) -> Figure:
    """Histogram of the intervals between stimulus flips (log counts: outliers show)."""
    fig = Figure(figsize=(6, 3.2), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    iv = d.frame_intervals_ms
    if len(iv):
        lo, hi = float(iv.min()), float(iv.max())
        # flips land on DAQ samples: bins no narrower than one sample, centred on the values
        width = max(1000.0 / d.fs, (hi - lo) / 60.0)
        edges = np.arange(lo - width / 2, hi + width, width).tolist()
        ax.hist(iv, bins=edges, color="#4e79a7", log=True)
    else:
        _empty(ax, "fewer than two stimulus frames")
    ax.axvline(d.nominal_frame_ms, color="#59a14f", lw=1, label="nominal")
    ax.axvline(LATE_FACTOR * d.nominal_frame_ms, color="#d62728", lw=1, ls="--", label="late")
    ax.legend(fontsize=7)
    ax.set_xlabel("interval between flips (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"stimulus frame intervals ({d.refresh_hz:g} Hz display)")
    return fig


#: file name -> (title, figure maker), in the order the report shows them
PLOTS: dict[str, tuple[str, Callable[[ReportData], Figure]]] = {
    "timeline.png": ("Condition timeline", plot_timeline),
    "swim_raster.png": ("Swim raster", plot_swim_raster),
    "vigour.png": ("Swim vigour per condition", plot_vigour),
    "velocity_gain.png": ("Velocity and gain over time", plot_velocity_gain),
    "volume_timing.png": ("Volume timing jitter", plot_volume_timing),
    "drops.png": ("Dropped volumes and late frames", plot_drops),
    "frame_intervals.png": ("Stimulus frame intervals", plot_frame_intervals),
}


def draw_all(d: ReportData, out: Path) -> list[Path]:
    paths = []
    for name, (_title, make) in PLOTS.items():
        fig = make(d)
        p = out / name
        fig.savefig(p, format="png")
        paths.append(p)
    return paths
