"""The main window's past sessions: a recorded file shown read-only in the same views.

The fourth layer of the window (see ``gui._window_layout``). Opening a file is not part of
a session's life cycle — it needs no engine, no timers and no runner, only the panels and
the phase (``viewing``) — and its failure path (:meth:`_open_failed`: nothing of the
previous file stays on screen) is about reading files, so it lives apart from the session
control it would otherwise be mixed into.
"""

from __future__ import annotations

import html
from pathlib import Path

from gui._lifecycle import Phase
from gui._past_session import read_past_session
from gui._qt import QtWidgets
from gui._window_session import SessionControl
from rig.core.errors import ZaprigError


class PastSessions(SessionControl):
    """Open a past session file read-only, or say in full why it cannot be opened."""

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
