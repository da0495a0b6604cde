"""``zaprig swims SESSION``: re-detect a session's swims offline and compare them with the online bouts.

The online bouts are what the closed loop acted on during the run
(``/behavior/bouts``); the offline ones come from the tail rows of
``/stimuli_and_ephys`` with the lab's re-analysis method. The table says how
well they agree, overall and per condition, and lists the bouts only one found.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from acquisition.swims import (
    BoutComparison,
    OfflineParams,
    OfflineSwimDetector,
    OfflineSwims,
    compare,
)
from rig.session import ROW, SessionReader

__all__ = ["cli_swims", "detect_session_bouts", "format_comparison", "read_online_bouts"]

TOLERANCE_S = 0.02
_LIST_MAX = 10


def detect_session_bouts(
    path: str | Path,
    params: OfflineParams | None = None,
    block_s: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> OfflineSwims:
    """Re-detect the swims of a session file from its tail rows (0, 1), a block at a time."""
    with SessionReader(path) as r:
        s = r.stream
        fs = r.sample_rate_hz
        n = r.n_samples
        det = OfflineSwimDetector(fs, params)
        step = max(1, round(block_s * fs))
        cols = [ROW["tail_left"], ROW["tail_right"]]
        for i in range(0, n, step):
            det.feed(s[i : min(n, i + step), cols[0] : cols[1] + 1])
            if progress is not None:
                progress(min(n, i + step), n)
        bouts = det.finish()
    return OfflineSwims(bouts, det.thresholds, fs, n)


def read_online_bouts(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The online bouts as (2, n): onsets and durations in samples, by onset; and the conditions."""
    with SessionReader(path) as r:
        bouts = r.table("behavior/bouts")
        conds = r.table("protocol/conditions")
    start = bouts["start_sample"].astype(np.int64)
    order = np.argsort(start, kind="stable")
    dur = bouts["stop_sample"].astype(np.int64) - start
    return np.stack([start[order], dur[order]]), conds


def _median_ms(durations: np.ndarray, fs: float) -> str:
    return f"{np.median(durations) / fs * 1e3:.0f}" if len(durations) else "-"


def format_comparison(
    path: Path,
    online: np.ndarray,
    off: OfflineSwims,
    cmp: BoutComparison,
    conditions: dict[str, np.ndarray],
    params: OfflineParams,
) -> str:
    """The report ``zaprig swims`` prints (``online`` is (2, n): onsets and durations)."""
    fs = off.sample_rate_hz
    on_start, on_dur = online
    off_start = off.bouts["start_sample"]
    off_dur = off.bouts["stop_sample"] - off_start
    th = off.thresholds
    lines = [
        f"session   {path}",
        f"signal    {off.samples / fs:.1f} s of tail signal at {fs:g} Hz",
        f"offline   power = smooth((x - smooth(x))^2), Gaussian {2 * params.kernel_half_width + 1}"
        f" samples (sigma {params.kernel_sigma:g})",
        f"          threshold = mode + {params.threshold_k:g} x spread in {params.window_s:g} s"
        f" windows; dead time {params.dead_time_samples} samples; bouts split at gaps >"
        f" {params.gap_s * 1e3:.0f} ms",
    ]
    if len(th):
        for side in ("left", "right"):
            t = th[f"threshold_{side}"]
            m = th[f"mode_{side}"]
            fin = np.isfinite(t) & np.isfinite(m) & (m > 0)
            if fin.any():
                lines.append(
                    f"          {side:<5} threshold {np.median(t[fin]):.3g} V^2 "
                    f"(range {t[fin].min():.3g}..{t[fin].max():.3g}; "
                    f"{np.median(t[fin] / m[fin]):.1f} x the noise mode)"
                )
            else:
                lines.append(f"          {side:<5} no signal: the channel is flat")
    tol_ms = cmp.tolerance_s * 1e3
    lines += [
        "",
        f"                           {'online':>8} {'offline':>8}",
        f"  bouts                    {cmp.n_online:>8} {cmp.n_offline:>8}",
        f"  matched (onset ±{tol_ms:.0f} ms)   {cmp.matched:>8} {cmp.matched:>8}",
        f"  found by one only        {cmp.online_only:>8} {cmp.offline_only:>8}",
        f"  median duration (ms)     {_median_ms(on_dur, fs):>8} {_median_ms(off_dur, fs):>8}",
        "",
        f"  agreement  {cmp.agreement * 100:.1f} %  (matched / distinct bouts; "
        f"{cmp.online_matched_fraction * 100:.1f} % of online, "
        f"{cmp.offline_matched_fraction * 100:.1f} % of offline)",
    ]
    if cmp.matched:
        s = cmp.onset_stats_ms()
        lines.append(
            f"  onset online - offline: median {s['median']:+.1f} ms, mean {s['mean']:+.1f} ms,"
            f" p95 |error| {s['p95_abs']:.1f} ms, max |error| {s['max_abs']:.1f} ms"
        )
    names = conditions.get("name", np.zeros(0))
    if len(names):
        lines += ["", "  #  condition     online  offline  matched"]
        matched_on = on_start[cmp.pairs[:, 0]] if cmp.matched else np.zeros(0)
        for i in range(len(names)):
            a, b = conditions["start_sample"][i], conditions["stop_sample"][i]

            def count(x: np.ndarray, a: int = a, b: int = b) -> int:
                return int(np.count_nonzero((x >= a) & (x < b)))

            lines.append(
                f"  {int(conditions['index'][i]):<2} {names[i]!s:<12} {count(on_start):>7}"
                f" {count(off_start):>8} {count(matched_on):>8}"
            )
    lines.append("")
    for label, starts, idx in (
        ("online", on_start, cmp.pairs[:, 0]),
        ("offline", off_start, cmp.pairs[:, 1]),
    ):
        only = np.setdiff1d(np.arange(len(starts)), idx)
        if not len(only):
            lines.append(f"  bouts only {label}: none")
            continue
        at = ", ".join(f"{starts[k] / fs:.2f}" for k in only[:_LIST_MAX])
        more = f" ... and {len(only) - _LIST_MAX} more" if len(only) > _LIST_MAX else ""
        lines.append(f"  bouts only {label} (onset, s): {at}{more}")
    return "\n".join(lines)


def cli_swims(args: argparse.Namespace) -> int:
    """Print the online/offline comparison for ``args.session``; 0 when the file was read."""
    path = Path(args.session)
    params = OfflineParams()
    online, conds = read_online_bouts(path)
    off = detect_session_bouts(path, params)
    if off.samples == 0:
        print(f"session   {path}\nno tail samples in the file: nothing to compare")
        return 0
    cmp = compare(online[0], off.bouts, TOLERANCE_S, off.sample_rate_hz)
    print(format_comparison(path, online, off, cmp, conds, params))
    return 0
