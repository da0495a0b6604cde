"""The session file: layout (the contract), the one reader, the one appender, summaries.

Read a session file only through :class:`SessionReader` (live or closed); change a closed
one only through :class:`~rig.session.appender.SessionAppender` (notes after a run,
``recover``, ``salvage``). The writer process writes it while it runs.
"""

from __future__ import annotations

from rig.core.layout import (
    CHANNEL_NAMES,
    FORMAT,
    FORMAT_VERSION,
    ROW,
    TABLES,
    read_table,
)
from rig.session.reader import SessionReader, summarise
from rig.session.summary import SessionSummary, format_summary

__all__ = [
    "CHANNEL_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "ROW",
    "TABLES",
    "SessionReader",
    "SessionSummary",
    "format_summary",
    "read_table",
    "summarise",
]
