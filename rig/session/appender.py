"""The one appender: every change made to a session file once its writer has closed it.

The writer process (acquisition/writer/_process.py) writes a session while it runs;
a note during the run reaches the file through it. After the run three things add to a
file: a note after the run (gui/_notes.py), ``zaprig recover`` (rig/session/recover.py)
and ``zaprig recover --salvage`` (rig/session/salvage.py), which makes a new file. They
all go through :class:`SessionAppender`, which appends rows only to the tables of
:data:`rig.core.layout.TABLES`, only through :func:`rig.core.layout.append_columns`
(which refuses rows that leave a column out), and events only as
:func:`rig.core.events.event_columns` builds them: the definitions the writer uses, so
no path can leave a table with columns of different lengths.

The caller holds the session's lock (:func:`rig.core.lock.exclusive`) around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rig.core.errors import SessionFileError
from rig.core.events import Event, event_columns
from rig.core.layout import FORMAT, TABLES, append_columns, create_session_file

__all__ = ["SessionAppender"]


class SessionAppender:
    """A session file open for appending rows and setting attributes. A context manager."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self.file = f
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> SessionAppender:
        """An existing session file, closed by its writer (``recover`` first clears the flag a
        crash leaves), opened read-write."""
        import hdf5plugin  # noqa: F401 - compressed sessions need the Blosc filter

        p = Path(path)
        try:
            f = h5py.File(p, "r+")
        except OSError as e:
            raise SessionFileError(f"{p}: cannot open for appending: {e}") from None
        try:
            fmt = str(f.attrs.get("format", ""))
        except (OSError, RuntimeError, KeyError):
            fmt = ""
        if fmt != FORMAT:
            f.close()
            raise SessionFileError(f"{p}: not a zaprig session file")
        return cls(f, p)

    @classmethod
    def create(cls, path: str | Path, attrs: Mapping[str, Any], **layout: Any) -> SessionAppender:
        """A new session file with every table of the layout (``create_session_file``), reopened
        out of SWMR mode so that datasets the layout does not make can be added (salvage copies
        a damaged file's into it). A failure leaves no file."""
        p = Path(path)
        try:
            create_session_file(p, attrs, **layout).close()
        except OSError as e:
            raise SessionFileError(
                f"{p}: cannot create the session file: {e.strerror or e}"
            ) from None
        try:
            return cls(h5py.File(p, "r+"), p)
        except OSError as e:
            p.unlink(missing_ok=True)
            raise SessionFileError(f"{p}: cannot reopen the new session file: {e}") from None

    def __enter__(self) -> SessionAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # -- what is there -----------------------------------------------------------------------
    @property
    def status(self) -> str:
        return str(self.file.attrs.get("status", ""))

    @property
    def n_samples(self) -> int:
        """Rows of the stream (the sample an event after the run is logged at)."""
        return int(self.file["stimuli_and_ephys"].shape[0])

    # -- appending ---------------------------------------------------------------------------
    def append(self, table: str, rows: Mapping[str, np.ndarray] | np.ndarray) -> int:
        """Append rows to ``table`` (a table of the layout); the number of rows appended.

        ``rows`` must hold every column the layout gives the table; a file of an older
        format, whose table has fewer columns, gets the columns it has.
        """
        if table not in TABLES:
            raise ValueError(f"{table}: not a table of the session layout ({', '.join(TABLES)})")
        names = set(rows.dtype.names or ()) if isinstance(rows, np.ndarray) else set(rows)
        missing = sorted(set(TABLES[table]) - names)
        unknown = sorted(names - set(TABLES[table]))
        if missing or unknown:
            raise ValueError(
                f"/{table}: rows must have exactly the layout's columns"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        return append_columns(self.file[table], rows, only_existing=True)

    def append_events(self, events: Sequence[Event]) -> int:
        """Append events to ``/events`` (their columns as the writer makes them)."""
        return self.append("events", event_columns(list(events)))

    def set_attrs(self, **attrs: Any) -> None:
        """Set root attributes (``status``, ``ended_at``, ``recovered_at`` ...)."""
        for k, v in attrs.items():
            self.file.attrs[k] = v
