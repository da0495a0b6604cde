"""The Qt control app (PyQt6 + pyqtgraph): set up, run and watch a session.

``zaprig gui`` opens :class:`MainWindow`; the engine runs on a worker thread
and the window only watches it, so nothing the GUI does can stall the rig.
"""

from __future__ import annotations

from gui.app import MainWindow, cli_main

__all__ = ["MainWindow", "cli_main"]
