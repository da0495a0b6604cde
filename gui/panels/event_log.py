"""The event log: what the session recorded in ``/events`` (and what the app itself says),
with an entry that adds a note to the running session at the current DAQ sample."""

from __future__ import annotations

from gui._qt import QtCore, QtGui, QtWidgets

__all__ = ["EventLog"]

_COLOURS = {
    "fault": "#d63939",
    "error": "#d63939",
    "warning": "#c27c00",
    "note": "#1c64d6",
    "protocol": "#222222",
    "info": "#666666",
    "app": "#7048e8",
}
#: Rows kept on screen; the file keeps them all.
MAX_ROWS = 5000


class EventLog(QtWidgets.QWidget):
    #: The user entered a note (its text).
    note_entered = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(("time", "kind", "message"))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 70)
        self.table.setColumnWidth(1, 70)
        self.table.setWordWrap(False)
        self.note_edit = QtWidgets.QLineEdit()
        self.note_edit.setPlaceholderText("note for the session file (Enter to add)")
        self.note_button = QtWidgets.QPushButton("Add note")
        self.note_edit.returnPressed.connect(self._submit)
        self.note_button.clicked.connect(self._submit)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.note_edit, 1)
        row.addWidget(self.note_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        self.counts: dict[str, int] = {}
        self.set_notes_enabled(False)

    def set_notes_enabled(self, enabled: bool) -> None:
        self.note_edit.setEnabled(enabled)
        self.note_button.setEnabled(enabled)

    def _submit(self) -> None:
        text = self.note_edit.text().strip()
        if text:
            self.note_entered.emit(text)
            self.note_edit.clear()

    def add(self, time_s: float | None, kind: str, message: str) -> None:
        """One row; ``time_s`` is session time (None for app messages outside a session)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        r = self.table.rowCount()
        if r >= MAX_ROWS:
            self.table.removeRow(0)
            r -= 1
        self.table.insertRow(r)
        colour = QtGui.QColor(_COLOURS.get(kind, "#222222"))
        stamp = f"{time_s:8.2f} s" if time_s is not None else "—"
        for c, text in enumerate((stamp, kind, message)):
            item = QtWidgets.QTableWidgetItem(text)
            item.setForeground(colour)
            if c == 2:
                item.setToolTip(message)
            self.table.setItem(r, c, item)
        self.table.scrollToBottom()

    def messages(self, kind: str | None = None) -> list[str]:
        """The messages shown (of one kind), oldest first."""
        out = []
        for r in range(self.table.rowCount()):
            k = self.table.item(r, 1)
            m = self.table.item(r, 2)
            if k is not None and m is not None and (kind is None or k.text() == kind):
                out.append(m.text())
        return out
