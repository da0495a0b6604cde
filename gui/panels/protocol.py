"""The Protocol panel: the built-in dataset protocol or a file, a time scale, and its timeline.

The timeline table is the same plan ``zaprig plan`` prints (conditions, volumes,
durations on the chosen rig), so the experimenter sees how long the session
will take and how many volumes it will record before pressing Start.
"""

from __future__ import annotations

from pathlib import Path

from gui._qt import QtCore, QtWidgets
from rig.core.config import RigConfig
from rig.core.errors import ZaprigError
from stimuli.protocol import Protocol, load_protocol
from stimuli.schedule import Schedule

__all__ = ["ProtocolPanel"]

_COLUMNS = ("#", "condition", "start volume", "volumes", "duration", "steps")


def _fmt_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProtocolPanel(QtWidgets.QWidget):
    """Chooses the protocol; ``protocol`` is the scaled, validated one (None if invalid)."""

    #: The protocol or its scale changed (the new Protocol, or None when invalid).
    protocol_changed = QtCore.pyqtSignal(object)
    message = QtCore.pyqtSignal(str, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rig: RigConfig | None = None
        self.protocol: Protocol | None = None
        self.timeline: Schedule | None = None
        self._base: Protocol | None = None

        self.builtin = QtWidgets.QRadioButton("Built-in: the ZAPBench dataset protocol")
        self.from_file = QtWidgets.QRadioButton("File:")
        self.builtin.setChecked(True)
        self.file_edit = QtWidgets.QLineEdit()
        self.file_edit.setPlaceholderText("a protocol .toml or .py file")
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.scale = QtWidgets.QDoubleSpinBox()
        self.scale.setDecimals(4)
        self.scale.setRange(0.0001, 1000.0)
        self.scale.setSingleStep(0.01)
        self.scale.setValue(1.0)
        self.scale.setToolTip("Run every condition at this fraction of its length (0.01 = 1%)")
        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d63939;")
        self.error_label.hide()
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        vh, hh = self.table.verticalHeader(), self.table.horizontalHeader()
        assert vh is not None and hh is not None
        vh.setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        hh.setStretchLastSection(True)
        self.table.setWordWrap(False)

        file_row = QtWidgets.QHBoxLayout()
        file_row.addWidget(self.from_file)
        file_row.addWidget(self.file_edit, 1)
        file_row.addWidget(browse)
        scale_row = QtWidgets.QHBoxLayout()
        scale_row.addWidget(QtWidgets.QLabel("Time scale"))
        scale_row.addWidget(self.scale)
        scale_row.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.builtin)
        lay.addLayout(file_row)
        lay.addLayout(scale_row)
        lay.addWidget(self.error_label)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)

        self.builtin.toggled.connect(lambda _on: self.reload())
        self.file_edit.editingFinished.connect(self._file_edited)
        self.scale.valueChanged.connect(lambda _v: self._rescale())

    # -- inputs -----------------------------------------------------------------------------
    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Protocol", str(Path.cwd()), "Protocols (*.toml *.py)"
        )
        if path:
            self.set_file(Path(path))

    def _file_edited(self) -> None:
        if self.file_edit.text().strip():
            self._use_file()

    def set_file(self, path: Path) -> None:
        self.file_edit.setText(str(path))
        self._use_file()

    def _use_file(self) -> None:
        # checking the radio button reloads (through ``toggled``): reloading here too would
        # read the file twice and report a bad file's error twice
        if self.from_file.isChecked():
            self.reload()
        else:
            self.from_file.setChecked(True)

    def set_rig(self, rig: RigConfig) -> None:
        self.rig = rig
        if self._base is None:
            self.reload()
        else:
            self._rescale()

    def set_running(self, running: bool) -> None:
        for w in (self.builtin, self.from_file, self.file_edit, self.scale):
            w.setEnabled(not running)

    # -- building ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the chosen protocol again (a file may have been edited)."""
        source: str | None = None
        if self.from_file.isChecked():
            source = self.file_edit.text().strip()
            if not source:
                self._fail("choose a protocol file (.toml or .py) or the built-in protocol")
                return
        try:
            self._base = load_protocol(source)
        except ZaprigError as e:
            self._base = None
            self._fail(str(e))
            return
        self._rescale()

    def _rescale(self) -> None:
        if self._base is None:
            return
        try:
            proto = self._base.scaled(self.scale.value())
            tl = Schedule.build(proto, self.rig) if self.rig is not None else None
        except ZaprigError as e:
            self._fail(str(e))
            return
        self.error_label.hide()
        self.protocol = proto
        self.timeline = tl
        self._fill_table(proto, tl)
        self.protocol_changed.emit(proto)

    def _fail(self, text: str) -> None:
        self.protocol = None
        self.timeline = None
        self.error_label.setText(text)
        self.error_label.show()
        self.table.setRowCount(0)
        self.summary.setText("")
        self.message.emit("error", text)
        self.protocol_changed.emit(None)

    def _fill_table(self, proto: Protocol, tl: Schedule | None) -> None:
        if tl is None:
            self.table.setRowCount(0)
            self.summary.setText(f"<b>{proto.name}</b>: choose a rig to see its timeline")
            return
        rows = tl.summary_rows()
        self.table.setRowCount(len(rows))
        for r, (i, name, a, _b, n, secs, _n_steps) in enumerate(rows):
            steps = ", ".join(
                f"{s.label or s.stimulus.kind} ({s.duration_s:.3g} s)"
                for s in proto.conditions[i].steps
            )
            values = (str(i), name, str(a), str(n), _fmt_duration(secs), steps)
            for c, v in enumerate(values):
                item = QtWidgets.QTableWidgetItem(v)
                item.setToolTip(v)  # long step lists are cut off in the column
                if c in (0, 2, 3, 4):
                    item.setTextAlignment(
                        QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.summary.setText(
            f"<b>{proto.name}</b>: {tl.n_conditions} conditions, {tl.n_volumes} volumes, "
            f"{_fmt_duration(tl.duration_s)} ({tl.duration_s:.1f} s)"
        )

    def highlight(self, condition: int) -> None:
        """Mark the condition that is on now."""
        if 0 <= condition < self.table.rowCount():
            self.table.selectRow(condition)
