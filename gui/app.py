"""The control app's main window and ``zaprig gui``.

The window wires the panels together and owns the session's life cycle:
Start builds an :class:`~rig.engine.Engine` from the panels and runs it on a
worker thread (:class:`~gui._engine_thread.EngineRunner`); three GUI-thread
timers then watch it — live plots at ~30 Hz from the engine's hand-off queue,
the session bar at 5 Hz from ``Engine.status()``, and the event log (and
volumes, if the engine does not hand them over) once a second from the session
file itself. Nothing here can make the engine wait.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from gui._engine_thread import EngineRunner
from gui._qt import QtCore, QtGui, QtWidgets
from gui._session_file import LiveSessionFile
from gui.panels import EventLog, FishPanel, LivePanel, ProtocolPanel, RigPanel, SessionBar
from gui.panels.session_bar import RateMeter
from rig.config import RigConfig
from rig.engine import Engine
from rig.errors import SessionFileError, ZaprigError
from stimuli.protocol import Protocol

__all__ = ["MainWindow", "cli_main"]

LIVE_MS = 33  # <= 30 Hz of plot updates
STATUS_MS = 200
FILE_MS = 1000
#: Without a volume from the engine for this long, volumes are read from the file instead.
VOLUME_FALLBACK_S = 2.0

#: Words in a fault message that point at a device's status light.
_FAULT_DEVICE = (
    ("camera", "microscope"),
    ("microscope", "microscope"),
    ("daq", "daq"),
    ("laser", "laser"),
    ("render", "display"),
    ("display", "display"),
    ("writer", "writer"),
    ("disk", "writer"),
)


class MainWindow(QtWidgets.QMainWindow):
    """Set up a session, run it, watch it, and end it cleanly."""

    def __init__(self, config: Path | None = None, out_dir: Path | str = "sessions") -> None:
        super().__init__()
        self.setWindowTitle("zaprig — closed-loop VR light-sheet rig")
        self.runner = EngineRunner(parent=self)
        self.session_file: LiveSessionFile | None = None
        self._close_after_stop = False
        self._last_volume_from_engine = -1.0
        self._rate = RateMeter()
        self._disk_free: int | None = None
        self._disk_at = -1e9

        self.event_log = EventLog()
        self.session_bar = SessionBar()
        self.live = LivePanel()
        self.protocol_panel = ProtocolPanel()
        self.fish_panel = FishPanel(Path(out_dir))
        self.rig_panel = RigPanel(config, self._preflight_inputs)

        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self.rig_panel, "Rig")
        tabs.addTab(self.protocol_panel, "Protocol")
        tabs.addTab(self.fish_panel, "Fish && session")
        self.setup_tabs = tabs
        upper = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        upper.addWidget(tabs)
        upper.addWidget(self.live)
        upper.setStretchFactor(0, 0)
        upper.setStretchFactor(1, 1)
        upper.setSizes([420, 1000])
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(self.event_log)
        body.setStretchFactor(0, 4)
        body.setStretchFactor(1, 1)
        body.setSizes([700, 180])
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.session_bar)
        lay.addWidget(body, 1)
        self.setCentralWidget(central)
        self.resize(1500, 950)

        for src in (self.rig_panel, self.protocol_panel):
            src.message.connect(self._app_message)
        self.rig_panel.config_changed.connect(self._rig_changed)
        self.protocol_panel.protocol_changed.connect(lambda _p: self._update_buttons())
        self.session_bar.start_clicked.connect(self.start_session)
        self.session_bar.stop_clicked.connect(self.stop_session)
        self.session_bar.abort_clicked.connect(self.abort_session)
        self.event_log.note_entered.connect(self.add_note)
        self.runner.armed.connect(self._armed)
        self.runner.failed.connect(self._failed)
        self.runner.finished.connect(self._finished)

        self.live_timer = QtCore.QTimer(self, interval=LIVE_MS)
        self.live_timer.timeout.connect(self._tick_live)
        self.status_timer = QtCore.QTimer(self, interval=STATUS_MS)
        self.status_timer.timeout.connect(self._tick_status)
        self.file_timer = QtCore.QTimer(self, interval=FILE_MS)
        self.file_timer.timeout.connect(self._tick_file)

        if self.rig_panel.rig is not None:
            self._rig_changed(self.rig_panel.rig)
        self._update_buttons()

    # -- setup ------------------------------------------------------------------------------
    def _rig_changed(self, rig: RigConfig) -> None:
        self.protocol_panel.set_rig(rig)
        self.live.set_rig(rig)
        virtual_ok = rig.daq.backend == "sim"
        item = self.session_bar.clock.model().item(1)  # type: ignore[union-attr]
        item.setEnabled(virtual_ok)
        if not virtual_ok:
            self.session_bar.clock.setCurrentIndex(0)
        self._update_buttons()

    def _preflight_inputs(self) -> tuple[RigConfig, Protocol, Path]:
        rig, proto = self.rig_panel.rig, self.protocol_panel.protocol
        if rig is None or proto is None:
            raise ZaprigError("choose a valid rig config and protocol first")
        return rig, proto, self.fish_panel.out_dir

    def _update_buttons(self) -> None:
        running = self.runner.running
        can_start = self.rig_panel.rig is not None and self.protocol_panel.protocol is not None
        self.session_bar.set_running(running, can_start)
        self.event_log.set_notes_enabled(running)
        for panel in (self.rig_panel, self.protocol_panel, self.fish_panel):
            panel.set_running(running)

    def _app_message(self, kind: str, text: str) -> None:
        self.event_log.add(None, "app" if kind == "info" else kind, text)

    # -- session control --------------------------------------------------------------------
    def start_session(self) -> None:
        rig, proto = self.rig_panel.rig, self.protocol_panel.protocol
        if rig is None or proto is None or self.runner.running:
            return
        try:
            engine = Engine(
                rig,
                proto,
                out_dir=self.fish_panel.out_dir,
                clock=self.session_bar.clock_kind,
                seed=self.fish_panel.seed.value(),
                fish=self.fish_panel.fish(),
                rig_source=str(self.rig_panel.config_path),
            )
        except ZaprigError as e:
            self._app_message("error", f"cannot start: {e}")
            return
        self.live.new_session(proto)
        self.session_file = None
        self._rate.clear()
        self._last_volume_from_engine = -1.0
        self._app_message(
            "info",
            f"starting {proto.name}: {engine.timeline.n_volumes} volumes, "
            f"{engine.timeline.duration_s:.1f} s, {self.session_bar.clock_kind} clock",
        )
        self.session_bar.show_state("arming…")
        self.runner.start(engine)
        self._update_buttons()
        for timer in (self.live_timer, self.status_timer, self.file_timer):
            timer.start()

    def stop_session(self) -> None:
        c = self.runner.stop_after_condition()
        eng = self.runner.engine
        if c is not None and eng is not None:
            name = eng.protocol.conditions[c].name
            self._app_message("info", f"stopping at the end of condition {c} ({name})")

    def abort_session(self, reason: str = "aborted by the user") -> None:
        if self.runner.running:
            self._app_message("warning", f"aborting: {reason}")
            self.runner.request_stop(reason)

    def add_note(self, text: str) -> None:
        try:
            self.runner.add_note(text)
        except ZaprigError as e:
            self._app_message("error", str(e))
            return
        self.statusBar().showMessage(f"note added: {text}", 4000)

    # -- runner signals ---------------------------------------------------------------------
    def _armed(self, path: str) -> None:
        self.session_file = LiveSessionFile(path)
        self.rig_panel.set_running(True)
        self._app_message("info", f"recording to {path}")

    def _failed(self, message: str) -> None:
        self._app_message("error", message)

    def _finished(self, state: str) -> None:
        self.runner.wait()
        self._tick_live()
        self._tick_status()
        # what was recorded after the last live read
        self._tick_file(final=True)
        for timer in (self.live_timer, self.status_timer, self.file_timer):
            timer.stop()
        eng = self.runner.engine
        where = f": {eng.path}" if eng is not None and eng.path else ""
        self._app_message("warning" if state != "complete" else "info", f"session {state}{where}")
        self.session_bar.show_state(state)
        self._update_buttons()
        self.rig_panel.set_running(False)
        if self._close_after_stop:
            self.close()

    # -- timers -----------------------------------------------------------------------------
    def _tick_live(self) -> None:
        batch = self.runner.take()
        if batch.volume is not None:
            self._last_volume_from_engine = time.monotonic()
        self.live.refresh(batch)

    def _tick_status(self) -> None:
        eng = self.runner.engine
        if eng is None:
            return
        st = eng.status()
        w = eng.writer
        rate = self._rate.add(w.bytes_written) if w is not None else 0.0
        now = time.monotonic()
        if now - self._disk_at > 1.0 and eng.out_dir.exists():
            self._disk_free = shutil.disk_usage(eng.out_dir).free
            self._disk_at = now
        stopping = self.runner.stopping_after
        names = [c.name for c in eng.protocol.conditions]
        self.session_bar.show_status(
            st,
            eng.rig.daq.sample_rate_hz,
            rate,
            self._disk_free,
            stopping_after=names[stopping] if stopping is not None else "",
        )
        self.protocol_panel.highlight(st.condition)

    def _tick_file(self, final: bool = False) -> None:
        f, eng = self.session_file, self.runner.engine
        if f is None or eng is None:
            return
        fs = eng.rig.daq.sample_rate_hz
        want_volume = final or time.monotonic() - self._last_volume_from_engine > VOLUME_FALLBACK_S
        try:
            got = f.read(want_volume)
        except SessionFileError as e:
            self._app_message("warning", str(e))
            return
        for ev in got.events:
            self.event_log.add(ev.sample / fs, ev.kind, ev.message)
            if ev.kind == "fault":
                self._fault_light(ev.message)
        if got.volume is not None:
            self.live.show_volume(*got.volume)

    def _fault_light(self, message: str) -> None:
        low = message.lower()
        for word, key in _FAULT_DEVICE:
            if word in low:
                self.rig_panel.set_device_state(key, "fault", message)
                return

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
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            event.ignore()
            if answer == QtWidgets.QMessageBox.StandardButton.Yes:
                self._close_after_stop = True
                self.abort_session("the control app was closed")
                self.session_bar.show_state("stopping…")
            return
        self.shutdown()
        event.accept()

    def shutdown(self, timeout_s: float = 120.0) -> None:
        """Stop everything and wait (used when the app quits with a session still running)."""
        if self.runner.running:
            self.runner.request_stop("the control app quit")
            self.runner.wait(timeout_s)
        for timer in (self.live_timer, self.status_timer, self.file_timer):
            timer.stop()
        self.rig_panel.shutdown()


def _check_display() -> None:
    if not sys.platform.startswith("linux"):
        return
    if not any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise ZaprigError(
            "zaprig gui: no display (DISPLAY and WAYLAND_DISPLAY are unset): run it in a desktop "
            "session, over `ssh -X`, or headless with QT_QPA_PLATFORM=offscreen"
        )


def cli_main(args: argparse.Namespace) -> int:
    """``zaprig gui [--config RIG.toml] [--out FOLDER]``."""
    _check_display()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("zaprig")
    win = MainWindow(config=getattr(args, "config", None), out_dir=getattr(args, "out", "sessions"))
    win.show()
    code = app.exec()
    win.shutdown()
    return int(code)
