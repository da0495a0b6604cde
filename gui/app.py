"""The control app's main window and ``zaprig gui``.

The window wires the panels together and owns the session's life cycle
(:class:`~gui._lifecycle.Phase`: idle → arming → running → [stopping] →
complete / stopped / aborted / failed, or viewing a past file). Start builds an
:class:`~rig.engine.Engine` from the panels and runs it in its own process
(:class:`~gui._engine_process.EngineRunner`); two timers then watch it — live
plots and volumes at ~30 Hz from shared memory, the session bar at 5 Hz from the
engine's status messages; the file's last volume is read once the session has
ended. Nothing
here can make the engine wait.

Guard rails (questions before an anonymous or an unchecked long run, Abort
confirmed) go through :meth:`MainWindow.confirm`, one place that asks.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gui._engine_process import EngineRunner
from gui._lifecycle import STYLES, Phase, device_of_source, fault_advice
from gui._notes import BEFORE_RUN, append_note
from gui._past_session import read_past_session
from gui._qt import QtCore, QtGui, QtWidgets
from gui._session_file import LiveSessionFile
from gui._settings import default_settings, restore_setup, save_setup
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
from rig.core.errors import SessionFileError, ZaprigError
from rig.core.events import Event
from rig.core.vocabulary import IncidentCounter, plain_fault
from rig.engine import Engine
from stimuli.protocol import Protocol

__all__ = ["LONG_RUN_S", "SHORTCUTS", "MainWindow", "cli_main"]

TITLE = "zaprig — closed-loop VR light-sheet rig"
LIVE_MS = 33  # <= 30 Hz of plot updates
STATUS_MS = 200
#: Runs longer than this ask before starting without a fresh, passing preflight.
LONG_RUN_S = 180.0
#: Keyboard shortcuts (Abort asks for confirmation like the button).
SHORTCUTS = {
    "start": "Ctrl+R",
    "stop": "Ctrl+E",
    "note": "Ctrl+N",
    "abort": "Ctrl+Shift+A",
    "open": "Ctrl+O",
}

Yes = QtWidgets.QMessageBox.StandardButton.Yes
No = QtWidgets.QMessageBox.StandardButton.No


class MainWindow(QtWidgets.QMainWindow):
    """Set up a session, run it, watch it, and end it cleanly."""

    #: The life-cycle phase changed (its value, e.g. "running", "stopped").
    phase_changed = QtCore.pyqtSignal(str)
    #: Have the engine process time its loop (benchmarks/gui_fullsize.py reads
    #: ``runner.loop_lag_ms`` after the session).
    time_loop = False

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

    def _timer(self, ms: int, tick: Callable[[], None]) -> QtCore.QTimer:
        timer = QtCore.QTimer(self)
        timer.setInterval(ms)
        timer.timeout.connect(tick)
        return timer

    def _status_bar(self) -> QtWidgets.QStatusBar:
        bar = self.statusBar()
        assert bar is not None  # a QMainWindow makes one on first use
        return bar

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

    # -- session control --------------------------------------------------------------------
    def start_session(self) -> None:
        rig, proto = self.rig_panel.rig, self.protocol_panel.protocol
        if rig is None or proto is None or self.phase.active or self.runner.running:
            return
        if not self._guards_pass(rig, proto):
            return
        save_setup(self.settings, self)
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
        notes = tuple(BEFORE_RUN + text for text in self._pending_notes)  # at the first chunk
        self._pending_notes.clear()
        self.fault_banner.clear()
        self.event_log.set_filter(None)
        self.summary.clear()
        self.viewing = None
        self._first_fault = ""
        self._first_fault_source = ""
        self._incidents = IncidentCounter()
        self.live.new_session(proto)
        self.readout_panel.new_session(
            rig.readout.drift_warn_um, rig.microscope.volume_period_s, rig.microscope.shape_zyx
        )
        self.session_file = None
        self.live.set_source("live: arming")
        self.event_log.set_source("the session being started")
        self.setWindowTitle(TITLE)
        self._rate.clear()
        self.session_bar.show_counts(0, 0)
        self.session_bar.show_drops(0, 0)
        self._app_message(
            "info",
            f"starting {proto.name}: {engine.timeline.n_volumes} volumes, "
            f"{engine.timeline.duration_s:.1f} s, {self.session_bar.clock_kind} clock",
        )
        self._set_phase(Phase.ARMING)
        self.rig_panel.set_running(True)
        self.runner.start(engine, notes, time_loop=self.time_loop)
        for timer in (self.live_timer, self.status_timer):
            timer.start()

    def _guards_pass(self, rig: RigConfig, proto: Protocol) -> bool:
        """Ask before the starts people regret: no fish ID; a long run with no fresh preflight."""
        if not self.fish_panel.fish_id.text().strip() and not self.confirm(
            "No fish ID",
            f"The fish ID is empty: the session file will be named after the rig "
            f"({rig.name}) and carry no fish ID.\n\nStart anyway?",
        ):
            self.setup_tabs.setCurrentWidget(self.fish_panel)
            self.fish_panel.fish_id.setFocus()
            return False
        tl = self.protocol_panel.timeline
        duration = tl.duration_s if tl is not None else 0.0
        if duration > LONG_RUN_S:
            fresh = self.rig_panel.is_fresh(proto)
            if not fresh or self.rig_panel.preflight_failed:
                why = (
                    "failed some checks"
                    if fresh
                    else "has not been run for this protocol and time scale"
                )
                if not self.confirm(
                    "Preflight first?",
                    f"This session lasts {duration / 60:.0f} min and preflight {why}.\n\n"
                    "Start anyway (No: go to the Rig tab and run Preflight)?",
                ):
                    self.setup_tabs.setCurrentWidget(self.rig_panel)
                    return False
        return True

    def stop_session(self) -> None:
        """Let the current block finish, then end the session as ``stopped``."""
        if self.phase is not Phase.RUNNING:
            return
        c = self.runner.stop_after_condition()
        eng = self.runner.engine
        if c is not None and eng is not None:
            name = eng.protocol.conditions[c].name
            last = c >= eng.timeline.n_conditions - 1
            self._app_message(
                "info",
                f"stopping at the end of condition {c} ({name})"
                + (": the last block, so the run completes" if last else ""),
            )
            self._set_phase(Phase.STOPPING)

    def abort_session(self, reason: str = "aborted by the user", ask: bool = True) -> None:
        """End now (mid-block): asks first unless ``ask`` is False (closing the app asked)."""
        if not (self.phase.active and self.runner.running) or self.phase is Phase.ABORTING:
            return
        if ask and not self.confirm(
            "Abort the session?",
            "Abort ends the session now, in the middle of the current block; the file is "
            "closed as 'aborted'. To end after this block instead, use Stop.\n\nAbort now?",
        ):
            return
        self._app_message("warning", f"aborting: {reason}")
        self._set_phase(Phase.ABORTING)
        self.runner.request_stop(reason)

    def add_note(self, text: str) -> None:
        """A note: into the running session, the session just ended, or the next one."""
        if self.phase.active:
            try:
                self.runner.add_note(text)
            except ZaprigError as e:
                self._app_message("error", str(e))
                return
            where = "the running session"
        elif self.phase.ended and self.last_path is not None and self.last_path.exists():
            try:
                sample = append_note(self.last_path, text)
            except ZaprigError as e:
                self._app_message("error", str(e))
                return
            self.event_log.add(sample / self.live.fs, "note", f"(after the run) {text}")
            where = self.last_path.name
        elif self.phase is Phase.VIEWING:
            self._app_message("error", "a past session is open read-only: notes are not added")
            return
        else:
            self._pending_notes.append(text)
            self.event_log.add(None, "note", f"{BEFORE_RUN}{text} (logged when the run starts)")
            where = "the next session"
        self._status_bar().showMessage(f"note added to {where}: {text}", 4000)

    # -- runner signals ---------------------------------------------------------------------
    def _armed(self, path: str) -> None:
        self.session_file = LiveSessionFile(path)
        self.last_path = Path(path)
        self.live.set_source(f"live: {Path(path).name}")
        self.event_log.set_source(f"{path} (recording)")
        self.setWindowTitle(f"zaprig — recording {Path(path).name}")
        self._app_message("info", f"recording to {path}")
        if self.phase is Phase.ARMING:
            self._set_phase(Phase.RUNNING)

    def _failed(self, message: str, source: str = "engine") -> None:
        self._app_message("error", message)
        if not self._first_fault:  # the banner keeps saying this when the session ends
            self._first_fault, self._first_fault_source = message, source
        self._show_fault(message, source)

    def _finished(self, state: str) -> None:
        self.runner.wait()
        self._tick_live()
        # what was recorded after the last live read
        self._read_last_volume()
        for timer in (self.live_timer, self.status_timer):
            timer.stop()
        eng = self.runner.engine
        if eng is not None and eng.path is not None:
            self.last_path = eng.path
        where = f": {eng.path}" if eng is not None and eng.path else ""
        if eng is not None and eng.path is not None:
            self.live.set_source(f"{eng.path.name} ({state})")
            self.event_log.set_source(f"{eng.path} ({state})")
            self.setWindowTitle(f"zaprig — {eng.path.name} ({state})")
        # a clean stop is what the user asked for: only an abort or a failure is a warning
        kind = "warning" if state in ("aborted", "failed") else "info"
        self._app_message(kind, f"session {state}{where}")
        self.rig_panel.set_running(False)
        phase = {
            "complete": Phase.COMPLETE,
            "stopped": Phase.STOPPED,
            "aborted": Phase.ABORTED,
        }.get(state, Phase.FAILED)
        self._set_phase(phase)
        self._tick_status()
        # the banner follows the session to its end: it now says how the session ended
        if phase is Phase.FAILED or self._first_fault:
            self._show_fault(
                self._first_fault or f"the session failed{where}",
                self._first_fault_source if self._first_fault else None,
            )
        self._show_summary()
        if self._close_after_stop:
            self.close()

    def _show_summary(self) -> None:
        path = self.last_path
        eng = self.runner.engine
        if path is None or eng is None or eng.path is None or not path.exists():
            return
        try:
            facts = self.summary.show_session(path, "Session ended")
        except ZaprigError as e:
            self._app_message("warning", f"no summary: {e}")
            return
        self.setup_tabs.setCurrentWidget(self.summary)
        st = eng.status()
        if (facts.planes_dropped, facts.summary.dropped_volumes) != (
            st.dropped_planes,
            st.dropped_volumes,
        ):
            self._app_message(
                "warning",
                f"the file counts {facts.planes_dropped} dropped planes and "
                f"{facts.summary.dropped_volumes} dropped volumes; the session bar counted "
                f"{st.dropped_planes} and {st.dropped_volumes}",
            )

    def _show_fault(self, message: str, source: str | None = None) -> None:
        """The banner: what failed, the lamp and cable to check, whether the laser may be on."""
        what, todo = fault_advice(source)
        eng = self.runner.engine
        laser_unknown = (eng is not None and eng.status().laser == "unknown") or (
            device_of_source(source) == "laser"
        )
        laser = (
            "<br><b>THE LASER MAY STILL BE ON</b>: switch it off at its key switch or controller."
            if laser_unknown and what != "LASER"
            else ""
        )
        if self.phase is Phase.FAILED:
            state = "SESSION FAILED"
        elif self.phase.ended:
            state = f"session {self.phase.value}"
        elif self.phase.active:
            state = "the session is ending"
        else:
            state = ""
        head = f"<b>{what} FAULT</b>" + (f" — <b>{state}</b>" if state else "")
        n = len(self._incidents)
        more = f" (and {n - 1} more: see the event log)" if n > 1 else ""
        # in words for people; the event log keeps the device's own message
        text = html.escape(plain_fault(message))
        self.fault_banner.show_message(f"{head}: {text}{more}<br>{todo}{laser}", "fault")
        if key := device_of_source(source):
            self.rig_panel.set_device_state(key, "fault", message)

    # -- timers -----------------------------------------------------------------------------
    def _tick_live(self) -> None:
        batch = self.runner.take(self.live.plane_spin.value())
        self.live.refresh(batch)
        eng = self.runner.engine
        if batch.readout:
            if (
                eng is not None
                and eng.live_labels is not None
                and not len(self.readout_panel.label_ids)
            ):
                self.readout_panel.set_labels(*eng.live_labels)
            self.readout_panel.add_rows(batch.readout)
        if batch.volume is not None and self.readout_panel.rows:
            self.readout_panel.show_projection(batch.volume.mip, batch.volume.levels)
        fs = eng.rig.daq.sample_rate_hz if eng is not None else 6000.0
        for ev in batch.events:
            self.on_event(ev, fs)

    def on_event(self, ev: Event, sample_rate_hz: float) -> None:
        """One engine event (from any lane) into the log, the banner and the lamps."""
        self.event_log.add(ev.sample / sample_rate_hz, ev.kind, ev.message)
        if ev.kind != "fault":
            return
        self._incidents.add(ev.sample, ev.message, ev.source)
        if not self._first_fault:
            self._first_fault = ev.message
            self._first_fault_source = ev.source
            self._show_fault(ev.message, ev.source)
        elif key := device_of_source(ev.source):
            self.rig_panel.set_device_state(key, "fault", ev.message)

    def _tick_status(self) -> None:
        eng = self.runner.engine
        if eng is None or self.phase is Phase.VIEWING:
            return
        st = eng.status()
        rate = self._rate.add(eng.bytes_written)
        now = time.monotonic()
        if now - self._disk_at > 1.0 and eng.out_dir.exists():
            self._disk_free = shutil.disk_usage(eng.out_dir).free
            self._disk_at = now
        self.session_bar.show_status(st, rate, self._disk_free, ended=self.phase.ended)
        # faults as incidents, the way inspect and the summary count them
        self.session_bar.show_counts(st.warnings, len(self._incidents), st.faults)
        if self.phase is Phase.STOPPING and (c := self.runner.stopping_after) is not None:
            end = int(eng.timeline.condition_start_samples[min(c + 1, eng.timeline.n_conditions)])
            left = max(0, end - st.sample) / st.sample_rate_hz
            self.session_bar.remaining.setText(f"{left:.0f} s to block end")
        if not self.phase.ended:
            self.protocol_panel.highlight(st.condition)

    def _read_last_volume(self) -> None:
        """The file's last volume, once the session has ended (the engine hands volumes over
        while it runs: a read of a full-size volume here would stall the window for ~0.5 s)."""
        f, eng = self.session_file, self.runner.engine
        if f is None or eng is None:
            return
        try:
            got = f.read_volume()
        except SessionFileError as e:
            self._app_message("warning", str(e))
            return
        if got is not None:
            self.live.show_volume(*got)

    # -- past sessions ----------------------------------------------------------------------
    def _open_dialog(self) -> None:
        start = str(self.last_path.parent if self.last_path else self.fish_panel.out_dir)
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open session", start, "Session files (*.h5)"
        )
        if path:
            self.open_session(Path(path))

    def open_session(self, path: Path) -> bool:
        """Show a past session file read-only in the same views, with its summary."""
        if self.phase.active:
            self._app_message("error", "a session is running: open past sessions after it ends")
            return False
        try:
            past = read_past_session(path)
            facts = self.summary.show_session(path, "Past session (read-only)")
        except ZaprigError as e:
            self._open_failed(Path(path), str(e))
            return False
        name = Path(path).name
        self.viewing = Path(path)
        self.live.set_source(f"{name} (read-only)")
        self.event_log.set_source(f"{path} (read-only)")
        self.readout_panel.clear(f"{name}: the live readout is not replayed (zaprig report has it)")
        self.fault_banner.clear()
        self.live.fs = past.sample_rate_hz
        self.live.condition_names = past.condition_names
        self.live.volume_t = -1
        self.live.show_session(past)
        if past.volume is not None:
            self.live.show_volume(*past.volume)
        self.event_log.clear()
        self.event_log.set_filter(None)
        for ev in past.events:
            self.event_log.add(ev.sample / past.sample_rate_hz, ev.kind, ev.message)
        s = facts.summary
        bar = self.session_bar
        bar.elapsed.setText(f"{s.duration_s:.0f} s")
        bar.remaining.setText("-")
        bar.condition.setText("-")
        bar.volumes.setRange(0, max(1, s.volumes_expected))
        bar.volumes.setValue(min(s.volumes, max(1, s.volumes_expected)))
        bar.show_drops(facts.planes_dropped, s.dropped_volumes, s.frames_dropped)
        bar.show_counts(facts.warnings, facts.faults, facts.fault_events)
        self.setup_tabs.setCurrentWidget(self.summary)
        self._set_phase(Phase.VIEWING)
        self.setWindowTitle(f"zaprig — {Path(path).name} (read-only)")
        return True

    def _open_failed(self, path: Path, reason: str) -> None:
        """Nothing of the previous file stays on screen; the reason in full, and what helps."""
        if "zaprig recover" not in reason:
            reason += (
                f"\nto see what the file holds: zaprig inspect {path}"
                f"\nto keep what is readable: zaprig recover --salvage NEW.h5 {path}"
            )
        first = reason.splitlines()[0]
        helps = [ln.strip() for ln in reason.splitlines() if "zaprig " in ln]
        self.viewing = None
        self.session_file = None
        shown = f"nothing shown: {path.name} could not be opened"
        self.live.clear_views(shown)
        self.readout_panel.clear(shown)
        self.event_log.clear()
        self.event_log.set_filter(None)
        self.event_log.set_source(shown)
        self.summary.show_failure(path, reason)
        bar = self.session_bar
        for label in (bar.elapsed, bar.remaining, bar.condition):
            label.setText("-")
        bar.volumes.setValue(0)
        bar.show_drops(0, 0)
        bar.show_counts(0, 0)
        self.fault_banner.show_message(
            f"<b>CANNOT OPEN {path.name}</b>: {html.escape(first)}<br>"
            + "<br>".join(f"<tt>{html.escape(h)}</tt>" for h in helps),
            "warning",
        )
        self._app_message("error", f"cannot open {path}: {first}")
        self.setup_tabs.setCurrentWidget(self.summary)
        self._set_phase(Phase.IDLE)
        self.setWindowTitle(f"zaprig — cannot open {path.name}")
        self._status_bar().showMessage(f"cannot open {path.name}: see the Summary tab", 10000)

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
