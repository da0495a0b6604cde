"""The end-of-session summary: how the session ended and what the file holds, from the file.

Everything here is read back from the closed session file (``rig.session.summarise``,
the same summary ``zaprig inspect`` prints), not from the app's counters, so
it is what the archive will say. "Open folder" shows the file in the desktop's
file manager; "Open report" writes the HTML quality-control report beside the
file (``zaprig report``) on a worker thread and opens it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gui._qt import QtCore, QtGui, QtWidgets
from rig.core.errors import ZaprigError
from rig.core.vocabulary import format_drops
from rig.session import SessionReader, SessionSummary, format_summary

__all__ = ["SessionFacts", "SummaryPanel", "read_facts"]


class SessionFacts:
    """The summary plus the drop counts the file keeps as attributes."""

    def __init__(self, summary: SessionSummary, planes_dropped: int) -> None:
        self.summary = summary
        self.planes_dropped = planes_dropped

    @property
    def faults(self) -> int:
        """Incidents: one per thing that went wrong (rig/core/vocabulary.py), as inspect counts."""
        return len(self.summary.incidents)

    @property
    def fault_events(self) -> int:
        return sum(1 for e in self.summary.events if e[1] == "fault")

    @property
    def warnings(self) -> int:
        return sum(1 for e in self.summary.events if e[1] == "warning")


def read_facts(path: str | Path) -> SessionFacts:
    """Read a session file's summary (raises ``ZaprigError`` with a reason if it cannot)."""
    with SessionReader(path) as r:
        s = r.summary()
        planes = r.planes_dropped
    return SessionFacts(s, planes)


class SummaryPanel(QtWidgets.QWidget):
    """Shows one session file's summary, with buttons to its folder and its report."""

    #: The report was written (its index.html path) or failed (an empty path and a message).
    report_done = QtCore.pyqtSignal(str, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        #: How URLs are opened; replaceable (tests record instead of launching a browser).
        self.open_url: Callable[[QtCore.QUrl], bool] = QtGui.QDesktopServices.openUrl
        self.path: Path | None = None
        self.facts: SessionFacts | None = None
        self._report_thread: threading.Thread | None = None

        self.title = QtWidgets.QLabel("No session yet.")
        self.title.setWordWrap(True)
        self.grid = QtWidgets.QFormLayout()
        self.fields: dict[str, QtWidgets.QLabel] = {}
        for key in ("status", "duration", "volumes", "drops", "bouts", "warnings", "file"):
            label = QtWidgets.QLabel("-")
            label.setWordWrap(True)
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            self.grid.addRow(key, label)
        self.open_folder_button = QtWidgets.QPushButton("Open folder")
        self.open_folder_button.clicked.connect(self.open_folder)
        self.open_report_button = QtWidgets.QPushButton("Open report")
        self.open_report_button.setToolTip("Write the HTML quality-control report and open it")
        self.open_report_button.clicked.connect(self.open_report)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.open_folder_button)
        buttons.addWidget(self.open_report_button)
        buttons.addStretch(1)
        self.details = QtWidgets.QPlainTextEdit()
        self.details.setReadOnly(True)
        # long fault lines wrap instead of running off the right edge
        self.details.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.details.setFont(
            QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        )
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addLayout(self.grid)
        lay.addLayout(buttons)
        lay.addWidget(self.details, 1)
        self.report_done.connect(self._report_done)
        self._set_buttons()

    def _set_buttons(self) -> None:
        have = self.path is not None
        self.open_folder_button.setEnabled(have)
        self.open_report_button.setEnabled(have and self._report_thread is None)

    def show_session(self, path: str | Path, heading: str = "Session summary") -> SessionFacts:
        """Read ``path`` and show it; raises ``ZaprigError`` if the file cannot be read."""
        facts = read_facts(path)
        s = facts.summary
        self.path = Path(path)
        self.facts = facts
        self.title.setText(f"<b>{heading}</b>: {s.protocol_name}")
        colour = {"complete": "#2fb344", "failed": "#d63939", "aborted": "#c27c00"}.get(
            s.status, "#1c64d6"
        )
        self.fields["status"].setText(f"<b style='color:{colour}'>{s.status}</b>")
        self.fields["duration"].setText(f"{s.duration_s:.1f} s ({s.started_at} → {s.ended_at})")
        self.fields["volumes"].setText(f"{s.volumes} of {s.volumes_expected} expected")
        self.fields["drops"].setText(
            format_drops(facts.planes_dropped, s.dropped_volumes, s.frames_dropped)
        )
        self.fields["bouts"].setText(str(s.bouts))
        events = (
            f" ({facts.fault_events} fault events)" if facts.fault_events != facts.faults else ""
        )
        self.fields["warnings"].setText(f"{facts.warnings} warnings, {facts.faults} faults{events}")
        self.fields["file"].setText(str(self.path))
        self.details.setPlainText(format_summary(s))
        self._set_buttons()
        return facts

    def show_failure(self, path: str | Path, message: str) -> None:
        """A file that could not be opened: nothing of the last one, the reason in full."""
        self.clear()
        self.title.setText(f"<b style='color:#d63939'>Cannot open</b> {Path(path)}")
        self.fields["status"].setText("<b style='color:#d63939'>not opened</b>")
        self.fields["file"].setText(str(path))
        self.details.setPlainText(message)

    def clear(self) -> None:
        self.path = None
        self.facts = None
        self.title.setText("No session yet.")
        for label in self.fields.values():
            label.setText("-")
        self.details.clear()
        self._set_buttons()

    def open_folder(self) -> None:
        if self.path is not None:
            self.open_url(QtCore.QUrl.fromLocalFile(str(self.path.resolve().parent)))

    def open_report(self) -> None:
        """Write the report on a worker thread (matplotlib takes seconds), then open it."""
        if self.path is None or self._report_thread is not None:
            return
        path = self.path

        def work() -> None:
            from rig.report import write_report

            try:
                html = str(write_report(path).html)
                self.report_done.emit(html, "")
            except ZaprigError as e:
                self.report_done.emit("", str(e))
            except Exception as e:  # a report bug must not take the app down; say what it was
                self.report_done.emit("", f"{type(e).__name__}: {e}")

        self.open_report_button.setText("Writing report…")
        self._report_thread = threading.Thread(target=work, name="zaprig-report")
        self._report_thread.start()
        self._set_buttons()

    def _report_done(self, html: str, error: str) -> None:
        if self._report_thread is not None:
            self._report_thread.join()
            self._report_thread = None
        self.open_report_button.setText("Open report")
        self._set_buttons()
        if html:
            self.open_url(QtCore.QUrl.fromLocalFile(html))
        else:
            QtWidgets.QMessageBox.warning(
                self, "Report", f"The report could not be written:\n{error}"
            )

    def shutdown(self) -> None:
        if self._report_thread is not None:
            self._report_thread.join()
            self._report_thread = None
