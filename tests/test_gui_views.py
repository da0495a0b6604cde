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

from gui._qt import QtCore, QtGui, QtWidgets
from gui.app import MainWindow

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
    for text in (w.live.status_text.text(), w.event_log.source_label.text(), w.summary.title.text()):
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
    # the past view shows what the live view shows: swim power too, over the minute kept
    x, y = live.power_curves[0].getData()
    assert x is not None and len(x) > 100 and np.nanmax(y) > 0
    assert live.paused and live.pause_button.text() == "Live"  # scroll and zoom over it
    live.set_paused(False)
    assert live.gain_plot.viewRange()[0] == pytest.approx([-5.0, 0.0])

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
