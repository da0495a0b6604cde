"""Banners across the top of the window: things that must not be missed from any tab.

A fault banner stays until the person dismisses it or starts the next session
(a failed session must still be visible after the operator has looked away);
the time-scale banner follows the protocol panel's scale.
"""

from __future__ import annotations

from gui._qt import QtCore, QtWidgets

__all__ = ["Banner"]

_LEVELS = {
    "fault": "background: #d63939; color: white;",
    "warning": "background: #f59f00; color: black;",
    "info": "background: #dbe7fb; color: #10325f;",
}


class Banner(QtWidgets.QFrame):
    """One line (or a few) of coloured text with an optional Dismiss button."""

    dismissed = QtCore.pyqtSignal()

    def __init__(self, dismissable: bool, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_button = QtWidgets.QPushButton("Dismiss")
        self.dismiss_button.setVisible(dismissable)
        self.dismiss_button.clicked.connect(self.clear)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.dismiss_button)
        self.level = ""
        self.hide()

    def show_message(self, html: str, level: str = "fault") -> None:
        if level not in _LEVELS:
            raise ValueError(f"banner level {level!r}: use one of {sorted(_LEVELS)}")
        self.level = level
        self.setStyleSheet(f"QFrame {{ {_LEVELS[level]} }} QLabel {{ font-size: 11pt; }}")
        self.label.setText(html)
        self.show()

    def clear(self) -> None:
        was = self.isVisible()
        self.level = ""
        self.label.clear()
        self.hide()
        if was:
            self.dismissed.emit()

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
