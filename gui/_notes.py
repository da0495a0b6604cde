"""Notes written after a run into the session file it left behind.

During a run a note goes through the engine, at the current DAQ sample. Once the
file is closed, the writer process is gone: a note about the session (the fish
moved at the end, the electrode came off) is appended here to the file's
``/events`` at its last sample, kind ``note``, marked "after the run", so it
travels with the data. Only the event table grows; nothing else is touched.
"""

from __future__ import annotations

import time
from pathlib import Path

from rig.core.errors import SessionFileError
from rig.core.events import Event
from rig.core.lock import exclusive
from rig.session.appender import SessionAppender

__all__ = ["AFTER_RUN", "BEFORE_RUN", "append_note"]

AFTER_RUN = "(after the run) "
BEFORE_RUN = "(before the run) "


def append_note(path: str | Path, text: str) -> int:
    """Append a note to a closed session file; returns the sample it was logged at."""
    p = Path(path)
    try:
        with exclusive(p, "a note after the run"), SessionAppender.open(p) as a:
            if a.status == "recording":
                raise SessionFileError(
                    f"{p}: the session is still recording (or was interrupted: run "
                    "`zaprig recover` first); notes go in through the running session"
                )
            sample = a.n_samples
            # the one appender: the event columns as the writer makes them (rig.core.events)
            a.append_events([Event(sample, time.time(), "note", AFTER_RUN + text, "user")])
    except OSError as e:
        raise SessionFileError(f"{p}: cannot add the note: {e}") from None
    return sample
