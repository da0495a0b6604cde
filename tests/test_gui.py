"""The control app, offscreen: a simulated session started, watched, noted and stopped from the
GUI, closing the window mid-session, preflight, and the live view's drawing helpers."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from gui._live_buffers import TimeRing, peak_decimate
from gui._qt import QtCore, QtWidgets
from gui._session_file import LiveSessionFile
from gui._stimulus_preview import StimulusPreview
from gui.app import MainWindow
from rig.core.config import DisplayConfig
from rig.session import read_table
from stimuli.state import FRAME_DTYPE, Look

Yes = QtWidgets.QMessageBox.StandardButton.Yes
No = QtWidgets.QMessageBox.StandardButton.No
#: Short enough that conditions last a few volumes (the gain block: 2 volumes).
TIME_SCALE = 0.003


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(out_dir=tmp_path, settings=settings)
    qtbot.addWidget(w)
    w.protocol_panel.scale.setValue(TIME_SCALE)
    w.fish_panel.fish_id.setText("test fish")
    w.show()
    yield w
    w.shutdown()


def _start(qtbot, w: MainWindow) -> str:
    assert w.session_bar.start_button.isEnabled()
    with qtbot.waitSignal(w.runner.armed, timeout=30_000) as armed:
        qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    return str(armed.args[0])


def test_a_session_run_from_the_gui_is_watched_noted_and_stopped(qtbot, window: MainWindow):
    w = window
    assert w.protocol_panel.table.rowCount() == 9  # the dataset's nine conditions
    w.fish_panel.fish_id.clear()
    qtbot.keyClicks(w.fish_panel.fish_id, "fish 7")
    w.fish_panel.age_dpf.setValue(6)
    assert w.session_bar.clock_kind == "realtime"
    path = _start(qtbot, w)
    assert not w.session_bar.start_button.isEnabled()

    # the live view fills: tail traces, the swim detector's threshold, volumes, the stimulus
    qtbot.waitUntil(
        lambda: w.live.has_data and w.session_bar.volumes.value() >= 2 and w.live.volume_t >= 1,
        timeout=15_000,
    )
    x, y = w.live.tail_curves[0].getData()
    assert np.all(np.diff(x[np.isfinite(y)]) >= 0) and np.nanstd(y) > 0
    assert w.live.plane_image.image is not None and w.live.plane_image.image.shape == (80, 128)
    assert w.live.mip_image.image.max() > w.live.mip_image.image.min()
    assert w.live.stim_image.image is not None
    assert w.rig_panel.lights["daq"].state == "ok"

    # a note goes into the running session and comes back, read live from the file
    qtbot.keyClicks(w.event_log.note_edit, "fish looks healthy")
    qtbot.keyClick(w.event_log.note_edit, QtCore.Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "fish looks healthy" in w.event_log.messages("note"), timeout=5_000)
    assert "run started: zapbench (x0.003)" in w.event_log.messages("protocol")

    # Stop lets the current condition finish, and the file says it was a clean stop
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as done:
        qtbot.mouseClick(w.session_bar.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert done.args == ["stopped"]
    assert w.session_bar.start_button.isEnabled()
    assert any("session stopped" in m for m in w.event_log.messages())
    # a clean stop is what was asked for: not a warning; the status bar says the phase
    assert not any("session stopped" in m for m in w.event_log.messages("warning"))
    assert w.statusBar().currentMessage().startswith("stopped")

    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "stopped"
        assert json.loads(f.attrs["fish"]) == {"fish_id": "fish 7", "age_dpf": 6}
        ev = read_table(f["events"])
        notes = ev["message"][ev["kind"] == "note"]
        assert list(notes) == ["fish looks healthy"]
        assert any("at the end of condition" in m for m in ev["message"])
        # every bout the file holds was shown (bouts are never dropped from the live view)
        assert w.live.bout_count == f["behavior/bouts/start_sample"].shape[0]
        conds = read_table(f["protocol/conditions"])
        tl = w.runner.engine.timeline
        last = len(conds["index"]) - 1
        c = int(conds["index"][last])
        # the stopped condition is whole: its planned volumes, ending within two chunks
        assert conds["stop_volume"][last] == tl.condition_bounds[c + 1]
        planned_end = int(tl.condition_start_samples[c + 1])
        assert 0 <= planned_end - conds["stop_sample"][last] <= 2 * 60
        assert f["volumes/raw"].shape[0] == tl.condition_bounds[c + 1]
        last_volume = f["volumes/raw"][-1]

        # the event log got every event the file holds, in order, straight from the engine
        logged = [m for m in w.event_log.messages() if m in set(ev["message"])]
        assert logged == list(ev["message"])

    # the live reader (used while recording) reads the newest volume the same way
    got = LiveSessionFile(path).read_volume()
    assert got is not None and got[0] == tl.condition_bounds[c + 1] - 1
    assert np.array_equal(got[1], last_volume)


def test_closing_mid_session_asks_then_stops_cleanly(qtbot, window: MainWindow, monkeypatch):
    w = window
    path = _start(qtbot, w)
    qtbot.waitUntil(lambda: w.live.has_data, timeout=15_000)
    asked: list[str] = []

    def answer(reply: QtWidgets.QMessageBox.StandardButton):
        def question(parent, title, text, *args, **kwargs):
            asked.append(text)
            return reply

        return question

    # "No": the session goes on
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answer(No))
    assert not w.close()
    assert len(asked) == 1 and "recording" in asked[0]
    assert w.isVisible() and w.runner.running

    # "Yes": the session ends as 'aborted', then the window closes
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answer(Yes))
    with qtbot.waitSignal(w.runner.finished, timeout=30_000) as done:
        w.close()
    assert done.args == ["aborted"]
    assert len(asked) == 2
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5_000)
    assert not w.runner.running
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "aborted"
        assert f.attrs["ended_at"]
        ev = read_table(f["events"])
        messages = list(ev["message"])
        assert "run aborted: the control app was closed" in messages
        assert messages.index("laser off") > messages.index(
            "run aborted: the control app was closed"
        )


def test_a_virtual_clock_session_runs_to_completion(qtbot, window: MainWindow):
    w = window
    w.session_bar.clock.setCurrentIndex(w.session_bar.clock.findData("virtual"))
    with qtbot.waitSignal(w.runner.finished, timeout=60_000) as done:
        path = _start(qtbot, w)
    assert done.args == ["complete"]
    expected = w.runner.engine.timeline.n_volumes
    assert w.session_bar.volumes.value() == w.session_bar.volumes.maximum() == expected
    assert w.live.volume_t == expected - 1  # the last volume is on screen
    assert "run complete" in w.event_log.messages("protocol")
    assert w.live.refreshes > 0
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "complete"
        assert f.attrs["clock"] == "VirtualClock"
        assert f["volumes/raw"].shape[0] == expected


def test_a_session_that_cannot_start_says_why(qtbot, window: MainWindow, tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    window.fish_panel.out_edit.setText(str(blocker / "sessions"))
    with qtbot.waitSignal(window.runner.finished, timeout=30_000) as done:
        qtbot.mouseClick(window.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert done.args == ["failed"]
    errors = window.event_log.messages("error")
    assert any("cannot create the output folder" in m for m in errors), errors
    assert window.session_bar.start_button.isEnabled()


def test_preflight_lights_the_devices(qtbot, window: MainWindow):
    w = window
    assert w.rig_panel.lights["writer"].state == "unknown"
    with qtbot.waitSignal(w.rig_panel.preflight_done, timeout=60_000) as done:
        qtbot.mouseClick(w.rig_panel.preflight_button, QtCore.Qt.MouseButton.LeftButton)
    names = [row[0] for row in done.args[0]]
    assert "disk space" in names
    assert w.rig_panel.preflight_list.count() == len(names)
    # the disk checks decide the writer's light (pass -> green, warn -> amber, fail -> red)
    assert w.rig_panel.lights["writer"].state in ("ok", "warning", "fault")
    assert w.rig_panel.preflight_button.isEnabled()


def test_a_bad_protocol_file_is_explained_and_blocks_start(qtbot, window: MainWindow, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[conditions]]\nname = "a"\nseconds = -1\n')
    window.protocol_panel.set_file(bad)
    assert window.protocol_panel.protocol is None
    assert "bad.toml" in window.protocol_panel.error_label.text()
    assert not window.session_bar.start_button.isEnabled()
    window.protocol_panel.builtin.setChecked(True)
    assert window.session_bar.start_button.isEnabled()


def _frame(**fields: float) -> np.void:
    rec = np.zeros((), dtype=FRAME_DTYPE)[()]
    for k, v in fields.items():
        rec[k] = v
    return rec


def test_stimulus_preview_draws_the_frame_geometry():
    display = DisplayConfig(size_px=(800, 600), px_per_mm=10.0)
    p = StimulusPreview(display, width=200)
    assert (p.height, p.width) == (150, 200)
    assert p.fish_pixel == (100.0, 75.0)
    flash = p.render(_frame(look=Look.UNIFORM, luminance=0.8))
    assert np.allclose(flash, 0.8)
    # taxis: bright on the fish's left (screen left with the heading at 90 deg)
    halves = p.render(_frame(look=Look.HALVES, left_luminance=1.0, right_luminance=0.0))
    assert halves[:, :95].min() == 1.0 and halves[:, 105:].max() == 0.0
    # a grating whose bright bar is centred 2 mm ahead of the fish (normal along +y)
    grating = {"look": Look.GRATING, "angle_deg": 90, "spatial_freq": 0.1, "luminance": 0.5}
    g = p.render(_frame(**grating, contrast=1.0, position_mm=2.0))
    # 1 preview row = 4 screen px = 0.4 mm; the head is at row 75; bars are 5 mm wide
    assert g[70, 100] == 1.0  # 1.8 mm ahead: on the bar
    assert g[56, 100] == 0.0  # 7.4 mm ahead: between bars
    assert g[56 - 25, 100] == 0.0 and g[70 + 25, 100] == 1.0  # one period (10 mm) on
    assert np.allclose(g[:, 0], g[:, -1])  # bars run across the screen
    disk = p.render(
        _frame(look=Look.DISK, luminance=1.0, contrast=0.0, disk_x_mm=10.0, disk_radius_mm=3.0)
    )
    # 10 mm right of the head = 100 screen px = 25 preview columns; radius 7.5 columns
    assert disk[75, 125] == 0.0 and disk[75, 100] == 1.0 and disk[75, 135] == 1.0
    dots = p.render(
        _frame(look=Look.DOTS, luminance=0.0, contrast=1.0, dot_seed=3, disk_radius_mm=0.5)
    )
    lit = np.count_nonzero(dots)
    assert 0 < lit < dots.size / 4
    moved = p.render(
        _frame(
            look=Look.DOTS,
            contrast=1.0,
            dot_seed=3,
            disk_radius_mm=0.5,
            dot_coherence=1.0,
            dot_displacement_mm=5.0,
        )
    )
    assert not np.array_equal(dots, moved)


def test_live_histories_break_lines_at_gaps_and_keep_spikes():
    ring = TimeRing(100, 1, max_gap_s=0.05)
    ring.extend(np.arange(10) * 0.01, np.arange(10))
    ring.extend(1.0 + np.arange(10) * 0.01, np.arange(10))  # the GUI missed 0.9 s
    t, v = ring.view()
    assert len(t) == 21 and np.isnan(v[10, 0]) and np.all(np.diff(t) > 0)
    ring.extend(2.0 + np.arange(200) * 0.01, np.ones(200))  # overflows: the newest 100 remain
    t, v = ring.view()
    assert len(t) == 100 and t[-1] == pytest.approx(3.99)
    assert len(ring.view(since_t=3.5)[0]) == 50

    y = np.zeros(60_000)
    y[31_234] = 0.4  # one spike in 10 s at 6 kHz
    tt, yy = peak_decimate(np.arange(60_000) / 6000, y, 800)
    assert len(yy) == 1600 and yy.max() == 0.4 and tt[-1] == pytest.approx(59_999 / 6000)
