"""The session file: layout (the contract), writing helpers, reading and summaries."""

from __future__ import annotations

from rig.session._layout import (
    CHANNEL_NAMES,
    FORMAT,
    FORMAT_VERSION,
    ROW,
    TABLES,
    read_table,
)
from rig.session._reader import SessionSummary, format_summary, open_session, summarise
from rig.session.reader import SessionReader

__all__ = [
    "CHANNEL_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "ROW",
    "TABLES",
    "SessionReader",
    "SessionSummary",
    "format_summary",
    "open_session",
    "read_table",
    "summarise",
]
