"""The app's views say which file they show (issue 29): a past file opens read-only under its
name; a damaged one that fails to open leaves nothing of the last file on screen, and the
reason is shown in full with the commands that help."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from acquisition.swims import OnlineSwimDetector, SwimParams
from gui._past_session import ZOOM_S
from gui._qt import QtCore, QtGui, QtWidgets
from gui.app import MainWindow
from rig.session import ROW, SessionReader, read_table

GOOD = Path(__file__).parent / "data" / "session-format1.h5"


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(out_dir=tmp_path, settings=settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


def test_a_truncated_file_clears_the_views_and_says_why_in_full(window: MainWindow, tmp_path):
    w = window
    assert w.open_session(GOOD)
    assert w.phase.value == "viewing"
    assert w.live.has_data and w.live.volume_t >= 0 and w.live.plane_image.image is not None
    assert GOOD.name in w.live.status_text.text() and "read-only" in w.live.status_text.text()
    assert GOOD.name in w.event_log.source_label.text()
    assert GOOD.name in w.windowTitle() and GOOD.name in w.summary.fields["file"].text()
    assert w.event_log.table.rowCount() > 1

    bad = tmp_path / "damaged.h5"
    data = GOOD.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert not w.open_session(bad)

    # nothing of the good file is left on screen, under any title
    assert w.phase.value == "idle" and w.viewing is None
    assert not w.live.has_data and w.live.volume_t == -1 and w.live.plane_image.image is None
    assert GOOD.name not in w.windowTitle() and "damaged.h5" in w.windowTitle()
    assert "read-only" not in w.windowTitle()
    for text in (
        w.live.status_text.text(),
        w.event_log.source_label.text(),
        w.summary.title.text(),
    ):
        assert GOOD.name not in text and "damaged.h5" in text
    assert "complete" not in w.summary.fields["status"].text()
    assert w.summary.fields["volumes"].text() == "-"
    assert w.session_bar.volumes.value() == 0
    assert [m for m in w.event_log.messages() if GOOD.name in m] == []

    # the reason in full, with the commands that help, in the banner and the summary
    details = w.summary.details.toPlainText()
    assert "truncated" in details and str(bad) in details
    assert f"zaprig recover --salvage NEW.h5 {bad}" in details
    assert w.setup_tabs.currentWidget() is w.summary
    banner = w.fault_banner.text
    assert "CANNOT OPEN damaged.h5" in banner and "zaprig recover --salvage" in banner
    assert any("cannot open" in m for m in w.event_log.messages("error"))


def _wheel(widget: QtWidgets.QWidget, pos: QtCore.QPointF, steps: int) -> None:
    """A real mouse-wheel event at ``pos`` of ``widget`` (zooms what is under it)."""
    ev = QtGui.QWheelEvent(
        pos,
        QtCore.QPointF(widget.mapToGlobal(pos.toPoint())),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120 * steps),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(widget, ev)


def test_the_past_view_has_swim_power_and_the_views_pause_zoom_and_take_contrast(
    window: MainWindow,
):
    w = window
    assert w.open_session(GOOD)
    live = w.live
    # the past view shows what the live view shows: swim power too
    x, y = live.power_curves[0].getData()
    assert x is not None and len(x) > 100 and np.nanmax(y) > 0
    # scroll and zoom over it; there is nothing to follow, so it stays paused
    assert live.paused and not live.pause_button.isEnabled()
    whole = live.gain_plot.viewRange()[0]
    live.set_paused(False)
    assert live.paused and live.gain_plot.viewRange()[0] == whole

    # the wheel over one plot scales its y axis only, and the scale stays the person's
    vb = live.tail_plots[0].getViewBox()
    before = vb.viewRange()[1]
    other = live.tail_plots[1].getViewBox().viewRange()[1]
    viewport = live.plots.viewport()
    centre = live.plots.mapFromScene(vb.sceneBoundingRect().center())
    _wheel(viewport, QtCore.QPointF(centre), 3)
    assert vb.viewRange()[1] != before and live.y_ranges[0].manual
    assert live.tail_plots[1].getViewBox().viewRange()[1] == other
    live.y_ranges[0].update(-1e6, 1e6)  # new data do not undo it
    assert vb.viewRange()[1] != before and live.y_ranges[0].manual
    live.auto_y()
    assert not live.y_ranges[0].manual

    # contrast: levels dragged on the histogram hold for the plane and the projection
    live.histogram.region.setRegion((10, 200))
    assert live.manual_levels
    live.plane_spin.setValue((live.plane_spin.value() + 1) % (live.plane_spin.maximum() + 1))
    assert list(live.plane_image.levels) == [10, 200] == list(live.mip_image.levels)
    live.auto_levels()
    assert not live.manual_levels and list(live.plane_image.levels) != [10, 200]


def test_the_past_view_shows_the_whole_session_as_the_file_holds_it(
    window: MainWindow, short_session: Path, qtbot
):
    """A recorded session longer than the live view's minute opens over its whole length:
    tail, swim power, velocity, gain and bouts from the first sample to the last, with the
    file's values (min/max per stretch when zoomed out, every sample when zoomed in)."""
    with SessionReader(short_session) as r:
        fs, n = r.sample_rate_hz, r.n_samples
        rows = np.asarray(r.stream[:n])
        frames = read_table(r.file["stimulus/frames"])
        bouts = r.bouts
        hw = r.hardware_config
    duration = n / fs
    assert duration > 60.0 and len(bouts["start_sample"]) > 0  # more than the old last minute
    w = window
    assert w.open_session(short_session)
    live = w.live
    past = live._past
    assert past is not None
    qtbot.waitUntil(lambda: past.overview.done, timeout=60_000)  # read on the app's timer
    qtbot.waitUntil(lambda: "reading the session" not in live.status_text.text(), timeout=5000)
    x0, x1 = live.gain_plot.viewRange()[0]
    assert x0 <= 0.0 and x1 >= (n - 1) / fs
    assert "the whole session" in live.status_text.text()

    # the tail: each stretch's min and max of the file's rows, the first to the last sample
    per = past.overview.per
    k = -(-n // per)
    for i, curve in enumerate(live.tail_curves):
        x, y = curve.getData()
        assert x[0] == 0.0 and x[-1] == pytest.approx(duration)
        col = rows[:, ROW["tail_left"] + i] * 1000.0
        padded = np.full(k * per, np.nan)
        padded[:n] = col
        lo, hi = np.nanmin(padded.reshape(k, per), 1), np.nanmax(padded.reshape(k, per), 1)
        assert np.allclose(y[0::2], lo, rtol=1e-6) and np.allclose(y[1::2], hi, rtol=1e-6)

    # swim power over the whole session: the online detector replayed over the file's tail
    # as the loop ran it (the session's swim rule, chunk by chunk)
    sw, chunk = hw.get("swims", {}), hw["daq"]["chunk_samples"]
    det = OnlineSwimDetector(
        fs, SwimParams.for_rule(sw.get("rule", "zaprig"), sw.get("threshold_k"), sw.get("gap_s"))
    )
    tail = rows[:, [ROW["tail_left"], ROW["tail_right"]]].astype(np.float64)
    out, when = [], []
    for s0 in range(0, n, chunk):
        det.process(tail[s0 : s0 + chunk], s0)
        out.append(det.last_power)
        when.append(det.last_eval_samples)
    power, at = np.concatenate(out), np.concatenate(when)
    for i, curve in enumerate(live.power_curves):
        x, y = curve.getData()
        assert x[0] == 0.0 and x[-1] == pytest.approx(duration)
        hi = np.full(k, -np.inf)
        np.maximum.at(hi, at // per, power[:, i])
        seen = np.isfinite(hi)
        assert seen.sum() > 0.9 * k
        assert np.allclose(y[1::2][seen], hi[seen], rtol=1e-5, atol=1e-6)
        assert np.nanmax(y) > 0  # the bouts' power rises above threshold

    # velocity and gain: every frame displayed while it recorded, as the file's table holds them
    t = frames["flip_sample"] / fs
    during = t <= duration
    assert during.sum() >= len(t) - 1  # at most the frame flipped after the last sample
    for curve, name in ((live.velocity_curve, "velocity"), (live.gain_curve, "gain")):
        x, y = curve.getData()
        assert np.array_equal(x, t[during]) and np.allclose(y, frames[name][during])
    assert t[during][-1] > duration - 1.0 and t[0] < 1.0
    # every bout of the session
    x, _ = live.bout_curve.getData()
    assert len(x) == 2 * len(bouts["start_sample"])
    assert np.allclose(x[0::2], bouts["start_sample"] / fs)

    # zoomed in: the file's own samples
    a = n // 2
    live.gain_plot.setXRange(a / fs, a / fs + 1.0, padding=0)
    assert ZOOM_S >= 1.0
    qtbot.waitUntil(lambda: live.tail_curves[1].getData()[0][0] > a / fs - 1.0, timeout=5000)
    x, y = live.tail_curves[1].getData()
    i0 = round(float(x[0]) * fs)
    assert abs(i0 - a) <= 1 and np.allclose(
        y, rows[i0 : i0 + len(y), ROW["tail_right"]] * 1000.0, rtol=1e-6
    )
    assert np.array_equal(np.round(x * fs), np.arange(i0, i0 + len(y)))
    x, y = live.power_curves[0].getData()
    shown = np.round(x * fs).astype(np.int64)
    evals = np.unique(at[(at >= shown[0]) & (at <= shown[-1])])
    assert len(x) > 100 and np.array_equal(shown, evals)
    # a chunk's last evaluation is its successor's first: the later one is drawn
    latest = dict(zip(at.tolist(), power[:, 0].tolist(), strict=True))
    assert np.allclose(y, [latest[k] for k in shown.tolist()], rtol=1e-5, atol=1e-6)
