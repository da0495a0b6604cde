"""The brain-readout panel, offscreen with real Qt widgets: plots, raster, picking by click,
and a virtual-time session's readout arriving through the engine runner."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyqt6")

from pathlib import Path

import numpy as np

from gui._engine_process import EngineRunner
from gui._qt import QtCore, QtWidgets
from gui.panels.readout import RASTER_ROWS, ReadoutPanel
from rig.core.config import RigConfig, load_config
from rig.engine import Engine
from rig.readout import LiveRow
from stimuli.library import Flash
from stimuli.protocol import Protocol, condition, step


def _row(t: int, n: int, drift: float) -> LiveRow:
    dff = np.zeros(n, np.float32)
    dff[t % n] = 1.0
    return LiveRow(
        volume=t,
        drift_um=np.array([0.0, drift, 0.0]),
        brightness=np.full(4, 1.0 - 0.01 * t, np.float32),
        traces_raw=np.full(n, 100.0, np.float32),
        traces_dff=dff,
        seconds=0.01,
    )


def test_panel_draws_drift_threshold_brightness_and_a_grouped_raster(qtbot) -> None:
    panel = ReadoutPanel()
    qtbot.addWidget(panel)
    panel.new_session(3.0, 0.9, (4, 64, 64))
    panel.show()
    n = 2500  # more neurons than raster rows: grouped
    panel.add_rows([_row(t, n, drift=0.5 * t) for t in range(1, 11)])
    assert panel.threshold_line.value() == 3.0
    x, y = panel.drift_norm.getData()
    assert x.tolist() == list(range(1, 11)) and np.allclose(y, 0.5 * np.arange(1, 11))
    _, b = panel.bright_mean.getData()
    assert np.allclose(b, 1.0 - 0.01 * np.arange(1, 11))
    image = panel.raster_image.image
    assert image is not None and image.shape[1] == 10 and image.shape[0] <= RASTER_ROWS
    assert image.shape[0] == -(-n // -(-n // RASTER_ROWS))  # groups of ceil(n / rows)
    assert "above the warning threshold" in panel.status.text()


def test_clicking_the_max_projection_picks_the_nearest_neuron(qtbot) -> None:
    panel = ReadoutPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.new_session(5.0, 0.9, (4, 64, 64))
    positions = np.array([[1.0, 10.0, 12.0], [2.0, 40.0, 50.0], [3.0, 55.0, 8.0]])
    panel.set_labels(np.array([1, 2, 3]), positions)
    panel.show()
    panel.add_rows([_row(t, 3, 0.0) for t in range(1, 6)])
    vol = np.zeros((4, 32, 32), np.uint16)  # subsampled 2x, as the engine runner sends it
    vol[2, 20, 25] = 500
    panel.show_volume(vol)
    qtbot.waitExposed(panel)
    QtWidgets.QApplication.processEvents()  # the view's range follows the new image lazily
    # click where neuron 1 (y 40, x 50 in voxels) is drawn: image pixel (25, 20)
    scene = panel.mip_view.mapViewToScene(QtCore.QPointF(25.3, 20.3))
    where = panel.images.mapFromScene(scene)
    with qtbot.waitSignal(panel.picked, timeout=5000) as picked:
        qtbot.mouseClick(panel.images.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=where)
    assert picked.args == [1]
    x, y = panel.pick_curves[0].getData()
    assert len(x) == 5  # the picked neuron's ΔF/F over the volumes shown
    assert np.array_equal(y, [_row(t, 3, 0.0).traces_dff[1] for t in range(1, 6)])
    assert panel.pick_at(9.0, 11.0) == 0  # and by position: the nearest neuron
    assert list(panel.picks) == [1, 0]


def test_a_virtual_session_feeds_the_panel_through_the_runner(qtbot, tmp_path: Path) -> None:
    data = load_config().model_dump()
    data["readout"] = {"enabled": True, "reference_volumes": 2, "drift_warn_um": 4.0}
    rig = RigConfig.model_validate(data)
    proto = Protocol(
        name="flash", conditions=[condition("f", step(Flash(period_s=4, on_s=2), 12.0), seconds=12)]
    )
    engine = Engine(rig, proto, tmp_path, clock="virtual", seed=1)
    runner = EngineRunner()
    panel = ReadoutPanel()
    qtbot.addWidget(panel)
    panel.new_session(4.0, rig.microscope.volume_period_s, rig.microscope.shape_zyx)
    with qtbot.waitSignal(runner.finished, timeout=120_000):
        runner.start(engine)
    assert runner.wait(30)
    batch = runner.take()
    # the engine ran in its own process: the labels came back with its first readout row
    labels = runner.engine.live_labels if runner.engine is not None else None
    assert labels is not None
    panel.set_labels(*labels)
    panel.add_rows(batch.readout)
    assert panel.rows == engine.timeline.n_volumes - 1
    assert panel.raster().shape == (rig.sim.fish.n_neurons, panel.rows)
    assert panel.threshold_line.value() == 4.0


def test_the_control_app_shows_the_readout_of_a_session(qtbot, tmp_path: Path) -> None:
    """The main window with a rig whose readout is on: its Brain readout tab fills as it runs."""
    from gui.app import MainWindow
    from rig.core.config import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace(
        "[readout]\nenabled = false", "[readout]\nenabled = true"
    )
    config = tmp_path / "readout.toml"
    config.write_text(text, encoding="utf-8")
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(out_dir=tmp_path, settings=settings)
    qtbot.addWidget(w)
    try:
        assert w.rig_panel.load(config)
        assert w.rig_panel.rig is not None and w.rig_panel.rig.readout.enabled
        w.protocol_panel.scale.setValue(0.003)
        w.fish_panel.fish_id.setText("readout fish")
        w.session_bar.clock.setCurrentIndex(w.session_bar.clock.findData("virtual"))
        w.show()
        with (
            qtbot.waitSignal(w.runner.finished, timeout=120_000) as done,
            qtbot.waitSignal(w.runner.armed, timeout=30_000),
        ):
            qtbot.mouseClick(w.session_bar.start_button, QtCore.Qt.MouseButton.LeftButton)
        assert done.args == ["complete"]
        w._tick_live()  # what arrived after the timer's last tick
        panel = w.readout_panel
        # a row per volume from the last of the 3 reference volumes on
        assert panel.rows == w.runner.engine.timeline.n_volumes - 2
        assert len(panel.label_ids) == w.rig_panel.rig.sim.fish.n_neurons
        assert panel.threshold_line.value() == w.rig_panel.rig.readout.drift_warn_um
    finally:
        w.shutdown()
