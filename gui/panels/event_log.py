"""The event log: what the session recorded in ``/events`` (and what the app itself says),
with an entry for notes: into the running session at the current DAQ sample, or,
before and after a run, kept as session notes by the main window.

The log can be filtered to one kind (the session bar's warning and fault counts
do this when clicked), so a fault is found among thousands of protocol lines.
"""

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
        vh, hh = self.table.verticalHeader(), self.table.horizontalHeader()
        assert vh is not None and hh is not None
        vh.setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        hh.setStretchLastSection(True)
        self.table.setColumnWidth(0, 70)
        self.table.setColumnWidth(1, 70)
        self.table.setWordWrap(False)
        self.note_edit = QtWidgets.QLineEdit()
        self.note_edit.setPlaceholderText(
            "note for the session file (Enter to add; before or after a run: a session note)"
        )
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
        self.filter_label = QtWidgets.QLabel()
        self.filter_label.setStyleSheet("color: #7048e8;")
        self.show_all_button = QtWidgets.QPushButton("Show all")
        self.show_all_button.clicked.connect(lambda: self.set_filter(None))
        frow = QtWidgets.QHBoxLayout()
        frow.addWidget(self.filter_label, 1)
        frow.addWidget(self.show_all_button)
        self.filter_row = QtWidgets.QWidget()
        self.filter_row.setLayout(frow)
        frow.setContentsMargins(0, 0, 0, 0)
        self.filter_row.hide()
        lay.insertWidget(0, self.filter_row)
        #: Whose events these are (the running session's file, or a past one).
        self.source_label = QtWidgets.QLabel("events: no session")
        self.source_label.setStyleSheet("color: #555555;")
        lay.insertWidget(0, self.source_label)
        self.counts: dict[str, int] = {}
        self.kind_filter: str | None = None
        self.set_notes_enabled(True)

    def set_source(self, text: str) -> None:
        self.source_label.setText(f"events: {text}")

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
        if self.kind_filter is not None:
            self.table.setRowHidden(r, kind != self.kind_filter)
        self.table.scrollToBottom()

    def set_filter(self, kind: str | None) -> None:
        """Show only rows of ``kind`` (None: all); the same kind again shows all."""
        if kind is not None and kind == self.kind_filter:
            kind = None
        self.kind_filter = kind
        for r in range(self.table.rowCount()):
            k = self.table.item(r, 1)
            self.table.setRowHidden(r, kind is not None and (k is None or k.text() != kind))
        self.filter_row.setVisible(kind is not None)
        self.filter_label.setText(f"showing {kind}s only" if kind else "")
        self.table.scrollToBottom()

    def visible_messages(self) -> list[str]:
        """The messages not hidden by the filter, oldest first."""
        out = []
        for r in range(self.table.rowCount()):
            m = self.table.item(r, 2)
            if m is not None and not self.table.isRowHidden(r):
                out.append(m.text())
        return out

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.counts.clear()

    def messages(self, kind: str | None = None) -> list[str]:
        """The messages shown (of one kind), oldest first."""
        out = []
        for r in range(self.table.rowCount()):
            k = self.table.item(r, 1)
            m = self.table.item(r, 2)
            if k is not None and m is not None and (kind is None or k.text() == kind):
                out.append(m.text())
        return out
