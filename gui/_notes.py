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

import h5py

from rig.core.errors import SessionFileError
from rig.core.events import Event, event_columns
from rig.core.layout import append_columns
from rig.core.lock import exclusive

__all__ = ["AFTER_RUN", "BEFORE_RUN", "append_note"]

AFTER_RUN = "(after the run) "
BEFORE_RUN = "(before the run) "


def append_note(path: str | Path, text: str) -> int:
    """Append a note to a closed session file; returns the sample it was logged at."""
    p = Path(path)
    try:
        with exclusive(p, "a note after the run"), h5py.File(p, "a") as f:
            if str(f.attrs.get("status", "")) == "recording":
                raise SessionFileError(
                    f"{p}: the session is still recording (or was interrupted: run "
                    "`zaprig recover` first); notes go in through the running session"
                )
            sample = int(f["stimuli_and_ephys"].shape[0])
            # the one definition of the event columns (rig.core.events), as the writer uses it
            note = Event(sample, time.time(), "note", AFTER_RUN + text, "user")
            append_columns(f["events"], event_columns([note]), only_existing=True)
    except OSError as e:
        raise SessionFileError(f"{p}: cannot add the note: {e}") from None
    return sample
