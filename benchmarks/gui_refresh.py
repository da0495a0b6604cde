"""How often the control app's live view refreshes during a real-time simulated session.

Runs the app offscreen (no display needed), starts the built-in protocol on the
simulated rig with the real-time clock, and for ``--seconds`` counts the live
plots' data refreshes and the plot widget's repaints, both per second, against
the 20 Hz target (ratio >= 1 passes). It also reports how far the engine fell
behind the wall clock, because a live view that starves the closed loop would
be no success. ``--screenshot`` saves the main window once the session has run
``--screenshot-at`` seconds (by default in the closed-loop gain block).

    python benchmarks/gui_refresh.py [--seconds 20] [--time-scale 0.01]
        [--screenshot docs/screenshot.png] [--screenshot-at 4.5] [--tab Protocol]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_HZ = 20.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window (wall time)")
    ap.add_argument("--time-scale", type=float, default=0.01, help="protocol time scale")
    ap.add_argument("--screenshot", type=Path, default=None, help="save the window here (PNG)")
    ap.add_argument(
        "--screenshot-at", type=float, default=4.5, help="session time of the screenshot (s)"
    )
    ap.add_argument(
        "--tab", choices=("Rig", "Protocol", "Fish"), default="Protocol", help="set-up tab shown"
    )
    ap.add_argument("--out", type=Path, default=None, help="session folder (default: a temp dir)")
    args = ap.parse_args(argv)

    import numpy as np

    from gui._qt import QtCore, QtWidgets
    from gui.app import MainWindow

    class PaintCounter(QtCore.QObject):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def eventFilter(self, obj: QtCore.QObject | None, event: QtCore.QEvent | None) -> bool:
            if event is not None and event.type() == QtCore.QEvent.Type.Paint:
                self.count += 1
            return False

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("zaprig-gui-benchmark")
    with tempfile.TemporaryDirectory(prefix="zaprig-gui-bench-") as tmp:
        out = args.out or Path(tmp)
        # a throw-away settings store: the benchmark neither reads nor changes the user's set-up
        settings = QtCore.QSettings(
            str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat
        )
        win = MainWindow(out_dir=out, settings=settings)
        # no one is there to answer the guard rails' questions (e.g. a long run with no preflight)
        win.confirm = lambda _title, _text: True  # type: ignore[method-assign]
        win.protocol_panel.scale.setValue(args.time_scale)
        win.fish_panel.fish_id.setText("demo fish")
        win.fish_panel.age_dpf.setValue(6)
        win.fish_panel.genotype.setText("elavl3:H2B-GCaMP7f")
        win.fish_panel.experimenter.setText("benchmark")
        win.setup_tabs.setCurrentIndex(("Rig", "Protocol", "Fish").index(args.tab))
        win.show()
        painter = PaintCounter()
        win.live.plots.viewport().installEventFilter(painter)
        refresh_times: list[float] = []
        win.live.refreshed.connect(lambda: refresh_times.append(time.perf_counter()))

        def spin(seconds: float, until: Callable[[], bool] | None = None) -> None:
            """Run the Qt event loop (sleeping in it, as app.exec() does) for a while."""
            loop = QtCore.QEventLoop()
            QtCore.QTimer.singleShot(round(seconds * 1000), loop.quit)
            check = QtCore.QTimer(interval=50)
            if until is not None:
                check.timeout.connect(lambda: until() and loop.quit())
                check.start()
            loop.exec()
            check.stop()

        win.start_session()
        spin(60.0, until=lambda: win.live.has_data)
        if not win.live.has_data:
            print("gui_refresh: the session did not start; see the event log:", file=sys.stderr)
            print("\n".join(win.event_log.messages()), file=sys.stderr)
            return 1
        eng = win.runner.engine
        assert eng is not None
        fs = eng.rig.daq.sample_rate_hz
        wall0 = time.monotonic()
        sample0 = eng.status().sample
        refresh_times.clear()
        paints0 = painter.count
        lag_max = 0.0
        end = wall0 + args.seconds
        shot = args.screenshot
        while time.monotonic() < end and win.runner.running:
            spin(0.25)
            st = eng.status()
            lag = (time.monotonic() - wall0) - (st.sample - sample0) / fs
            lag_max = max(lag_max, lag)
            if shot is not None and st.sample / fs >= args.screenshot_at:
                shot.parent.mkdir(parents=True, exist_ok=True)
                win.grab().save(str(shot))
                shot = None
        elapsed = time.monotonic() - wall0
        n = len(refresh_times)
        paints = painter.count - paints0
        rate = n / elapsed
        paint_rate = paints / elapsed
        gaps = np.diff(refresh_times) * 1e3 if n > 1 else np.zeros(1)
        st = eng.status()
        win.abort_session("benchmark done")
        spin(60.0, until=lambda: not win.runner.running)
        spin(0.2)
        win.shutdown()

        print(f"live view over {elapsed:.1f} s of a real-time simulated session")
        print(
            f"  data refreshes  {rate:6.1f} Hz   ratio to {TARGET_HZ:g} Hz: {rate / TARGET_HZ:.2f}"
        )
        print(
            f"  plot repaints   {paint_rate:6.1f} Hz   ratio to {TARGET_HZ:g} Hz: {paint_rate / TARGET_HZ:.2f}"
        )
        print(
            f"  refresh interval  median {np.median(gaps):.1f} ms, p95 {np.percentile(gaps, 95):.1f}"
            f" ms, max {gaps.max():.1f} ms"
        )
        print(
            f"  engine behind the wall clock: max {lag_max * 1e3:.0f} ms; chunks the live view "
            f"skipped: {win.live.dropped_chunks}; volumes {st.volumes_acquired}, "
            f"dropped frames {st.dropped_frames}, dropped volumes {st.dropped_volumes}"
        )
        if args.screenshot is not None and shot is None:
            print(f"  screenshot saved to {args.screenshot} at {args.screenshot_at:g} s")
        return 0 if rate >= TARGET_HZ else 1


if __name__ == "__main__":
    sys.exit(main())
