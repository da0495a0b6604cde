"""The one place the GUI imports pyqtgraph, after pinning it to PyQt6.

pyqtgraph picks a Qt binding at import time from ``PYQTGRAPH_QT_LIB``; the app
is written against PyQt6, so the choice is made here before anything else can
import pyqtgraph with a different binding. Also small shared widgets.
"""

from __future__ import annotations

import os

os.environ["QT_API"] = "pyqt6"
os.environ["PYQTGRAPH_QT_LIB"] = "PyQt6"

# must follow the binding choice above
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

__all__ = ["LIGHT_COLOURS", "QtCore", "QtGui", "QtWidgets", "StatusLight", "pg"]

#: Status-light colours, by meaning.
LIGHT_COLOURS: dict[str, str] = {
    "unknown": "#8a8a8a",
    "ok": "#2fb344",
    "simulated": "#3b82f6",
    "warning": "#f59f00",
    "fault": "#d63939",
}


class StatusLight(QtWidgets.QLabel):
    """A small round light whose colour says a device's state; the tooltip says why."""

    def __init__(self, state: str = "unknown", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(14, 14)
        self.state = ""
        self.set_state(state)

    def set_state(self, state: str, why: str = "") -> None:
        if state not in LIGHT_COLOURS:
            raise ValueError(f"status light: unknown state {state!r} (use {sorted(LIGHT_COLOURS)})")
        self.state = state
        self.setStyleSheet(
            f"background-color: {LIGHT_COLOURS[state]}; border-radius: 7px; border: 1px solid #333;"
        )
        self.setToolTip(f"{state}: {why}" if why else state)
