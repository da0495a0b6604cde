"""The Qt control app (PyQt6 + pyqtgraph): set up, run and watch a session.

``zaprig gui`` opens :class:`MainWindow`; the engine runs in its own process
(``gui._engine_process``) and the window only watches it, so nothing the GUI
does can stall the rig, and a crashed GUI does not end a recording.

The names below are imported on first use: the engine process imports
``gui._engine_child`` and must not load Qt.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MainWindow", "cli_main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gui import app

        return getattr(app, name)
    raise AttributeError(f"module 'gui' has no attribute {name!r}")
