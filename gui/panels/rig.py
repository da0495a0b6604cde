"""The Rig panel: which rig config, what each device is (simulated or real), and preflight.

Each device has a status light: grey until something is known, blue for a
simulated device, green once preflight or a run has it working, amber for a
preflight warning, red for a failure. Preflight (``rig.preflight``) opens and
closes every device and measures the disk, which takes seconds, so it runs on a
worker thread and reports back through a signal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gui._qt import QtCore, QtWidgets, StatusLight
from rig.config import DEFAULT_CONFIG, RigConfig, load_config
from rig.errors import ZaprigError
from stimuli.protocol import Protocol

__all__ = ["DEVICES", "RigPanel", "device_of_check"]

#: Device rows: key, label.
DEVICES: tuple[tuple[str, str], ...] = (
    ("daq", "DAQ"),
    ("microscope", "Microscope"),
    ("laser", "Laser"),
    ("display", "Display"),
    ("writer", "Disk / writer"),
)

_CHECK_DEVICE = {
    "daq": "daq",
    "microscope": "microscope",
    "camera rate": "microscope",
    "laser": "laser",
    "display": "display",
    "disk space": "writer",
    "disk speed": "writer",
}
_CHECK_STATE = {"pass": "ok", "warn": "warning", "fail": "fault"}
_RANK = {"unknown": 0, "simulated": 1, "ok": 2, "warning": 3, "fault": 4}


def device_of_check(name: str) -> str | None:
    """Which device row a preflight check's result belongs to."""
    return _CHECK_DEVICE.get(name.strip().lower())


def describe_devices(rig: RigConfig) -> dict[str, tuple[str, bool]]:
    """Per device: a one-line description and whether it is simulated."""
    d, m, s, la, w = rig.daq, rig.microscope, rig.display, rig.laser, rig.writer
    z, y, x = m.shape_zyx
    return {
        "daq": (
            f"{d.backend}"
            + ("" if d.backend == "sim" else f" {d.device}")
            + f", {d.sample_rate_hz:g} Hz, chunks of {d.chunk_samples}",
            d.backend == "sim",
        ),
        "microscope": (
            f"{m.backend}, {z} planes of {x} x {y} every {m.volume_period_s:g} s",
            m.backend == "sim",
        ),
        "laser": (
            f"{la.backend}"
            + ("" if la.backend in ("sim", "none") else f" on {la.port}")
            + f", {la.power_mw:g} mW",
            la.backend == "sim",
        ),
        "display": (
            f"{s.backend}, {s.size_px[0]} x {s.size_px[1]} at {s.refresh_hz:g} Hz",
            s.backend == "headless",
        ),
        "writer": (f"HDF5, compression {w.compression}, {w.volume_slots} volume slots", False),
    }


class RigPanel(QtWidgets.QWidget):
    """Chooses the rig config and shows its devices."""

    #: A new valid config was loaded.
    config_changed = QtCore.pyqtSignal(object)
    #: Preflight finished: list of (check name, status, detail, fix).
    preflight_done = QtCore.pyqtSignal(object)
    #: A message for the event log: (kind, text).
    message = QtCore.pyqtSignal(str, str)

    def __init__(
        self,
        config_path: Path | None,
        preflight_inputs: Callable[[], tuple[RigConfig, Protocol, Path]],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.rig: RigConfig | None = None
        self.config_path = Path(config_path) if config_path else DEFAULT_CONFIG
        self._preflight_inputs = preflight_inputs
        self._preflight_thread: threading.Thread | None = None

        self.path_edit = QtWidgets.QLineEdit(str(self.config_path))
        self.path_edit.setToolTip("The rig config TOML (hardware_configs/*.toml)")
        self.path_edit.editingFinished.connect(lambda: self.load(Path(self.path_edit.text())))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)

        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d63939;")
        self.error_label.hide()

        grid = QtWidgets.QGridLayout()
        self.lights: dict[str, StatusLight] = {}
        self.details: dict[str, QtWidgets.QLabel] = {}
        for i, (key, label) in enumerate(DEVICES):
            light = StatusLight()
            detail = QtWidgets.QLabel("-")
            detail.setWordWrap(True)
            grid.addWidget(light, i, 0)
            grid.addWidget(QtWidgets.QLabel(f"<b>{label}</b>"), i, 1)
            grid.addWidget(detail, i, 2)
            self.lights[key] = light
            self.details[key] = detail
        grid.setColumnStretch(2, 1)

        self.preflight_button = QtWidgets.QPushButton("Preflight")
        self.preflight_button.setToolTip(
            "Open and close every device, check the camera timing and the disk (no laser emission)"
        )
        self.preflight_button.clicked.connect(self.run_preflight)
        self.preflight_list = QtWidgets.QListWidget()
        self.preflight_list.setMaximumHeight(150)
        self.preflight_done.connect(self._show_preflight)

        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.title)
        lay.addWidget(self.error_label)
        lay.addLayout(grid)
        lay.addWidget(self.preflight_button)
        lay.addWidget(self.preflight_list)
        lay.addStretch(1)
        self.load(self.config_path)

    # -- config -----------------------------------------------------------------------------
    def _browse(self) -> None:
        start = str(self.config_path.parent)
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Rig config", start, "Rig config (*.toml)"
        )
        if path:
            self.load(Path(path))

    def load(self, path: Path) -> bool:
        """Load and validate a rig config; on error the panel says what is wrong."""
        try:
            rig = load_config(path)
        except ZaprigError as e:
            self.error_label.setText(str(e))
            self.error_label.show()
            self.message.emit("error", str(e))
            return False
        self.error_label.hide()
        self.config_path = Path(path)
        self.path_edit.setText(str(path))
        self.rig = rig
        kind = "simulated rig" if rig.simulated else "real rig"
        self.title.setText(f"<b>{rig.name}</b> ({kind}) {rig.description}")
        for key, (text, simulated) in describe_devices(rig).items():
            self.details[key].setText(text)
            self.lights[key].set_state("simulated" if simulated else "unknown", text)
        self.preflight_list.clear()
        self.config_changed.emit(rig)
        return True

    def set_running(self, running: bool) -> None:
        """While a session runs the config is fixed and its devices are in use."""
        self.path_edit.setEnabled(not running)
        self.preflight_button.setEnabled(not running and self._preflight_thread is None)
        if running:
            for key, light in self.lights.items():
                if light.state != "fault":
                    light.set_state("ok", f"{self.details[key].text()} (in use)")

    def set_device_state(self, key: str, state: str, why: str) -> None:
        self.lights[key].set_state(state, why)

    # -- preflight --------------------------------------------------------------------------
    def run_preflight(self) -> None:
        try:
            from rig.preflight import run_checks
        except ImportError as e:
            self.preflight_list.clear()
            self.preflight_list.addItem(f"preflight unavailable: {e}")
            self.message.emit("warning", f"preflight unavailable: {e}")
            return
        try:
            rig, protocol, out_dir = self._preflight_inputs()
        except ZaprigError as e:
            self.message.emit("error", f"preflight: {e}")
            return
        self.preflight_button.setEnabled(False)
        self.preflight_list.clear()
        self.preflight_list.addItem("preflight running…")

        def work() -> None:
            try:
                checks: Sequence[Any] = run_checks(rig, protocol, out_dir)
                rows = [
                    (str(c.name), str(c.status), str(c.detail), str(getattr(c, "fix", "")))
                    for c in checks
                ]
            except Exception as e:
                rows = [("preflight", "fail", f"{type(e).__name__}: {e}", "")]
            self.preflight_done.emit(rows)

        self._preflight_thread = threading.Thread(target=work, name="zaprig-preflight")
        self._preflight_thread.start()

    def _show_preflight(self, rows: list[tuple[str, str, str, str]]) -> None:
        if self._preflight_thread is not None:
            self._preflight_thread.join()
            self._preflight_thread = None
        self.preflight_button.setEnabled(True)
        self.preflight_list.clear()
        worst: dict[str, tuple[str, str]] = {}
        for name, status, detail, fix in rows:
            text = f"{status.upper():<5} {name}: {detail}" + (f"  → {fix}" if fix else "")
            item = QtWidgets.QListWidgetItem(text)
            state = _CHECK_STATE.get(status, "warning")
            item.setForeground(
                {
                    "ok": QtCore.Qt.GlobalColor.darkGreen,
                    "warning": QtCore.Qt.GlobalColor.darkYellow,
                }.get(state, QtCore.Qt.GlobalColor.red)
            )
            self.preflight_list.addItem(item)
            key = device_of_check(name)
            if key is not None and _RANK[state] >= _RANK[worst.get(key, ("unknown", ""))[0]]:
                worst[key] = (state, f"{name}: {detail}")
        for key, (state, why) in worst.items():
            self.lights[key].set_state(state, why)
        n_fail = sum(r[1] == "fail" for r in rows)
        n_warn = sum(r[1] == "warn" for r in rows)
        self.message.emit(
            "warning" if n_fail else "info",
            f"preflight: {len(rows)} checks, {n_fail} failed, {n_warn} warnings",
        )

    def shutdown(self) -> None:
        """Wait for a running preflight (it opens devices and must close them)."""
        if self._preflight_thread is not None:
            self._preflight_thread.join()
            self._preflight_thread = None
