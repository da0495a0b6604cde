"""The main window's first layer: its widgets and layout, its state, and its phase.

The window is built in layers, one module per job, each using only the layers beneath it
(so a change to one job reads in one file, and nothing calls upwards):

1. this module: the panels and how they sit (set-up tabs left; live view over the event log
   and the brain readout right), the window's state, the status bar, and the set-up and
   phase bookkeeping every other layer calls (:meth:`WindowLayout._set_phase`,
   :meth:`WindowLayout._update_buttons`, :meth:`WindowLayout._app_message`);
2. ``gui._window_faults``: the fault banner (what failed, what to check, the laser);
3. ``gui._window_session``: start, stop, abort, notes, the engine's signals and the timers;
4. ``gui._window_past``: opening a past session read-only;
5. ``gui.app``: :class:`~gui.app.MainWindow` wires the layers' slots to the panels, the
   menus and shortcuts, closing, and ``zaprig gui``.

The split follows what changes together: the layout changes with the panels, the
life cycle with the engine, the banner with the fault vocabulary.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from gui._engine_process import EngineRunner
from gui._lifecycle import STYLES, Phase
from gui._qt import QtCore, QtGui, QtWidgets
from gui._session_file import LiveSessionFile
from gui._settings import default_settings
from gui.panels import (
    Banner,
    EventLog,
    FishPanel,
    LivePanel,
    ProtocolPanel,
    ReadoutPanel,
    RigPanel,
    SessionBar,
    SummaryPanel,
)
from gui.panels.session_bar import RateMeter
from rig.core.config import RigConfig
from rig.core.errors import ZaprigError
from rig.core.vocabulary import IncidentCounter
from rig.engine import Engine
from stimuli.protocol import Protocol

TITLE = "zaprig — closed-loop VR light-sheet rig"

Yes = QtWidgets.QMessageBox.StandardButton.Yes
No = QtWidgets.QMessageBox.StandardButton.No


class WindowLayout(QtWidgets.QMainWindow):
    """The panels laid out, the window's state, and its phase (see the module's layers)."""

    #: The life-cycle phase changed (its value, e.g. "running", "stopped").
    phase_changed = QtCore.pyqtSignal(str)
    #: Have the engine process time its loop (benchmarks/gui_fullsize.py reads
    #: ``runner.loop_lag_ms`` after the session).
    time_loop = False

    # made by gui.app.MainWindow (its menus and timers), used by every layer
    open_action: QtGui.QAction
    start_action: QtGui.QAction
    stop_action: QtGui.QAction
    note_action: QtGui.QAction
    abort_action: QtGui.QAction
    live_timer: QtCore.QTimer
    status_timer: QtCore.QTimer

    def __init__(
        self,
        config: Path | None = None,
        out_dir: Path | str | None = None,
        settings: QtCore.QSettings | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self.settings = settings if settings is not None else default_settings()
        self.runner = EngineRunner(parent=self)
        self.session_file: LiveSessionFile | None = None
        self.phase = Phase.IDLE
        self.last_path: Path | None = None
        self.viewing: Path | None = None
        self._pending_notes: list[str] = []
        self._close_after_stop = False
        self._rate = RateMeter()
        self._disk_free: int | None = None
        self._disk_at = -1e9
        self._first_fault = ""
        self._first_fault_source = ""
        self._incidents = IncidentCounter()

        self.event_log = EventLog()
        self.session_bar = SessionBar()
        self.fault_banner = Banner(dismissable=True)
        self.scale_banner = Banner(dismissable=False)
        self.live = LivePanel()
        self.protocol_panel = ProtocolPanel()
        self.fish_panel = FishPanel(Path(out_dir) if out_dir is not None else Path("sessions"))
        self.rig_panel = RigPanel(config, self._preflight_inputs)
        self.summary = SummaryPanel()
        self.readout_panel = ReadoutPanel()

        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self.rig_panel, "Rig")
        tabs.addTab(self.protocol_panel, "Protocol")
        tabs.addTab(self.fish_panel, "Fish && session")
        tabs.addTab(self.summary, "Summary")
        self.setup_tabs = tabs
        # the set-up on the left; on the right the live view over the event log and the
        # brain readout, which get the view's whole width (in the left column the readout's
        # titles and axes were cut). Splitters: every part can be resized, nothing is fixed.
        below = QtWidgets.QTabWidget()
        below.addTab(self.event_log, "Event log")
        below.addTab(self.readout_panel, "Brain readout")
        self.view_tabs = below
        views = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        views.addWidget(self.live)
        views.addWidget(below)
        views.setStretchFactor(0, 2)
        views.setStretchFactor(1, 1)
        views.setSizes([640, 320])
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        body.addWidget(tabs)
        body.addWidget(views)
        body.setStretchFactor(0, 0)
        body.setStretchFactor(1, 1)
        body.setSizes([420, 1000])
        self.body = body
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.fault_banner)
        lay.addWidget(self.scale_banner)
        lay.addWidget(self.session_bar)
        lay.addWidget(body, 1)
        self.setCentralWidget(central)
        self.resize(1500, 950)
        # the status bar exists from the start, so the first message does not shift the layout;
        # it then says the phase and what it means (_set_phase)
        self._status_bar().showMessage(STYLES[Phase.IDLE].help)

    def _timer(self, ms: int, tick: Callable[[], None]) -> QtCore.QTimer:
        timer = QtCore.QTimer(self)
        timer.setInterval(ms)
        timer.timeout.connect(tick)
        return timer

    def _status_bar(self) -> QtWidgets.QStatusBar:
        bar = self.statusBar()
        assert bar is not None  # a QMainWindow makes one on first use
        return bar

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (default No). The one place the app asks."""
        return QtWidgets.QMessageBox.question(self, title, text, Yes | No, No) == Yes

    # -- setup ------------------------------------------------------------------------------
    def _rig_changed(self, rig: RigConfig) -> None:
        self.protocol_panel.set_rig(rig)
        self.live.set_rig(rig)
        virtual_ok = rig.daq.backend == "sim"
        item = self.session_bar.clock.model().item(1)  # type: ignore[union-attr]
        item.setEnabled(virtual_ok)
        if not virtual_ok:
            self.session_bar.clock.setCurrentIndex(0)
        self._setup_changed()

    def _preflight_inputs(self) -> tuple[RigConfig, Protocol, Path]:
        rig, proto = self.rig_panel.rig, self.protocol_panel.protocol
        if rig is None or proto is None:
            raise ZaprigError("choose a valid rig config and protocol first")
        return rig, proto, self.fish_panel.out_dir

    def _setup_changed(self) -> None:
        """Protocol, scale or rig changed: preflight freshness, the scale banner, disk needs."""
        proto = self.protocol_panel.protocol
        self.rig_panel.check_stale(proto)
        scale = float(self.protocol_panel.scale.value())
        if abs(scale - 1.0) > 1e-9:
            self.scale_banner.show_message(
                f"<b>Time scale ×{scale:g}</b>: every condition runs at {scale * 100:g}% of its "
                "planned length. This is not a full-length session.",
                "warning",
            )
        else:
            self.scale_banner.clear()
        if not self.phase.active:
            self.session_bar.show_disk(*self._disk_estimate())
        self._update_buttons()

    def _disk_estimate(self) -> tuple[int | None, int | None]:
        rig, proto = self.rig_panel.rig, self.protocol_panel.protocol
        folder = self.fish_panel.out_dir.resolve()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return None, None
        if rig is None or proto is None:
            return free, None
        try:
            need = Engine(rig, proto, out_dir=folder, clock="virtual").planned_bytes()
        except ZaprigError:
            return free, None
        return free, need

    def _update_buttons(self) -> None:
        can_start = self.rig_panel.rig is not None and self.protocol_panel.protocol is not None
        self.session_bar.set_phase(self.phase, can_start, self._phase_detail())
        active = self.phase.active
        self.start_action.setEnabled(not active and can_start)
        self.stop_action.setEnabled(self.phase is Phase.RUNNING)
        self.abort_action.setEnabled(self.session_bar.abort_button.isEnabled())
        self.open_action.setEnabled(not active)
        self.event_log.set_notes_enabled(self.phase is not Phase.VIEWING)
        self.event_log.note_edit.setPlaceholderText(self._note_target())
        for panel in (self.protocol_panel, self.fish_panel):
            panel.set_running(active)

    def _note_target(self) -> str:
        if self.phase.active:
            return "note for the running session (Enter: logged at the current sample)"
        if self.phase.ended and self.last_path is not None:
            return f"note for the session just ended ({self.last_path.name}): added to its file"
        if self.phase is Phase.VIEWING:
            return "a past session is open read-only: no notes"
        return "note for the next session (logged when it starts)"

    def _phase_detail(self) -> str:
        if self.phase is Phase.STOPPING:
            eng, c = self.runner.engine, self.runner.stopping_after
            if eng is not None and c is not None:
                return f"after block {c} ({eng.protocol.conditions[c].name})"
        if self.phase is Phase.VIEWING and self.viewing is not None:
            return self.viewing.name
        return ""

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._update_buttons()
        detail = self._phase_detail()
        self._status_bar().showMessage(
            f"{phase.value}{f' ({detail})' if detail else ''}: {STYLES[phase].help}"
        )
        self.phase_changed.emit(phase.value)

    def _app_message(self, kind: str, text: str) -> None:
        self.event_log.add(None, "app" if kind == "info" else kind, text)
