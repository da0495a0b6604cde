"""Cutting each session's work into tasks (on the client, before anything is submitted).

The client reads each file's header (shape, conditions, its rig config), checks or
records the job for its output (:func:`~rig.batch._layout.check_job`), creates the
export's raw array (so the workers only open it), and lists the tasks not yet done.
A session that cannot be planned fails alone, with the reason; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.batch._layout import Task, bookkeeping, check_job, done

__all__ = ["Plan", "dff_tasks", "plan_session"]


@dataclass
class Plan:
    """One session's tasks: to run, and already complete (skipped)."""

    stem: str
    session: Path
    volumes: int = 0
    tasks: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)
    #: Why it cannot run ("" when planned).
    error: str = ""


def _ranges(start: int, stop: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) cut at multiples of ``chunk``: each piece inside one run of chunks."""
    out = []
    a = start
    while a < stop:
        b = min(stop, (a // chunk + 1) * chunk)
        out.append((a, b))
        a = b
    return out


def _job(command: str, session: Path, options: dict[str, Any]) -> dict[str, Any]:
    st = session.stat()
    return {
        "command": command,
        "session": str(session),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        **options,
    }


def plan_session(
    command: str, session: Path, out: Path, fmt: str, chunk: int, shard_volumes: bool = True
) -> Plan:
    """The tasks of ``command`` for one session (raises ZaprigError if it cannot run)."""
    from rig.core.lock import refuse_if_live
    from rig.session import SessionReader

    stem = session.stem
    plan = Plan(stem=stem, session=session)
    refuse_if_live(session, f"a batch {command}")
    with SessionReader(session) as r:
        shape = r.shape_tzyx
        hardware = str(r.attr("hardware_config", ""))
        info = None
        if command == "export" and fmt == "zapbench":
            from rig.export import session_info

            info = session_info(r)
    t_n = shape[0]
    plan.volumes = t_n
    volume_bytes = 2 * shape[1] * shape[2] * shape[3]
    options: dict[str, Any] = {}
    if command == "export":
        options = {"format": fmt}
        if fmt == "zapbench":
            options |= {"chunk_volumes": chunk, "shard_volumes": shard_volumes}
    elif command == "readout":
        options = {"chunk_volumes": chunk}
    started = check_job(out, command, stem, _job(command, session, options))
    base: dict[str, Any] = {
        "command": command,
        "session": str(session),
        "out_root": str(out),
        "stem": stem,
    }
    opts = {**options, "volume_bytes": volume_bytes}
    tasks: list[Task] = []
    if command == "export" and fmt == "zapbench":
        from rig.export import raw_array

        assert info is not None
        (out / stem).mkdir(parents=True, exist_ok=True)
        made = (out / stem / "raw" / "zarr.json").exists()
        if not (started and made):
            raw_array(info, out / stem / "raw", shard_volumes, create=True)
        o = tuple((opts | {"info": info}).items())
        tasks.append(Task(**base, kind="rest", options=o))
        tasks += [
            Task(**base, kind="range", start=a, stop=b, options=o)
            for a, b in _ranges(0, t_n, chunk)
        ]
    elif command == "export":
        tasks.append(Task(**base, kind="nwb", options=tuple(opts.items())))
    elif command == "readout":
        from rig.core.config import config_from_json

        refs = config_from_json(hardware).readout.reference_volumes if hardware else 1
        o = tuple(opts.items())
        tasks.append(Task(**base, kind="reference", stop=refs, options=o))
        tasks += [
            Task(**base, kind="range", start=a, stop=b, options=o)
            for a, b in _ranges(0, t_n, chunk)
        ]
    else:
        tasks.append(Task(**base, kind=command, options=tuple(opts.items())))
    for t in tasks:
        (plan.skipped if done(t) else plan.tasks).append(t)
    if command == "readout" and done(tasks[0]):
        # the reference is known: so is the number of label columns
        for t in dff_tasks(tasks[0]):
            (plan.skipped if done(t) else plan.tasks).append(t)
    return plan


def dff_tasks(reference: Task) -> list[Task]:
    """ΔF/F tasks, one per block of label columns, once the reference task has run."""
    from rig.batch._readout import COLUMN_BLOCK

    book = bookkeeping(Path(reference.out_root), reference.command, reference.stem)
    n = int((book / "columns").read_text(encoding="utf-8"))
    return [
        Task(
            command=reference.command,
            kind="dff",
            session=reference.session,
            out_root=reference.out_root,
            stem=reference.stem,
            start=a,
            stop=min(n, a + COLUMN_BLOCK),
            options=reference.options,
        )
        for a in range(0, n, COLUMN_BLOCK)
    ]


def session_stems(sessions: list[Path]) -> dict[str, list[Path]]:
    """Sessions by output name; two with one name would write one folder."""
    by: dict[str, list[Path]] = {}
    for s in sessions:
        by.setdefault(s.stem, []).append(s)
    return by
