"""The control app's panels: one concern each, talking to the main window through signals."""

from __future__ import annotations

from gui.panels.banner import Banner
from gui.panels.event_log import EventLog
from gui.panels.fish import FishPanel
from gui.panels.live import LivePanel
from gui.panels.protocol import ProtocolPanel
from gui.panels.readout import ReadoutPanel
from gui.panels.rig import RigPanel
from gui.panels.session_bar import SessionBar
from gui.panels.summary import SummaryPanel

__all__ = [
    "Banner",
    "EventLog",
    "FishPanel",
    "LivePanel",
    "ProtocolPanel",
    "ReadoutPanel",
    "RigPanel",
    "SessionBar",
    "SummaryPanel",
]
