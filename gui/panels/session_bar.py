"""The session bar: Start / Stop / Abort, the clock, and the run's vital signs at a glance.

Stop lets the current condition finish (the block stays whole), then ends the
session with status ``stopped`` (``complete`` when stopping in the last
condition lets the run finish); Abort, set apart and confirmed first, ends it at
the next chunk as ``aborted``. Either way the laser goes off first.

The laser lamp shows what the laser driver last *confirmed* (``RunStatus.laser``),
never what was requested: after a failed switch-off it reads UNKNOWN, because
the laser may still be emitting. Drop counts are the ones the file records
(planes never delivered by the camera, volumes the writer could not take), so
the bar and ``zaprig inspect`` agree.
"""

from __future__ import annotations

import time
from collections import deque

from gui._lifecycle import STYLES, Phase
from gui._qt import QtCore, QtWidgets
from rig.core.vocabulary import format_drops
from rig.engine import RunStatus

__all__ = ["LASER_STYLES", "RateMeter", "SessionBar", "fmt_bytes", "fmt_clock"]

#: Laser lamp text colours, by the driver-confirmed state.
LASER_STYLES: dict[str, str] = {
    "on": "background: #f59f00; color: black;",
    "off": "background: #e6e6e6; color: #333333;",
    "unknown": "background: #d63939; color: white;",
}


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
    #: The Warnings or Faults count was clicked: show only that kind in the log ("warning"/"fault").
    filter_clicked = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setToolTip("Arm the rig, create the session file and run the protocol")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setToolTip(
            "Let the current condition finish, then end the session (status 'stopped')"
        )
        self.abort_button = QtWidgets.QPushButton("Abort…")
        self.abort_button.setToolTip(
            "End the session now, mid-block (asks first; laser off, file closed as 'aborted')"
        )
        self.start_button.setStyleSheet("font-weight: bold;")
        # red only while it can be pressed: a disabled Abort must look disabled
        self.abort_button.setStyleSheet(
            "QPushButton:enabled { color: #d63939; font-weight: bold; }"
            "QPushButton:disabled { color: #a0a0a0; font-weight: normal; }"
        )
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

        self.state = QtWidgets.QLabel()
        self.state.setMinimumWidth(150)
        # "stopping after block 3 (turning)" must not run under the laser lamp
        self.state.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.laser = QtWidgets.QLabel()
        self.laser.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.laser.setMinimumWidth(120)
        self.elapsed = QtWidgets.QLabel("00:00")
        self.remaining = QtWidgets.QLabel("-")
        self.condition = QtWidgets.QLabel("-")
        self.condition.setMinimumWidth(110)
        self.volumes = QtWidgets.QProgressBar()
        self.volumes.setFormat("%v / %m volumes")
        self.volumes.setRange(0, 1)
        self.volumes.setValue(0)
        self.volumes.setMinimumWidth(160)
        self.dropped = QtWidgets.QLabel("0 planes · 0 volumes")
        self.dropped.setToolTip(
            "Camera planes never delivered (left as zeros) and volumes the writer could not "
            "take, as the session file counts them"
        )
        self.disk = QtWidgets.QLabel("-")
        self.rate = QtWidgets.QLabel("-")
        self.warnings_button = QtWidgets.QPushButton("0 warnings")
        self.faults_button = QtWidgets.QPushButton("0 faults")
        for kind, b in (("warning", self.warnings_button), ("fault", self.faults_button)):
            b.setFlat(True)
            b.setToolTip(f"Show only the {kind}s in the event log (click again for all)")
            b.clicked.connect(lambda _c=False, k=kind: self.filter_clicked.emit(k))
        self.n_warnings = 0
        self.n_faults = 0

        # two rows, so the bar fits a 1366 px laptop screen: the controls and the state
        # first, the session's figures under them
        rows = QtWidgets.QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        top = QtWidgets.QHBoxLayout()
        lay = QtWidgets.QHBoxLayout()
        rows.addLayout(top)
        rows.addLayout(lay)
        top.addWidget(self.start_button)
        top.addWidget(self.stop_button)
        top.addWidget(QtWidgets.QLabel("clock"))
        top.addWidget(self.clock)
        top.addSpacing(10)
        top.addWidget(self.state, 1)
        top.addWidget(self.laser)
        for label, w in (
            ("elapsed", self.elapsed),
            ("left", self.remaining),
            ("condition", self.condition),
            ("", self.volumes),
            ("dropped", self.dropped),
            ("disk free", self.disk),
            ("writing", self.rate),
        ):
            if label:
                lay.addWidget(QtWidgets.QLabel(f"<span style='color:#666'>{label}</span>"))
            lay.addWidget(w)
        lay.addWidget(self.warnings_button)
        lay.addWidget(self.faults_button)
        lay.addStretch(1)
        top.addSpacing(40)  # Abort is set apart from Stop: a slip of the mouse must not abort
        top.addWidget(self.abort_button)
        self.set_phase(Phase.IDLE, can_start=True)
        self.show_laser("off")

    @property
    def clock_kind(self) -> str:
        return str(self.clock.currentData())

    def set_phase(self, phase: Phase, can_start: bool, detail: str = "") -> None:
        """Buttons and the state word for where the session is in its life."""
        active = phase.active
        self.start_button.setEnabled(not active and can_start)
        self.stop_button.setEnabled(phase in (Phase.RUNNING,))
        self.abort_button.setEnabled(phase in (Phase.ARMING, Phase.RUNNING, Phase.STOPPING))
        self.clock.setEnabled(not active)
        style = STYLES[phase]
        word = phase.value.upper() if phase.ended else phase.value
        self.state.setText(f"<b>{word}</b>" + (f" {detail}" if detail else ""))
        self.state.setStyleSheet(f"color: {style.colour};")
        self.state.setToolTip(style.help)
        if phase in (Phase.ARMING, Phase.IDLE):
            self.remaining.setText("-")

    def show_laser(self, state: str) -> None:
        """The driver-confirmed laser state: "on", "off" or "unknown"."""
        if state not in LASER_STYLES:
            raise ValueError(f"laser state {state!r}: use one of {sorted(LASER_STYLES)}")
        self.laser.setText(f"<b>LASER {state.upper()}</b>")
        self.laser.setStyleSheet(f"QLabel {{ {LASER_STYLES[state]} padding: 2px 6px; }}")
        self.laser.setToolTip(
            {
                "on": "the laser driver confirmed emission on",
                "off": "the laser driver confirmed emission off (or it was never switched on)",
                "unknown": "the laser did not confirm it is off: it may still be emitting. "
                "Switch it off at its key switch or controller.",
            }[state]
        )
        self.laser_state = state

    def show_status(
        self,
        st: RunStatus,
        write_rate: float,
        disk_free: int | None,
        ended: bool = False,
    ) -> None:
        """The run's numbers; ``ended``: the session is over, so time left and rate are moot."""
        fs = st.sample_rate_hz
        self.elapsed.setText(fmt_clock(st.sample / fs))
        self.remaining.setText("-" if ended else fmt_clock(st.remaining_s))
        if ended:
            self.condition.setText("-")
        else:
            self.condition.setText(
                f"{st.condition} {st.condition_name}" if st.condition_name else "lead-in"
            )
        self.volumes.setRange(0, max(1, st.volumes_expected))
        self.volumes.setValue(min(st.volumes_acquired, max(1, st.volumes_expected)))
        self.show_drops(st.dropped_planes, st.dropped_volumes, st.dropped_frames)
        self.rate.setText("-" if ended else f"{fmt_bytes(write_rate)}/s")
        if disk_free is not None:
            self.disk.setText(fmt_bytes(disk_free))
        self.show_laser(st.laser)
        self.show_counts(st.warnings, st.faults)

    def show_drops(self, planes: int, volumes: int, stimulus_frames: int = 0) -> None:
        self.dropped_planes, self.dropped_volumes = planes, volumes
        # the words inspect, the summary and the report use (rig/core/vocabulary.py)
        self.dropped.setText(format_drops(planes, volumes, stimulus_frames))
        self.dropped.setStyleSheet("color: #d63939;" if planes or volumes else "")

    def show_counts(self, warnings: int, faults: int, fault_events: int | None = None) -> None:
        """``faults`` counts incidents (one per thing that went wrong); the log's fault rows
        (``fault_events``) can be more: a lost laser also fails the session."""
        self.n_warnings, self.n_faults = warnings, faults
        self.warnings_button.setText(f"{warnings} warning" + ("" if warnings == 1 else "s"))
        events = f" ({fault_events} events)" if fault_events not in (None, faults) else ""
        self.faults_button.setText(f"{faults} fault" + ("" if faults == 1 else "s") + events)
        self.warnings_button.setStyleSheet(
            "color: #c27c00; font-weight: bold;" if warnings else "color: #666;"
        )
        self.faults_button.setStyleSheet(
            "color: #d63939; font-weight: bold;" if faults else "color: #666;"
        )

    def show_disk(self, free: int | None, needed: int | None) -> None:
        """Disk free next to what the selected session will need (before a run)."""
        if free is None:
            self.disk.setText("-")
            return
        text = fmt_bytes(free) + (f" (needs {fmt_bytes(needed)})" if needed else "")
        self.disk.setText(text)
        self.disk.setStyleSheet("color: #d63939;" if needed and free < needed * 1.05 else "")
