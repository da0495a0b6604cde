"""The control app's main window and ``zaprig gui``.

The window wires the panels together and owns the session's life cycle
(:class:`~gui._lifecycle.Phase`: idle → arming → running → [stopping] →
complete / stopped / aborted / failed, or viewing a past file). It is built in layers,
one module per job, each using only those beneath it:

- ``gui._window_layout``: the panels laid out, the window's state, its phase and status bar;
- ``gui._window_faults``: the fault banner;
- ``gui._window_session``: start / stop / abort / notes, the engine's signals, the timers;
- ``gui._window_past``: a past session opened read-only;
- this module: :class:`MainWindow` connects the panels' and the runner's signals to those
  layers' slots, makes the menus and shortcuts, and closes cleanly; and ``zaprig gui``.

The engine runs in its own process and the window only watches it: nothing here can make
the engine wait. Guard rails (questions before an anonymous or an unchecked long run,
Abort confirmed) go through :meth:`MainWindow.confirm`, one place that asks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gui._lifecycle import Phase
from gui._qt import QtCore, QtGui, QtWidgets
from gui._settings import restore_setup, save_setup
from gui._window_layout import No, Yes
from gui._window_past import PastSessions
from gui._window_session import LONG_RUN_S
from rig.core.errors import ZaprigError

__all__ = ["LONG_RUN_S", "SHORTCUTS", "MainWindow", "cli_main"]

LIVE_MS = 33  # <= 30 Hz of plot updates
STATUS_MS = 200
#: Keyboard shortcuts (Abort asks for confirmation like the button).
SHORTCUTS = {
    "start": "Ctrl+R",
    "stop": "Ctrl+E",
    "note": "Ctrl+N",
    "abort": "Ctrl+Shift+A",
    "open": "Ctrl+O",
}


class MainWindow(PastSessions):
    """Set up a session, run it, watch it, and end it cleanly."""

    def __init__(
        self,
        config: Path | None = None,
        out_dir: Path | str | None = None,
        settings: QtCore.QSettings | None = None,
    ) -> None:
        super().__init__(config, out_dir, settings)
        self._make_actions()

        for src in (self.rig_panel, self.protocol_panel):
            src.message.connect(self._app_message)
        self.rig_panel.config_changed.connect(self._rig_changed)
        self.rig_panel.preflight_done.connect(lambda _rows: self._setup_changed())
        self.protocol_panel.protocol_changed.connect(lambda _p: self._setup_changed())
        self.session_bar.start_clicked.connect(self.start_session)
        self.session_bar.stop_clicked.connect(self.stop_session)
        self.session_bar.abort_clicked.connect(lambda: self.abort_session())
        self.session_bar.filter_clicked.connect(self.event_log.set_filter)
        self.session_bar.filter_clicked.connect(
            lambda _k: self.view_tabs.setCurrentWidget(self.event_log)
        )
        self.event_log.note_entered.connect(self.add_note)
        self.runner.armed.connect(self._armed)
        self.runner.failed.connect(self._failed)
        self.runner.finished.connect(self._finished)

        self.live_timer = self._timer(LIVE_MS, self._tick_live)
        self.status_timer = self._timer(STATUS_MS, self._tick_status)

        if self.rig_panel.rig is not None:
            self._rig_changed(self.rig_panel.rig)
        restore_setup(self.settings, self, config=config is None, out_dir=out_dir is None)
        self._set_phase(Phase.IDLE)
        self._setup_changed()

    # -- actions and shortcuts -------------------------------------------------------------
    def _make_actions(self) -> None:
        menu = self.menuBar()
        assert menu is not None
        file_menu = menu.addMenu("&File")
        session_menu = menu.addMenu("&Session")
        assert file_menu is not None and session_menu is not None

        def action(menu_: QtWidgets.QMenu, text: str, key: str, slot: object) -> QtGui.QAction:
            a = QtGui.QAction(text, self)
            a.setShortcut(QtGui.QKeySequence(SHORTCUTS[key]))
            a.setShortcutContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
            a.triggered.connect(slot)  # type: ignore[arg-type]
            menu_.addAction(a)
            return a

        self.open_action = action(file_menu, "Open session…", "open", self._open_dialog)
        self.start_action = action(session_menu, "Start", "start", self.start_session)
        self.stop_action = action(session_menu, "Stop after this block", "stop", self.stop_session)
        self.note_action = action(session_menu, "Add a note", "note", self._focus_note)
        session_menu.addSeparator()
        self.abort_action = action(
            session_menu, "Abort now…", "abort", lambda: self.abort_session()
        )
        for b, key in (
            (self.session_bar.start_button, "start"),
            (self.session_bar.stop_button, "stop"),
            (self.session_bar.abort_button, "abort"),
        ):
            b.setToolTip(f"{b.toolTip()} [{SHORTCUTS[key]}]")

    def _focus_note(self) -> None:
        self.view_tabs.setCurrentWidget(self.event_log)
        self.event_log.note_edit.setFocus()

    # -- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QtGui.QCloseEvent | None) -> None:
        assert event is not None
        if self.runner.running:
            if self._close_after_stop:
                event.ignore()  # already stopping; closes when the session has ended
                return
            answer = QtWidgets.QMessageBox.question(
                self,
                "A session is recording",
                "A session is recording. Stop it now and close?\n\n"
                "The laser goes off and the session file is closed as 'aborted'.",
                Yes | No,
                No,
            )
            event.ignore()
            if answer == Yes:
                self._close_after_stop = True
                self.abort_session("the control app was closed", ask=False)
            return
        save_setup(self.settings, self)
        self.shutdown()
        event.accept()

    def shutdown(self, timeout_s: float = 120.0) -> None:
        """Stop everything and wait (used when the app quits with a session still running)."""
        if self.runner.running:
            self.runner.request_stop("the control app quit")
            self.runner.wait(timeout_s)
        self.runner.close()
        for timer in (self.live_timer, self.status_timer):
            timer.stop()
        self.rig_panel.shutdown()
        self.summary.shutdown()


def _check_display() -> None:
    if not sys.platform.startswith("linux"):
        return
    if not any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise ZaprigError(
            "zaprig gui: no display (DISPLAY and WAYLAND_DISPLAY are unset): run it in a desktop "
            "session, over `ssh -X`, or headless with QT_QPA_PLATFORM=offscreen"
        )


def cli_main(args: argparse.Namespace) -> int:
    """``zaprig gui [--config RIG.toml] [--out FOLDER]``; without them, the last set-up."""
    _check_display()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("zaprig")
    out = getattr(args, "out", None)
    # the parser's default folder means "not given": the remembered folder wins then
    win = MainWindow(
        config=getattr(args, "config", None),
        out_dir=None if out is None or Path(out) == Path("sessions") else out,
    )
    win.show()
    code = app.exec()
    win.shutdown()
    return int(code)
