"""The session file: layout (the contract), writing helpers, reading and summaries."""

from __future__ import annotations

from rig.core.layout import (
    CHANNEL_NAMES,
    FORMAT,
    FORMAT_VERSION,
    ROW,
    TABLES,
    read_table,
)
from rig.session._damage import ATTEMPTS_LIVE, open_swmr_bounded
from rig.session._reader import SessionSummary, format_summary, open_session, summarise
from rig.session.reader import SessionReader

__all__ = [
    "ATTEMPTS_LIVE",
    "CHANNEL_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "ROW",
    "TABLES",
    "SessionReader",
    "SessionSummary",
    "format_summary",
    "open_session",
    "open_swmr_bounded",
    "read_table",
    "summarise",
]
