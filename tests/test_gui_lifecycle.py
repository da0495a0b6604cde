"""The control app on a rig day (issue 15), offscreen: what the live views show against the file,
faults and the laser you cannot miss, the session's life cycle from arming to the summary, past
sessions read-only, guard rails, and the set-up remembered between runs of the app.

Dialogs are answered by replacing ``QMessageBox.question`` (the app's one way of asking);
every wait is on a signal or a condition, never a fixed sleep.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from gui._qt import QtCore, QtWidgets
from gui.app import SHORTCUTS, MainWindow
from gui.panels.fish import next_fish_id
from rig.core.config import DEFAULT_CONFIG
from rig.core.events import Event
from rig.session import ROW, read_table

Yes = QtWidgets.QMessageBox.StandardButton.Yes
No = QtWidgets.QMessageBox.StandardButton.No
#: Each condition of the dataset protocol lasts ~2-6 s of session time at this scale.
TIME_SCALE = 0.003


def _settings(folder: Path) -> QtCore.QSettings:
    return QtCore.QSettings(str(folder / "settings.ini"), QtCore.QSettings.Format.IniFormat)


class Answers:
    """Stands in for ``QMessageBox.question``: records each question and gives a set answer."""

    def __init__(self, reply: QtWidgets.QMessageBox.StandardButton = Yes) -> None:
        self.reply = reply
        self.asked: list[tuple[str, str]] = []

    def __call__(
        self, parent: object, title: str, text: str, *args: object, **kwargs: object
    ) -> QtWidgets.QMessageBox.StandardButton:
        self.asked.append((title, text))
        return self.reply


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    a = Answers()
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", a)
    return a


@pytest.fixture
def make_window(qtbot, tmp_path: Path) -> Iterator[Callable[..., MainWindow]]:
    made: list[MainWindow] = []

    def make(config: Path | None = None, scale: float | None = TIME_SCALE) -> MainWindow:
        w = MainWindow(config=config, out_dir=tmp_path / "sessions", settings=_settings(tmp_path))
        qtbot.addWidget(w)
        if scale is not None:
            w.protocol_panel.scale.setValue(scale)
        w.fish_panel.fish_id.setText("F1")
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


class Phases:
    """Every life-cycle phase the window went through, in order."""

    def __init__(self, w: MainWindow) -> None:
        self.seen: list[str] = [w.phase.value]
        w.phase_changed.connect(self.seen.append)


def _faulty_rig(tmp_path: Path, **faults: float) -> Path:
    lines = [f"{k} = {v}" for k, v in faults.items()]
    path = tmp_path / "faulty.toml"
    path.write_text(DEFAULT_CONFIG.read_text() + "\n[faults]\n" + "\n".join(lines) + "\n")
    return path


def _virtual(w: MainWindow) -> None:
    w.session_bar.clock.setCurrentIndex(w.session_bar.clock.findData("virtual"))


def _run_to_end(qtbot, w: MainWindow, timeout_ms: int = 90_000) -> str:
    with qtbot.waitSignal(w.runner.finished, timeout=timeout_ms) as done:
        qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    return str(done.args[0])


# -- 1. live views show what the fish sees and what the file stores ---------------------------
def test_live_velocity_is_row_8_of_the_file_in_dots_flash_and_turning(qtbot, make_window):
    w = make_window(scale=0.01)
    _virtual(w)
    seen: dict[int, tuple[float, float]] = {}

    def record() -> None:
        t, s = w.live.stimulus.view()
        for ti, (v, g) in zip(t, s, strict=True):
            if np.isfinite(v):
                seen[round(ti * w.live.fs)] = (float(v), float(g))

    w.live.refreshed.connect(record)
    assert _run_to_end(qtbot, w, 180_000) == "complete"
    path = w.last_path
    with h5py.File(path, "r") as f:
        rows = f["stimuli_and_ephys"][:]
    names = [c.name for c in w.runner.engine.protocol.conditions]
    samples = np.array(sorted(s for s in seen if s < len(rows)))
    live = np.array([seen[s] for s in samples])
    cond = rows[samples, ROW["condition"]].astype(int) - 1
    for block in ("dots", "flash", "turning"):
        here = cond == names.index(block)
        assert here.sum() > 20, f"the live view saw too little of {block}"
        np.testing.assert_array_equal(live[here, 0], rows[samples[here], ROW["velocity"]])
        np.testing.assert_array_equal(live[here, 1], rows[samples[here], ROW["gain"]])
    # the blocks the issue saw wrong: dots drift at +5, flash still, turning gratings move
    dots = cond == names.index("dots")
    assert np.all(rows[samples[dots], ROW["velocity"]] >= 0)
    # gain has its own axis, tails share one unit
    assert w.live.gain_curve in w.live.gain_plot.listDataItems()
    assert w.live.gain_curve not in w.live.velocity_plot.listDataItems()
    for p in w.live.tail_plots:
        assert p.getAxis("left").labelText.endswith(" mV")


# -- 2. safety state you cannot miss -----------------------------------------------------------
def test_a_lost_laser_shows_unknown_and_a_banner_naming_it(qtbot, make_window, tmp_path, answers):
    w = make_window(config=_faulty_rig(tmp_path, laser_disconnects_at_s=3.0))
    _virtual(w)
    phases = Phases(w)
    assert w.session_bar.laser_state == "off"
    assert _run_to_end(qtbot, w) == "failed"
    assert phases.seen[-1] == "failed"
    assert w.session_bar.laser_state == "unknown"
    assert "LASER UNKNOWN" in w.session_bar.laser.text()
    banner = w.fault_banner.text
    assert w.fault_banner.isVisible() and "LASER" in banner and "may still be on" in banner
    assert w.rig_panel.lights["laser"].state == "fault"
    messages = w.event_log.messages()
    first = next(i for i, m in enumerate(messages) if "laser may still be on" in m)
    assert "laser off" not in messages[first:]
    # warnings and faults are counted apart; one lost laser is one fault, however many
    # fault rows it made (the port, the laser that may be on, the failed session), as the
    # summary and `zaprig inspect` count it; a click filters the log to that kind
    n_rows = len(w.event_log.messages("fault"))
    assert n_rows >= 2 and w.session_bar.n_faults == 1
    assert w.session_bar.faults_button.text() == f"1 fault ({n_rows} events)"
    assert w.summary.facts is not None and w.summary.facts.faults == 1
    assert "faults    1 " in w.summary.details.toPlainText()
    # the banner followed the session to its end, in words for people
    assert "SESSION FAILED" in banner
    assert "Errno" not in banner and "Input/output error" not in banner and "/dev/" not in banner
    assert "SYST:FAUL?" not in banner
    qtbot.mouseClick(w.session_bar.faults_button, QtCore.Qt.MouseButton.LeftButton)
    shown = w.event_log.visible_messages()
    assert shown and len(shown) == len(w.event_log.messages("fault"))
    qtbot.mouseClick(w.session_bar.faults_button, QtCore.Qt.MouseButton.LeftButton)
    assert len(w.event_log.visible_messages()) == len(messages)
    # the banner stays until dismissed, whatever tab is open
    w.setup_tabs.setCurrentWidget(w.protocol_panel)
    assert w.fault_banner.isVisible()
    qtbot.mouseClick(w.fault_banner.dismiss_button, QtCore.Qt.MouseButton.LeftButton)
    assert not w.fault_banner.isVisible()


def test_the_lamp_and_the_banner_follow_the_fault_source_never_its_words(make_window):
    w = make_window()
    # a DAQ driver's message may name the camera and the laser it was triggering
    words = "camera trigger line lost: the laser sync and the display stop"
    w.on_event(Event(600, 0.0, "fault", words, "daq"), 6000.0)
    lamps = {k: light.state for k, light in w.rig_panel.lights.items()}
    assert lamps["daq"] == "fault"
    assert [k for k, state in lamps.items() if state == "fault"] == ["daq"]
    assert "DAQ FAULT" in w.fault_banner.text and "may still be on" not in w.fault_banner.text
    # a later fault of the run as a whole lights no lamp, whatever its words
    w.on_event(Event(700, 0.0, "fault", "internal error: the writer's laser", "engine"), 6000.0)
    assert [k for k, li in w.rig_panel.lights.items() if li.state == "fault"] == ["daq"]


def test_a_dropped_camera_plane_is_counted_the_same_in_the_bar_and_the_file(
    qtbot, make_window, tmp_path
):
    w = make_window(config=_faulty_rig(tmp_path, camera_drops_frame_at_s=3.0))
    _virtual(w)
    assert _run_to_end(qtbot, w) == "complete"
    bar = w.session_bar
    with h5py.File(w.last_path, "r") as f:
        file_counts = (int(f.attrs["planes_dropped"]), int(f["volumes/dropped/volume"].shape[0]))
    assert (bar.dropped_planes, bar.dropped_volumes) == file_counts == (1, 0)
    # the same words as inspect and the summary
    assert bar.dropped.text() == "1 plane, 0 volumes, 0 stimulus frames"
    assert bar.dropped.text() in w.summary.fields["drops"].text()
    assert f"dropped   {bar.dropped.text()}" in w.summary.details.toPlainText()
    assert w.summary.facts is not None and w.summary.facts.planes_dropped == 1
    assert bar.n_warnings >= 1 and bar.n_faults == 0
    assert not w.fault_banner.isVisible()


# -- 3. the session's life cycle ---------------------------------------------------------------
def test_stop_ends_stopped_after_the_block_with_notes_before_and_after(qtbot, make_window, answers):
    w = make_window()
    phases = Phases(w)
    opened: list[QtCore.QUrl] = []
    w.summary.open_url = lambda url: opened.append(url) or True
    assert not w.session_bar.abort_button.isEnabled() and not w.abort_action.isEnabled()
    w.add_note("electrode placed on both sides")  # before the run: kept for the session
    with qtbot.waitSignal(w.runner.armed, timeout=30_000):
        w.start_action.trigger()  # the Start shortcut's action
    qtbot.waitUntil(lambda: w.phase.value == "running" and w.live.has_data, timeout=15_000)
    # the bar reads the engine's status 5 times a second: wait for a reading after laser-on
    qtbot.waitUntil(lambda: w.session_bar.laser_state == "on", timeout=5_000)
    assert w.rig_panel.lights["daq"].state == "ok"
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as done:
        w.stop_action.trigger()
        assert w.phase.value == "stopping"
        assert "after block" in w.session_bar.state.text()
        assert not w.session_bar.stop_button.isEnabled()
        assert w.session_bar.abort_button.isEnabled()
        # the time to the block's end replaces "left" (unless the block ends first)
        qtbot.waitUntil(
            lambda: "to block end" in w.session_bar.remaining.text() or not w.runner.running,
            timeout=5_000,
        )
    assert done.args == ["stopped"]
    assert phases.seen == ["idle", "arming", "running", "stopping", "stopped"]
    assert w.session_bar.laser_state == "off"
    assert w.session_bar.remaining.text() == "-" and w.session_bar.condition.text() == "-"
    assert w.rig_panel.lights["daq"].state != "ok"  # no longer "(in use)"
    # the end-of-session summary, from the file
    assert w.setup_tabs.currentWidget() is w.summary
    assert "stopped" in w.summary.fields["status"].text()
    assert str(w.last_path) == w.summary.fields["file"].text()
    qtbot.mouseClick(w.summary.open_folder_button, QtCore.Qt.MouseButton.LeftButton)
    assert opened and Path(opened[0].toLocalFile()) == w.last_path.resolve().parent
    w.add_note("fish still healthy at the end")  # after the run: into the closed file
    with h5py.File(w.last_path, "r") as f:
        assert f.attrs["status"] == "stopped"
        ev = read_table(f["events"])
    notes = list(ev["message"][ev["kind"] == "note"])
    assert notes == [
        "(before the run) electrode placed on both sides",
        "(after the run) fish still healthy at the end",
    ]
    assert answers.asked == []  # a named fish and a short run: nothing to ask


def test_abort_asks_first_and_ends_aborted(qtbot, make_window, answers):
    w = make_window()
    phases = Phases(w)
    with qtbot.waitSignal(w.runner.armed, timeout=30_000):
        qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.phase.value == "running", timeout=15_000)
    answers.reply = No
    w.abort_action.trigger()  # the shortcut asks like the button
    assert len(answers.asked) == 1 and "Abort" in answers.asked[0][0]
    assert w.runner.running and w.phase.value == "running"
    answers.reply = Yes
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as done:
        qtbot.mouseClick(w.session_bar.abort_button, QtCore.Qt.MouseButton.LeftButton)
    assert done.args == ["aborted"]
    assert phases.seen[-2:] == ["aborting", "aborted"]
    assert not w.session_bar.abort_button.isEnabled()
    with h5py.File(w.last_path, "r") as f:
        assert f.attrs["status"] == "aborted"


def test_a_complete_run_then_a_past_session_opens_read_only(qtbot, make_window, tmp_path):
    w = make_window()
    _virtual(w)
    phases = Phases(w)
    assert _run_to_end(qtbot, w) == "complete"
    assert phases.seen == ["idle", "arming", "running", "complete"]
    assert w.session_bar.condition.text() == "-"
    first = w.last_path
    digest = hashlib.sha256(first.read_bytes()).hexdigest()

    fresh = make_window()
    assert fresh.open_session(first)
    assert fresh.phase.value == "viewing"
    assert "read-only" in fresh.windowTitle()
    assert "complete" in fresh.summary.fields["status"].text()
    assert "status    complete" in fresh.summary.details.toPlainText()  # the `inspect` summary
    assert fresh.live.has_data and fresh.live.volume_t >= 0
    assert "run complete" in fresh.event_log.messages("protocol")
    assert not fresh.event_log.note_edit.isEnabled()
    assert not fresh.session_bar.stop_button.isEnabled()
    opened: list[QtCore.QUrl] = []
    fresh.summary.open_url = lambda url: opened.append(url) or True
    with qtbot.waitSignal(fresh.summary.report_done, timeout=120_000) as report:
        qtbot.mouseClick(fresh.summary.open_report_button, QtCore.Qt.MouseButton.LeftButton)
    assert report.args[1] == "" and Path(report.args[0]).is_file()
    assert opened and opened[0].toLocalFile() == report.args[0]
    assert hashlib.sha256(first.read_bytes()).hexdigest() == digest  # read-only
    bad = tmp_path / "not-a-session.h5"
    bad.write_bytes(b"nope")
    assert not fresh.open_session(bad)
    assert any("cannot open" in m for m in fresh.event_log.messages("error"))


def test_a_session_that_cannot_arm_fails_with_a_banner(qtbot, make_window, tmp_path):
    w = make_window()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    w.fish_panel.out_edit.setText(str(blocker / "sessions"))
    phases = Phases(w)
    assert _run_to_end(qtbot, w) == "failed"
    assert phases.seen == ["idle", "arming", "failed"]
    assert w.fault_banner.isVisible() and "cannot create the output folder" in w.fault_banner.text


# -- 4. guard rails and memory -----------------------------------------------------------------
def test_guard_rails_ask_before_anonymous_or_unchecked_long_runs(qtbot, make_window, answers):
    w = make_window(scale=1.0)
    assert w.scale_banner.text == ""  # full length: no banner
    answers.reply = No
    w.fish_panel.fish_id.clear()
    qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert [t for t, _ in answers.asked] == ["No fish ID"]
    assert w.phase.value == "idle" and not w.runner.running
    assert w.setup_tabs.currentWidget() is w.fish_panel  # where the ID is typed
    assert w.statusBar().currentMessage().startswith("idle")
    w.fish_panel.fish_id.setText("F2")
    qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert answers.asked[-1][0] == "Preflight first?" and "has not been run" in answers.asked[-1][1]
    assert w.setup_tabs.currentWidget() is w.rig_panel and not w.runner.running

    # preflight follows the protocol and scale; a change makes it stale
    with qtbot.waitSignal(w.rig_panel.preflight_done, timeout=60_000):
        qtbot.mouseClick(w.rig_panel.preflight_button, QtCore.Qt.MouseButton.LeftButton)
    proto = w.protocol_panel.protocol
    assert w.rig_panel.is_fresh(proto) and not w.rig_panel.preflight_stale.isVisible()
    w.protocol_panel.scale.setValue(0.01)
    assert not w.rig_panel.is_fresh(w.protocol_panel.protocol)
    assert w.rig_panel.preflight_stale.isVisible()
    assert "Time scale ×0.01" in w.scale_banner.text
    assert "needs" in w.session_bar.disk.text()  # the session's size beside disk free
    w.protocol_panel.scale.setValue(1.0)
    assert w.rig_panel.is_fresh(w.protocol_panel.protocol)
    assert not w.rig_panel.preflight_stale.isVisible() and w.scale_banner.text == ""
    # shortcuts for start, stop, note and abort
    assert w.start_action.shortcut().toString() == SHORTCUTS["start"]
    assert w.abort_action.shortcut().toString() == SHORTCUTS["abort"]
    assert {SHORTCUTS[k] for k in ("start", "stop", "note", "abort")} == {
        a.shortcut().toString()
        for a in (w.start_action, w.stop_action, w.note_action, w.abort_action)
    }


def test_restarting_the_app_restores_the_last_set_up(qtbot, make_window, tmp_path):
    proto = tmp_path / "flashes.toml"
    proto.write_text(
        'name = "flashes"\n[[conditions]]\nname = "flash"\nseconds = 20\n'
        "[[conditions.steps]]\nduration_s = 10\n"
        'stimulus = { kind = "flash", period_s = 10, on_s = 5 }\n'
    )
    rigs = [p for p in Path(DEFAULT_CONFIG).parent.glob("*.toml")]
    first = make_window(scale=None)
    assert first.rig_panel.rig_combo.count() >= len(rigs) >= 1  # known rigs beside Browse
    first.protocol_panel.set_file(proto)
    first.protocol_panel.scale.setValue(0.5)
    _virtual(first)
    f = first.fish_panel
    f.fish_id.setText("F3-1")
    f.age_dpf.setValue(6)
    f.genotype.setText("elavl3:H2B-GCaMP7f")
    f.experimenter.setText("A. Lab")
    f.notes.setPlainText("mounted at 10:02")
    f.seed.setValue(42)
    assert first.close()

    again = MainWindow(settings=_settings(tmp_path))
    qtbot.addWidget(again)
    try:
        p, g = again.protocol_panel, again.fish_panel
        assert p.from_file.isChecked() and Path(p.file_edit.text()) == proto
        assert p.protocol is not None and p.protocol.name.startswith("flashes")
        assert p.scale.value() == 0.5
        assert again.session_bar.clock_kind == "virtual"
        assert again.rig_panel.config_path == first.rig_panel.config_path
        assert (g.fish_id.text(), g.age_dpf.value(), g.genotype.text()) == (
            "F3-1",
            6,
            "elavl3:H2B-GCaMP7f",
        )
        assert (g.experimenter.text(), g.notes.toPlainText(), g.seed.value()) == (
            "A. Lab",
            "mounted at 10:02",
            42,
        )
        assert g.out_dir == tmp_path / "sessions"
        qtbot.mouseClick(g.next_fish_button, QtCore.Qt.MouseButton.LeftButton)
        assert g.fish_id.text() == "F3-2" and g.notes.toPlainText() == ""
        assert g.genotype.text() == "elavl3:H2B-GCaMP7f"
    finally:
        again.shutdown()


def test_next_fish_ids_count_up():
    assert next_fish_id("F3-1") == "F3-2"
    assert next_fish_id("fish09") == "fish10"
    assert next_fish_id("larva") == "larva-2"
    assert next_fish_id("  ") == ""
    # a date at the end is not a counter (issue 29); a counter after a date still counts
    assert next_fish_id("F2024-11-03") == "F2024-11-03-2"
    assert next_fish_id("fish_20241103") == "fish_20241103-2"
    assert next_fish_id("larva 03.11.2024") == "larva 03.11.2024-2"
    assert next_fish_id("F2024-11-03-1") == "F2024-11-03-2"
    assert next_fish_id("F12345678") == "F12345679"


def test_a_fault_lights_the_lamp_its_source_names_not_its_words(make_window) -> None:
    """Events carry their source: a camera fault whose message never says 'camera' still
    lights the Microscope lamp and the banner names the camera."""
    from rig.core.events import Event

    w = make_window()
    msg = "no frames for 1.2 s while triggered"  # no device word in it
    w.on_event(Event(6000, 0.0, "fault", msg, source="camera"), 6000.0)
    assert w.rig_panel.lights["microscope"].state == "fault"
    assert "CAMERA FAULT" in w.fault_banner.text
    assert msg in w.event_log.messages("fault")
    w.on_event(Event(7000, 0.0, "fault", "port went away", source="laser"), 6000.0)
    assert w.rig_panel.lights["laser"].state == "fault"
