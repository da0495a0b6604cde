"""Close a session file left in state ``recording`` by a crash, without losing anything.

A writer killed mid-run leaves an SWMR file whose superblock still says "open
for writing": it reads in SWMR mode but a plain open fails. ``recover`` clears
that flag (``h5clear -s``, from Debian's hdf5-tools, when it is needed), then
sets ``status = "failed"``, ``ended_at`` (when the last sample on disk was acquired,
not when ``recover`` ran), ``recovered_at`` (when it ran) and an event with what is
known: the samples and volumes that reached the disk. The condition that was
running has no row in ``/protocol/conditions`` (the engine writes a row when a
condition ends): it is rebuilt from row 4 of the stream, which holds 1 + the
condition's index on every sample it ran.

It never touches a file a live run owns (the session lock names its process),
an empty or foreign file, or a truncated one: those it diagnoses, and a
truncated file's readable part can be copied into a new file with ``salvage``.
Its rows and attributes go in through the one appender (rig/session/appender.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from rig.core.clock import utc_now_iso
from rig.core.errors import SessionFileError
from rig.core.events import Event, Kind, Source
from rig.core.lock import exclusive
from rig.session._damage import FileCheck, check_file
from rig.session.appender import SessionAppender
from rig.session.reader import salvage_advice

__all__ = ["recover"]


def _clear_flags(check: FileCheck) -> None:
    """Clear the 'open for writing' flags a crash leaves in the superblock (read without HDF5)."""
    if not check.open_for_write:
        return
    path = check.path
    tool = shutil.which("h5clear")
    if tool is None:
        raise SessionFileError(
            f"{path}: the file is still marked open for writing and h5clear is missing: "
            "install hdf5-tools (Debian: apt-get install hdf5-tools) and run zaprig recover again"
        )
    r = subprocess.run([tool, "-s", str(path)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SessionFileError(f"{path}: h5clear failed: {r.stderr.strip() or r.stdout.strip()}")


#: An event the engine could not log before the writer died: (sample, kind, message[, source]).
RecoveredEvent = tuple[int, Kind, str] | tuple[int, Kind, str, Source]


def _append_events(a: SessionAppender, events: list[RecoveredEvent]) -> None:
    now = time.time()
    a.append_events(
        [Event(int(e[0]), now, e[1], e[2], e[3] if len(e) > 3 else "engine") for e in events]
    )


def recover(path: str | Path, events: Sequence[RecoveredEvent] = ()) -> str:
    """Set status ``failed`` on an interrupted file; ``events`` (sample, kind, message[,
    source]) are appended too (the engine passes the faults the dead writer could not log,
    each with its source; without one, ``engine``)."""
    p = Path(path)
    with exclusive(p, "recovering"):
        return _recover(p, events)


def _recover(p: Path, events: Sequence[RecoveredEvent]) -> str:
    check = check_file(p)
    if (problem := check.problem()) is not None:
        hint = f"; {salvage_advice(check)[1]}" if check.truncated else ""
        raise SessionFileError(f"{p}: {problem}; not changed{hint}")
    _clear_flags(check)
    with SessionAppender.open(p) as a:
        f = a.file
        status = a.status
        n = a.n_samples
        ended = _last_sample_time(f, n)  # before our own events, which are stamped now
        if events:
            _append_events(a, list(events))
        if status != "recording":
            return f"{p}: status is already '{status}'; nothing to recover"
        t = int(f["volumes/raw"].shape[0])
        msg = f"recovered after an interruption: {n} samples and {t} volumes reached the disk"
        rebuilt = _rebuild_conditions(a, n)
        if rebuilt:
            msg += f"; rebuilt the row of condition {', '.join(rebuilt)} from row 4"
        _append_events(a, [(n, "fault", msg)])
        a.set_attrs(status="failed", ended_at=ended, recovered_at=utc_now_iso())
    return f"{p}: {msg}; status set to 'failed'"


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )  # fmt: skip


def _last_sample_time(f: h5py.File, n: int) -> str:
    """When the last sample on disk was acquired: the newest event's wall time carried on by
    the samples after it (at the stream's rate), or the start plus the samples."""
    fs = float(f["stimuli_and_ephys"].attrs.get("sample_rate_hz", 0.0)) or 6000.0
    ev = f["events"]
    try:
        samples, walls = ev["sample"][...], ev["wall_time"][...]
    except (KeyError, OSError):
        samples = walls = np.zeros(0)
    ok = (samples <= n) & np.isfinite(walls) & (walls > 0)
    if ok.any():
        k = int(np.flatnonzero(ok)[np.argmax(samples[ok])])
        return _iso(float(walls[k]) + (n - int(samples[k])) / fs)
    try:
        start = datetime.fromisoformat(str(f.attrs["started_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return utc_now_iso()
    return _iso(start.timestamp() + n / fs)


def _condition_names(f: h5py.File) -> dict[int, str]:
    """Condition names: the stored protocol's, else the 'condition c (name) starts' events."""
    try:
        conds = json.loads(str(f.attrs["protocol"]))["conditions"]
        return {i: str(c["name"]) for i, c in enumerate(conds)}
    except (KeyError, ValueError, TypeError):
        pass
    out: dict[int, str] = {}
    for m in f["events"]["message"][...]:
        text = m.decode() if isinstance(m, bytes) else str(m)
        if (hit := re.search(r"condition (\d+) \((.*)\) starts", text)) is not None:
            out[int(hit[1])] = hit[2]
    return out


def _rebuild_conditions(app: SessionAppender, n: int, block: int = 1 << 20) -> list[str]:
    """Rows of ``/protocol/conditions`` for the conditions the crash left without one (the one
    running, or more if their rows had not reached the disk), from row 4 of the stream:
    1 + the condition's index from its first sample to its last."""
    f = app.file
    table = f["protocol/conditions"]
    done = table["stop_sample"][...]
    have = set(int(i) for i in table["index"][...])
    s0 = int(done.max()) if len(done) else 0
    row4 = []
    for a in range(s0, n, block):
        row4.append(f["stimuli_and_ephys"][a : min(n, a + block), 4])
    if not row4:
        return []
    r = np.rint(np.concatenate(row4)).astype(np.int64)
    edges = np.flatnonzero(np.diff(r) != 0) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(r)]])
    vs = f["volumes/start_sample"][...]
    names = _condition_names(f)
    rows: dict[str, list[object]] = {k: [] for k in (
        "name", "index", "start_volume", "stop_volume", "start_sample", "stop_sample")}  # fmt: skip
    for a, b in zip(starts, stops, strict=True):
        c = int(r[a]) - 1
        if c < 0 or c in have:
            continue
        a, b = s0 + int(a), s0 + int(b)
        rows["name"].append(names.get(c, f"condition {c}"))
        rows["index"].append(c)
        # the volume whose first plane the condition starts in, and the volumes begun before
        # its last sample (as the engine counts a condition cut short)
        rows["start_volume"].append(max(0, int(np.searchsorted(vs, a, side="right")) - 1))
        rows["stop_volume"].append(int(np.searchsorted(vs, b, side="left")))
        rows["start_sample"].append(a)
        rows["stop_sample"].append(b)
        have.add(c)
    if not rows["index"]:
        return []
    app.append("protocol/conditions", {
        "name": np.array(rows["name"], dtype=object),
        "index": np.array(rows["index"], dtype=np.int32),
        **{k: np.array(rows[k], dtype=np.int64)
           for k in ("start_volume", "stop_volume", "start_sample", "stop_sample")},
    })  # fmt: skip
    return [f"{i} ({nm})" for i, nm in zip(rows["index"], rows["name"], strict=True)]
