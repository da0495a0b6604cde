"""The window's work per volume at the dataset's size, in CPU time (issue 29).

What the control app's window thread does when a volume and its readout row
arrive, at the full size of ``hardware_configs/simulated-fullsize.toml`` (preview
volumes of 72 x 166 x 256 after the app's subsampling, 70,000 traced neurons,
the live forecaster on), measured per call with ``time.thread_time`` so other
processes on a shared machine do not inflate it. No engine runs: each volume is
made here and goes through the same shared-memory slot and the same reduction
of the readout row as in a session (``gui._shared_live.VolumeSlot``,
``gui._readout_rows.shown_row``); their cost, paid in the engine process, is
reported apart. The figures are the median of the 10 volumes up to 30, 100 and 300
volumes on screen (the readout tab keeps 300): the window's work must not grow with the
session. The volume axes move every 25 volumes; most volumes leave them as they are.

Printed per history length: the engine process's share (preview projection,
row reduction), and the window's: taking the preview from shared memory, the
live view's images, the readout tab's plots and rasters (with the forecast's),
its projection, and one repaint of each of the five views that change per volume (the live
images, the readout's plots and images, the forecast's plots and images).

Usage: python benchmarks/gui_volume_cost.py [--volumes 300] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks._markdown import write_block  # noqa: E402

CONFIG = REPO / "hardware_configs" / "simulated-fullsize.toml"
README = REPO / "benchmarks" / "README.md"
NEURONS = 70_000


def _cpu_ms(f: Callable[..., Any], *a: Any) -> tuple[float, Any]:
    c0 = time.thread_time()
    out = f(*a)
    return (time.thread_time() - c0) * 1e3, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=300)
    ap.add_argument("--markdown", action="store_true", help="rewrite the block in README.md")
    args = ap.parse_args(argv)

    from gui._qt import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    from gui._engine_process import live_shape
    from gui._readout_rows import shown_row
    from gui._shared_live import VolumeSlot
    from gui.app import MainWindow
    from rig.core.config import load_config
    from rig.engine import Engine
    from rig.forecast._online import ForecastRow
    from rig.readout import LiveRow
    from stimuli.protocol import load_protocol

    load = os.getloadavg()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="zaprig-gui-volume-") as tmp:
        settings = QtCore.QSettings(
            str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat
        )
        win = MainWindow(config=CONFIG, out_dir=tmp, settings=settings)
        win.resize(1920, 1080)
        win.view_tabs.setCurrentWidget(win.readout_panel)
        win.show()
        app.processEvents()
        rig = load_config(CONFIG)
        plan = Engine(rig, load_protocol(None), out_dir=tmp, clock="virtual")
        shape = live_shape(plan, 256, 512)
        engine_side, window_side = VolumeSlot(shape), None
        window_side = VolumeSlot(shape, engine_side.name)
        z, y, x = shape.volume_zyx
        live, ro = win.live, win.readout_panel
        ro.new_session(5.0, rig.microscope.volume_period_s, rig.microscope.shape_zyx)
        base = rng.integers(100, 400, size=(z, y, x), dtype=np.uint16)
        stats: dict[int, dict[str, float]] = {}
        per_volume: list[dict[str, float]] = []
        for t in range(args.volumes):
            vol = base + rng.integers(0, 3000, size=(z, y, x), dtype=np.uint16)
            dff = rng.normal(0.0, 0.3, NEURONS).astype(np.float32)
            row = LiveRow(
                volume=t,
                drift_um=rng.normal(size=3),
                brightness=np.ones(z, np.float32),
                traces_raw=dff + 100,
                traces_dff=dff,
                seconds=0.4,
                traces_f=dff + 90,
                forecast=ForecastRow(
                    next=dff[::-1].copy(),
                    mae=np.full(4, 0.2),
                    baseline_mae=np.full(4, 0.25),
                    surprise=1.0,
                    abs_error=np.abs(dff),
                ),
            )
            # the engine process: the preview and its projection, the row reduced
            put_ms, _ = _cpu_ms(engine_side.put, t, vol)
            reduce_ms, shown = _cpu_ms(shown_row, row)
            # the window
            take_ms, preview = _cpu_ms(window_side.take, live.plane_spin.value())
            live_ms, _ = _cpu_ms(live.show_preview, preview)
            rows_ms, _ = _cpu_ms(ro.add_rows, [shown])
            mip_ms, _ = _cpu_ms(ro.show_projection, preview.mip, preview.levels)
            c0 = time.thread_time()
            for w in (live.images, ro.plots, ro.images, ro.forecast.plots, ro.forecast.images):
                w.viewport().repaint()
            paint_ms = (time.thread_time() - c0) * 1e3
            per_volume.append(
                {
                    "put": put_ms,
                    "reduce": reduce_ms,
                    "take": take_ms,
                    "live": live_ms,
                    "rows": rows_ms,
                    "mip": mip_ms,
                    "paint": paint_ms,
                }
            )
        # the median of the 10 volumes up to each history length (one call is noisy)
        for h in sorted({30, 100, 300, args.volumes}):
            if h <= len(per_volume):
                last = per_volume[max(0, h - 10) : h]
                stats[h] = {k: float(np.median([v[k] for v in last])) for k in last[0]}
        window_side.close()
        engine_side.close()
        win.shutdown()
    lines = [
        f"Machine load (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores; CPU ms of one call (thread time), the median of the 10 volumes "
        f"up to each history length; preview {z} x {y} x {x}, {NEURONS} neurons, forecaster on.",
        "",
        "| volumes on screen | engine process: preview + projection | engine process: "
        "readout row reduced | window: take the preview | window: live images | window: "
        "readout + forecast plots | window: readout projection | window: repaint the five "
        "views | window total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for h, s in sorted(stats.items()):
        total = s["take"] + s["live"] + s["rows"] + s["mip"] + s["paint"]
        lines.append(
            f"| {h} | {s['put']:.1f} | {s['reduce']:.1f} | {s['take']:.2f} | {s['live']:.1f} | "
            f"{s['rows']:.1f} | {s['mip']:.1f} | {s['paint']:.1f} | {total:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        write_block(README, "gui_volume_cost", text)
        print(f"written to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
