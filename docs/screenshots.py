"""Take the README's screenshots of the control app: idle, running (at 1920 x 1080 and on a
1366 x 768 laptop screen, with the live brain readout on), failed (with the banner) and the
end-of-session summary, on the simulated rig, offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots.py [OUT_FOLDER]

Settings go to a temporary location (the user's remembered set-up is not touched);
session files go to a temporary folder and are deleted afterwards.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gui._qt import QtCore, QtWidgets
from gui.app import MainWindow
from rig.core.config import DEFAULT_CONFIG


def wait_until(app: QtWidgets.QApplication, cond: Callable[[], bool], timeout_s: float) -> None:
    """Let the event loop run until ``cond`` holds (a screenshot must show the state it names)."""
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the app did not reach the state to photograph")
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)


#: The screen sizes the layout is made for (issue 29).
FULL_HD, LAPTOP = (1920, 1080), (1366, 768)


def grab(app: QtWidgets.QApplication, w: MainWindow, size: tuple[int, int], path: Path) -> None:
    """The window at ``size`` (the layout settles first), saved as ``path``."""
    w.resize(*size)
    wait_until(app, lambda: True, 0.3)
    assert (w.width(), w.height()) == size, f"the window cannot be {size}: {w.size()}"
    w.grab().save(str(path))


def window(tmp: Path, config: Path | None = None) -> MainWindow:
    settings = QtCore.QSettings(str(tmp / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(config=config, out_dir=tmp / "sessions", settings=settings)
    w.resize(*FULL_HD)
    w.fish_panel.fish_id.setText("F2024-11-03-1")
    w.fish_panel.age_dpf.setValue(6)
    w.fish_panel.genotype.setText("elavl3:H2B-GCaMP7f")
    w.show()
    return w


def main(out: Path) -> None:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        readout = tmp / "readout.toml"
        readout.write_text(
            DEFAULT_CONFIG.read_text().replace(
                "[readout]\nenabled = false", "[readout]\nenabled = true"
            )
        )
        w = window(tmp, readout)
        w.protocol_panel.scale.setValue(0.01)
        w.setup_tabs.setCurrentWidget(w.protocol_panel)
        wait_until(app, lambda: True, 1)
        grab(app, w, FULL_HD, out / "screenshot-idle.png")

        w.start_session()
        wait_until(app, lambda: w.phase.value == "running" and w.live.volume_t >= 3, 60)
        wait_until(app, lambda: w.live.bout_count >= 1 and w.live.last_chunk_t > 12, 60)
        wait_until(app, lambda: w.readout_panel.rows >= 5, 60)
        w.add_note("fish looks healthy")
        wait_until(app, lambda: "fish looks healthy" in w.event_log.messages("note"), 10)
        w.view_tabs.setCurrentWidget(w.readout_panel)
        grab(app, w, FULL_HD, out / "screenshot.png")
        w.view_tabs.setCurrentWidget(w.event_log)
        grab(app, w, LAPTOP, out / "screenshot-1366x768.png")
        w.view_tabs.setCurrentWidget(w.readout_panel)
        grab(app, w, LAPTOP, out / "screenshot-1366x768-readout.png")
        w.stop_session()
        wait_until(app, lambda: w.phase.ended, 120)
        wait_until(app, lambda: w.live.volume_t >= 0, 5)
        grab(app, w, FULL_HD, out / "screenshot-summary.png")
        w.shutdown()
        w.close()

        faulty = tmp / "faulty.toml"
        faulty.write_text(DEFAULT_CONFIG.read_text() + "\n[faults]\nlaser_disconnects_at_s = 4\n")
        f = window(tmp, faulty)
        f.protocol_panel.scale.setValue(0.01)
        f.start_session()
        wait_until(app, lambda: f.phase.value == "failed", 60)
        f.setup_tabs.setCurrentWidget(f.rig_panel)
        grab(app, f, FULL_HD, out / "screenshot-failed.png")
        f.shutdown()
        f.close()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
