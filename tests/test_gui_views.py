"""The app's views say which file they show (issue 29): a past file opens read-only under its
name; a damaged one that fails to open leaves nothing of the last file on screen, and the
reason is shown in full with the commands that help."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

from collections.abc import Iterator
from pathlib import Path

import pytest

from gui._qt import QtCore
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
    assert GOOD.name in w.live.status_text.text and "read-only" in w.live.status_text.text
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
    for text in (w.live.status_text.text, w.event_log.source_label.text(), w.summary.title.text()):
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
