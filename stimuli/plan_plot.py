"""The protocol timeline as a picture, for ``zaprig plan --png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rig.core.optional import require
from stimuli.closed_loop import LoopState
from stimuli.render.frames import FrameMaker
from stimuli.schedule import Schedule

__all__ = ["plot_timeline"]


def plot_timeline(tl: Schedule, path: Path) -> None:
    """Condition blocks on top; the open-loop stimulus parameters (at 2 Hz) below."""
    require("matplotlib", "zaprig plan --png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs = tl.sample_rate_hz
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(12, 4), sharex=True, height_ratios=(1, 2))
    colours = plt.get_cmap("tab10")
    starts = tl.condition_start_samples / fs / 60
    for i, c in enumerate(tl.protocol.conditions):
        ax0.axvspan(starts[i], starts[i + 1], color=colours(i % 10), alpha=0.6)
        ax0.text((starts[i] + starts[i + 1]) / 2, 0.5, c.name, ha="center", va="center", fontsize=8)
    ax0.set_yticks([])
    ax0.set_title(f"{tl.protocol.name}: {tl.n_volumes} volumes, {tl.duration_s / 60:.1f} min")
    maker = FrameMaker(tl)
    samples = np.arange(tl.condition_start_samples[0], tl.end_sample, round(fs / 2))
    loop = LoopState()
    recs = [maker.make(i, int(s), loop) for i, s in enumerate(samples)]
    t = samples / fs / 60
    for name in ("luminance", "velocity", "angle_deg", "param3"):
        vals = np.array([float(r[name]) for r in recs])
        span = np.ptp(vals) or 1.0
        ax1.plot(t, (vals - vals.min()) / span, lw=0.8, label=name)
    ax1.set_xlabel("minutes")
    ax1.set_ylabel("normalised")
    ax1.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
