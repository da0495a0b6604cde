"""zaprig: control software for a closed-loop VR light-sheet rig (zebrafish)."""

from __future__ import annotations

__version__ = "0.1.0"
