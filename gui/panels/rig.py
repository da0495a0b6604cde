"""The Rig panel: which rig config, what each device is (simulated or real), and preflight.

Each device has a status light: grey until something is known, blue for a
simulated device, green once preflight or a run has it working, amber for a
preflight warning, red for a failure. Preflight (``rig.preflight``) opens and
closes every device and measures the disk, which takes seconds, so it runs on a
worker thread and reports back through a signal.

Preflight's disk check depends on the protocol and its time scale, so a result
is remembered with the (config, protocol) it was run for; :meth:`RigPanel.is_fresh`
tells the main window whether it still applies, and the panel says "stale"
when it does not. Known rigs are listed from ``hardware_configs/`` beside Browse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gui._qt import QtCore, QtWidgets, StatusLight
from rig.core.config import DEFAULT_CONFIG, RigConfig, load_config
from rig.core.errors import ZaprigError
from stimuli.protocol import Protocol

__all__ = ["DEVICES", "RigPanel", "device_of_check", "known_configs"]

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


def known_configs(folder: Path | None = None) -> list[Path]:
    """The rig configs shipped in ``hardware_configs/`` (sorted by name)."""
    folder = folder or DEFAULT_CONFIG.parent
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


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
        #: The (config path, protocol sha256) the shown preflight result was run for.
        self.preflight_key: tuple[str, str] | None = None
        self._pending_key: tuple[str, str] | None = None
        self.preflight_failed = False

        self.rig_combo = QtWidgets.QComboBox()
        self.rig_combo.setToolTip("The rig config (hardware_configs/*.toml, or one browsed to)")
        self.rig_combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        for path in known_configs():
            self.rig_combo.addItem(path.stem, str(path))
        self.rig_combo.activated.connect(lambda i: self.load(Path(str(self.rig_combo.itemData(i)))))
        self.browse_button = QtWidgets.QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.rig_combo, 1)
        row.addWidget(self.browse_button)

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
        self.preflight_list.setWordWrap(True)
        self.preflight_list.setMinimumHeight(150)
        self.preflight_stale = QtWidgets.QLabel()
        self.preflight_stale.setWordWrap(True)
        self.preflight_stale.setStyleSheet("color: #c27c00; font-weight: bold;")
        self.preflight_stale.hide()
        self.preflight_done.connect(self._show_preflight)

        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.title)
        lay.addWidget(self.error_label)
        lay.addLayout(grid)
        lay.addWidget(self.preflight_button)
        lay.addWidget(self.preflight_stale)
        lay.addWidget(self.preflight_list, 1)
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
        i = self.rig_combo.findData(str(path))
        if i < 0:
            self.rig_combo.addItem(Path(path).stem, str(path))
            i = self.rig_combo.count() - 1
        self.rig_combo.setCurrentIndex(i)
        self.rig_combo.setToolTip(str(path))
        self.rig = rig
        kind = "simulated rig" if rig.simulated else "real rig"
        self.title.setText(f"<b>{rig.name}</b> ({kind}) {rig.description}")
        for key, (text, simulated) in describe_devices(rig).items():
            self.details[key].setText(text)
            self.lights[key].set_state("simulated" if simulated else "unknown", text)
        self.preflight_list.clear()
        self.preflight_key = None
        self.preflight_stale.hide()
        self.config_changed.emit(rig)
        return True

    def set_running(self, running: bool) -> None:
        """While a session runs the config is fixed and its devices are in use."""
        self.rig_combo.setEnabled(not running)
        self.browse_button.setEnabled(not running)
        self.preflight_button.setEnabled(not running and self._preflight_thread is None)
        for key, light in self.lights.items():
            if light.state == "fault":
                continue  # a fault stays lit after the session: it is what to look at
            if running:
                light.set_state("ok", f"{self.details[key].text()} (in use)")
            elif light.state == "ok" and "(in use)" in light.toolTip():
                # the session is over: the device is no longer known to be working right now
                sim = self.rig is not None and describe_devices(self.rig)[key][1]
                light.set_state("simulated" if sim else "unknown", self.details[key].text())

    # -- preflight freshness ----------------------------------------------------------------
    def is_fresh(self, protocol: Protocol | None) -> bool:
        """A preflight result exists for this config and this (scaled) protocol."""
        return protocol is not None and self.preflight_key == (
            str(self.config_path),
            protocol.sha256,
        )

    def check_stale(self, protocol: Protocol | None) -> None:
        """Say so when the shown preflight was run for another protocol or time scale."""
        stale = self.preflight_key is not None and not self.is_fresh(protocol)
        self.preflight_stale.setVisible(stale)
        if stale:
            self.preflight_stale.setText(
                "Preflight is stale: the protocol or time scale changed since it ran "
                "(its disk estimate no longer applies). Run it again."
            )

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
        self.preflight_stale.hide()
        self.preflight_list.addItem(f"preflight running for {protocol.name}…")
        self._pending_key = (str(self.config_path), protocol.sha256)

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
        self.preflight_key = self._pending_key
        self.preflight_failed = any(r[1] == "fail" for r in rows)
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
