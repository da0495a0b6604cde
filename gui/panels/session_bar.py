"""The session bar: Start / Stop / Abort, the clock, and the run's vital signs at a glance.

Stop lets the current condition finish (the block stays whole), then ends the
session; Abort ends it at the next chunk. Either way the laser goes off first
and the file is closed with status ``aborted`` (or ``complete`` when stopping
in the last condition lets the run finish).
"""

from __future__ import annotations

import time
from collections import deque

from gui._qt import QtCore, QtWidgets
from rig.engine import RunState, RunStatus

__all__ = ["RateMeter", "SessionBar", "fmt_bytes", "fmt_clock"]


def fmt_clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class RateMeter:
    """Bytes per second over the last few seconds of (time, total bytes) readings."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._readings: deque[tuple[float, int]] = deque()

    def clear(self) -> None:
        self._readings.clear()

    def add(self, total_bytes: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._readings.append((now, total_bytes))
        while len(self._readings) > 2 and now - self._readings[0][0] > self.window_s:
            self._readings.popleft()
        (t0, b0), (t1, b1) = self._readings[0], self._readings[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


class SessionBar(QtWidgets.QWidget):
    start_clicked = QtCore.pyqtSignal()
    stop_clicked = QtCore.pyqtSignal()
    abort_clicked = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setToolTip("Arm the rig, create the session file and run the protocol")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setToolTip("Let the current condition finish, then end the session")
        self.abort_button = QtWidgets.QPushButton("Abort")
        self.abort_button.setToolTip("End the session now (laser off, file closed as 'aborted')")
        self.start_button.setStyleSheet("font-weight: bold;")
        self.abort_button.setStyleSheet("color: #d63939; font-weight: bold;")
        self.start_button.clicked.connect(self.start_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.abort_button.clicked.connect(self.abort_clicked)
        self.clock = QtWidgets.QComboBox()
        self.clock.addItem("real time", "realtime")
        self.clock.addItem("virtual (fast)", "virtual")
        self.clock.setToolTip(
            "Simulated rigs: real time paces the run to the wall clock; virtual runs as fast as "
            "the CPU allows (real hardware always runs in real time)"
        )

        self.state = QtWidgets.QLabel("idle")
        self.state.setMinimumWidth(90)
        self.elapsed = QtWidgets.QLabel("00:00")
        self.remaining = QtWidgets.QLabel("-")
        self.condition = QtWidgets.QLabel("-")
        self.condition.setMinimumWidth(110)
        self.volumes = QtWidgets.QProgressBar()
        self.volumes.setFormat("%v / %m volumes")
        self.volumes.setRange(0, 1)
        self.volumes.setValue(0)
        self.volumes.setMinimumWidth(160)
        self.dropped = QtWidgets.QLabel("0")
        self.disk = QtWidgets.QLabel("-")
        self.rate = QtWidgets.QLabel("-")
        self.warnings = QtWidgets.QLabel("0")

        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        for w in (self.start_button, self.stop_button, self.abort_button):
            lay.addWidget(w)
        lay.addWidget(QtWidgets.QLabel("clock"))
        lay.addWidget(self.clock)
        lay.addSpacing(10)
        for label, w in (
            ("", self.state),
            ("elapsed", self.elapsed),
            ("left", self.remaining),
            ("condition", self.condition),
            ("", self.volumes),
            ("dropped frames", self.dropped),
            ("disk free", self.disk),
            ("writing", self.rate),
            ("warnings", self.warnings),
        ):
            if label:
                lay.addWidget(QtWidgets.QLabel(f"<span style='color:#666'>{label}</span>"))
            lay.addWidget(w)
        lay.addStretch(1)
        self.set_running(False, can_start=True)

    @property
    def clock_kind(self) -> str:
        return str(self.clock.currentData())

    def set_running(self, running: bool, can_start: bool) -> None:
        self.start_button.setEnabled(not running and can_start)
        self.stop_button.setEnabled(running)
        self.abort_button.setEnabled(running)
        self.clock.setEnabled(not running)

    def show_status(
        self,
        st: RunStatus,
        sample_rate_hz: float,
        write_rate: float,
        disk_free: int | None,
        stopping_after: str = "",
    ) -> None:
        self.state.setText(
            f"<b>{st.state.value}</b>" + (f" (after {stopping_after})" if stopping_after else "")
        )
        colour = {
            RunState.RUNNING: "#2fb344",
            RunState.FAILED: "#d63939",
            RunState.ABORTED: "#c27c00",
        }.get(st.state, "#222222")
        self.state.setStyleSheet(f"color: {colour};")
        self.elapsed.setText(fmt_clock(st.sample / sample_rate_hz))
        self.remaining.setText(fmt_clock((st.end_sample - st.sample) / sample_rate_hz))
        self.condition.setText(
            f"{st.condition} {st.condition_name}" if st.condition_name else "lead-in"
        )
        self.volumes.setRange(0, max(1, st.volumes_expected))
        self.volumes.setValue(min(st.volumes_acquired, max(1, st.volumes_expected)))
        dropped = st.dropped_frames + st.dropped_volumes
        self.dropped.setText(
            f"{st.dropped_frames}" + (f" (+{st.dropped_volumes} vol)" if st.dropped_volumes else "")
        )
        self.dropped.setStyleSheet("color: #d63939;" if dropped else "")
        self.rate.setText(f"{fmt_bytes(write_rate)}/s")
        if disk_free is not None:
            self.disk.setText(fmt_bytes(disk_free))
        self.warnings.setText(str(st.warnings))
        self.warnings.setStyleSheet("color: #c27c00; font-weight: bold;" if st.warnings else "")

    def show_state(self, text: str) -> None:
        self.state.setText(f"<b>{text}</b>")
