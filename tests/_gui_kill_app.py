"""The control app as a process of its own, for tests/test_gui_process.py to kill mid-session.

``python tests/_gui_kill_app.py OUT_DIR`` opens the app offscreen, starts the
dataset protocol (time scale 0.003, real-time clock) and, 1.5 s after the
session is armed, prints ``RUNNING <session file> <engine pid> <CPUs>`` (the CPUs the
window's thread may run on, comma-separated) and keeps running until it is killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(out: Path) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui._qt import QtCore, QtWidgets
    from gui.app import MainWindow

    app = QtWidgets.QApplication(sys.argv[:1])
    settings = QtCore.QSettings(str(out / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(out_dir=out, settings=settings)
    w.protocol_panel.scale.setValue(0.003)
    w.fish_panel.fish_id.setText("crash fish")
    w.show()

    def running(path: str) -> None:
        cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))  # this (the Qt) thread
        print(f"RUNNING {path} {w.runner.pid} {cpus}", flush=True)

    def armed(path: str) -> None:
        QtCore.QTimer.singleShot(1500, lambda: running(path))

    w.runner.armed.connect(armed)
    w.start_session()
    return int(app.exec())


if __name__ == "__main__":  # the engine process (spawned) imports this file too
    sys.exit(main(Path(sys.argv[1])))
