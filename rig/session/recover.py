"""Close a session file left in state ``recording`` by a crash, without losing anything.

A writer killed mid-run leaves an SWMR file whose superblock still says "open
for writing": it reads in SWMR mode but a plain open fails. ``recover`` clears
that flag (``h5clear -s``, from Debian's hdf5-tools, when it is needed), then
sets ``status = "failed"``, ``ended_at`` and a ``recovered_at`` note with what is
known: the samples and volumes that reached the disk.

It never touches a file a live run owns (the session lock names its process),
an empty or foreign file, or a truncated one: those it diagnoses, and a
truncated file's readable part can be copied into a new file with ``salvage``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import h5py

from rig.clock import utc_now_iso
from rig.errors import SessionFileError
from rig.events import Event, event_columns
from rig.session._damage import check_file
from rig.session._layout import FORMAT, append_columns
from rig.session._lock import refuse_if_live, remove_stale_lock

__all__ = ["recover"]


def _clear_flags(path: Path) -> None:
    try:
        with h5py.File(path, "r"):
            return
    except OSError:
        pass
    tool = shutil.which("h5clear")
    if tool is None:
        raise SessionFileError(
            f"{path}: the file is still marked open for writing and h5clear is missing: "
            "install hdf5-tools (Debian: apt-get install hdf5-tools) and run zaprig recover again"
        )
    r = subprocess.run([tool, "-s", str(path)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SessionFileError(f"{path}: h5clear failed: {r.stderr.strip() or r.stdout.strip()}")


def _append_events(f: h5py.File, events: list[tuple[int, str, str]]) -> None:
    now = time.time()
    rows = [Event(int(s), now, k, m, source="engine") for s, k, m in events]
    append_columns(f["events"], event_columns(rows), only_existing=True)


def recover(path: str | Path, events: Sequence[tuple[int, str, str]] = ()) -> str:
    """Set status ``failed`` on an interrupted file; ``events`` (sample, kind, message) are
    appended too (the engine passes the faults the dead writer could not log)."""
    p = Path(path)
    refuse_if_live(p, "recovering")
    check = check_file(p)
    if (problem := check.problem()) is not None:
        hint = (
            f"; copy what is readable into a new file: zaprig recover --salvage NEW.h5 {p}"
            if check.truncated
            else ""
        )
        raise SessionFileError(f"{p}: {problem}; not changed{hint}")
    _clear_flags(p)
    try:
        f = h5py.File(p, "r+")
    except OSError as e:
        raise SessionFileError(f"{p}: cannot open for recovery: {e}") from None
    with f:
        if str(f.attrs.get("format", "")) != FORMAT:
            raise SessionFileError(f"{p}: not a zaprig session file")
        status = str(f.attrs.get("status", ""))
        if events:
            _append_events(f, list(events))
        if status != "recording":
            remove_stale_lock(p)
            return f"{p}: status is already '{status}'; nothing to recover"
        n = int(f["stimuli_and_ephys"].shape[0])
        t = int(f["volumes/raw"].shape[0])
        msg = f"recovered after an interruption: {n} samples and {t} volumes reached the disk"
        _append_events(f, [(n, "fault", msg)])
        f.attrs["status"] = "failed"
        f.attrs["ended_at"] = utc_now_iso()
        f.attrs["recovered_at"] = utc_now_iso()
    remove_stale_lock(p)
    return f"{p}: {msg}; status set to 'failed'"
