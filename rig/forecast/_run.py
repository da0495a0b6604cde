"""``zaprig forecast SESSION``: the benchmark's baselines on a session, as JSON (and a PNG).

The JSON (``forecast_session``'s return value) holds, per scored set, the mean and
linear baselines' MAE and MAE per predicted step, with the windows it came from; the
conditions too short for a window are listed with the length they need.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig.core.errors import ZaprigError
from rig.forecast._baselines import fit_linear, score
from rig.forecast._benchmark import CONTEXT, HORIZON, infer_sets, smallest_scale, too_short
from rig.forecast._series import load_series

__all__ = ["cli_forecast", "forecast_session", "protocol_scale", "scale_advice"]

SOURCE = "google-research/zapbench (data_utils.py, ts_forecasting/configs/{common,mean,linear}.py)"


def scale_advice(
    lengths: list[int],
    lengths_at: Callable[[float], list[int]],
    base_scale: float = 1.0,
    names: tuple[str, ...] | list[str] = (),
) -> str | None:
    """One line naming the conditions too short for the benchmark's windows and the smallest
    time scale that fits, or None when every condition fits.

    ``lengths_at(k)`` gives the conditions' lengths at ``k`` times the protocol these
    ``lengths`` came from, which ran at ``base_scale`` of its own length; the scale named
    is ``base_scale * k``.
    """
    short = too_short(lengths)
    if not short:
        return None
    guess = max(need / max(n, 1) for _c, n, need in short)
    k = smallest_scale(lengths_at, min(guess, 1000.0))
    said = ", ".join(
        f"{c} {names[c] if c < len(names) else ''} ({n} of {need} timesteps)".replace("  ", " ")
        for c, n, need in short
    )
    return (
        f"conditions too short for the benchmark's windows (context {CONTEXT}, horizon "
        f"{HORIZON}): {said}; the smallest time scale that fits is "
        f"{math.ceil(round(base_scale * k * 100, 6)) / 100:g}"
    )


def protocol_scale(name: str) -> float:
    """The factor a protocol was run at, from the name :meth:`Protocol.scaled` gives it
    (``"zapbench (x0.01)"``); 1 if it was not scaled."""
    m = re.search(r"\(x([0-9.eE+-]+)\)\s*$", name)
    return float(m.group(1)) if m else 1.0


def forecast_session(session: str | Path, traces: str | None = None) -> dict[str, Any]:
    """Score the mean and linear baselines on ``session`` (see the module's docstring)."""
    series = load_series(session, traces)
    v = series.values
    lengths = [b - a for a, b in zip(series.offsets[:-1], series.offsets[1:], strict=True)]
    sets = infer_sets(series.offsets)
    linear = None
    linear_error = None
    try:
        linear = fit_linear(v, series.offsets)
    except ValueError as e:
        linear_error = str(e)
    out_sets = []
    for s in sets:
        row: dict[str, Any] = {
            "name": s.name,
            "condition": s.condition,
            "condition_name": series.names[s.condition] if s.condition < len(series.names) else "",
            "split": s.split,
            "start": s.start,
            "windows": max(0, s.windows),
        }
        row["mean"] = score(v, s)
        row["linear"] = score(v, s, linear) if linear is not None else None
        out_sets.append(row)
    scored = [r for r in out_sets if r["mean"]["mae"] is not None]
    return {
        "session": str(session),
        "definitions": SOURCE,
        "traces": series.source,
        "timesteps": len(v),
        "neurons": int(v.shape[1]),
        "context": CONTEXT,
        "horizon": HORIZON,
        "condition_offsets": list(series.offsets),
        "condition_names": list(series.names),
        "sets": out_sets,
        "mean_mae": _avg([r["mean"]["mae"] for r in scored]),
        "linear_mae": _avg([r["linear"]["mae"] for r in scored if r["linear"]]),
        "linear_model": None
        if linear is None
        else {
            "weights": linear.weights.tolist(),
            "bias": linear.bias.tolist(),
            "fit_rows": linear.rows,
            "loss": "MAE (L1), fitted by iteratively reweighted least squares",
        },
        "linear_error": linear_error,
        "too_short": [
            {"condition": c, "timesteps": n, "needed": need} for c, n, need in too_short(lengths)
        ],
    }


def _avg(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(sum(vals) / len(vals)) if vals else None


def plot_forecast(result: dict[str, Any], png: Path) -> None:
    """MAE per predicted step for each scored set, both baselines (matplotlib, optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    cmap = plt.get_cmap("tab10")
    for i, r in enumerate(result["sets"]):
        if r["mean"]["mae"] is None:
            continue
        steps = range(1, len(r["mean"]["mae_step"]) + 1)
        label = f"{r['condition']} {r['condition_name']}"
        ax.plot(steps, r["mean"]["mae_step"], color=cmap(i % 10), ls="--", lw=1)
        if r["linear"] and r["linear"]["mae"] is not None:
            ax.plot(steps, r["linear"]["mae_step"], color=cmap(i % 10), lw=1.5, label=label)
        else:
            ax.plot([], [], color=cmap(i % 10), label=label)
    ax.set_xlabel("predicted timestep")
    ax.set_ylabel(f"MAE ({result['traces']} traces)")
    ax.set_title("mean baseline (dashed) and linear baseline (solid), per condition")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _report_folder(session: Path) -> Path:
    """``zaprig report``'s default folder (rig/report ``default_folder``), without importing
    rig.report (it loads matplotlib)."""
    return session.with_name(f"{session.stem}_report")


def cli_forecast(args: argparse.Namespace) -> int:
    """``zaprig forecast``: 0 when at least one set was scored, 1 when none could be."""
    from rig.core.lock import refuse_if_live

    session = Path(args.session)
    refuse_if_live(session, "forecasting")
    result = forecast_session(session, args.traces)
    out = args.out or session.with_name(session.stem + "_forecast.json")
    try:
        Path(out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise ZaprigError(f"{out}: cannot write the forecast JSON: {e.strerror or e}") from None
    print(
        f"zaprig: forecast of {session.name}: {result['neurons']} neurons ({result['traces']} "
        f"traces), context {CONTEXT}, horizon {HORIZON}"
    )
    print("  set                    windows   mean MAE  linear MAE")
    for r in result["sets"]:
        m, lin = r["mean"]["mae"], (r["linear"] or {}).get("mae")
        print(
            f"  {r['name']:<22} {r['mean']['windows_scored']:>7}   "
            f"{'-' if m is None else f'{m:.4f}':>8}  {'-' if lin is None else f'{lin:.4f}':>10}"
        )
    for t in result["too_short"]:
        print(
            f"  note: condition {t['condition']} has {t['timesteps']} timesteps, needs {t['needed']}"
        )
    if result["linear_error"]:
        print(f"  note: linear baseline not fitted: {result['linear_error']}")
    print(f"  written to {out}")
    # the plot goes into the session's report folder (zaprig report shows it) unless --png
    png = Path(args.png) if args.png is not None else _report_folder(session) / "forecast.png"
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        plot_forecast(result, png)
    except ImportError:
        print("  note: no plot: matplotlib is not installed (pip install matplotlib)")
    except OSError as e:
        raise ZaprigError(f"{png}: cannot save the plot: {e.strerror or e}") from None
    else:
        where = "" if args.png is not None else " (zaprig report shows it)"
        print(f"  plot saved to {png}{where}")
    return 0 if result["mean_mae"] is not None else 1
