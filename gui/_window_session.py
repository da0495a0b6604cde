"""The main window's session control: start, stop, abort, notes, and watching the engine.

The third layer of the window (see ``gui._window_layout``): everything between Start and
the session's end. Start builds an :class:`~rig.engine.Engine` from the panels and runs it
in its own process (:class:`~gui._engine_process.EngineRunner`); two timers then watch it —
live plots and volumes at ~30 Hz from shared memory (:meth:`_tick_live`), the session bar
at 5 Hz from the engine's status messages (:meth:`_tick_status`); the file's last volume is
read once the session has ended. Nothing here can make the engine wait. It sits on the
fault layer because the end of a session re-states the first fault on the banner.

The guard rails (questions before an anonymous or an unchecked long run, Abort confirmed)
are here too, asked through :meth:`~gui._window_layout.WindowLayout.confirm`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from gui._lifecycle import Phase
from gui._notes import BEFORE_RUN, append_note
from gui._session_file import LiveSessionFile
from gui._settings import save_setup
from gui._window_faults import FaultHandling
from gui._window_layout import TITLE
from rig.core.config import RigConfig
from rig.core.errors import SessionFileError, ZaprigError
from rig.core.vocabulary import IncidentCounter
from rig.engine import Engine
from stimuli.protocol import Protocol

#: Runs longer than this ask before starting without a fresh, passing preflight.
LONG_RUN_S = 180.0


class SessionControl(FaultHandling):
    """Start, stop, abort and notes; the engine's signals and the two timers that watch it."""

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
