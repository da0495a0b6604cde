"""The main window's fault handling: one banner that says what failed and what to do.

A layer of its own (see ``gui._window_layout``) because every fault reaches the person
through it whatever its path — the engine process's failure message (:meth:`_failed`), a
fault event in the live stream (:meth:`on_event`), the session's end (``gui._window_session``)
— and its wording follows the fault vocabulary (``rig.core.vocabulary``,
``gui._lifecycle.fault_advice``), not the life cycle. The first fault stays on the banner
until the session ends; the rest are counted as incidents and kept in the event log.
"""

from __future__ import annotations

import html

from gui._lifecycle import Phase, device_of_source, fault_advice
from gui._window_layout import WindowLayout
from rig.core.events import Event
from rig.core.vocabulary import plain_fault


class FaultHandling(WindowLayout):
    """The fault banner and the device lamps it sets (the second layer of the window)."""

    def _failed(self, message: str, source: str = "engine") -> None:
        self._app_message("error", message)
        if not self._first_fault:  # the banner keeps saying this when the session ends
            self._first_fault, self._first_fault_source = message, source
        self._show_fault(message, source)

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
