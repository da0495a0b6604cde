"""``zaprig batch``: the lab's re-analysis over many sessions, as tasks on dask.distributed.

    zaprig batch export  sessions/*.h5 --out DIR [--format zapbench|nwb]
    zaprig batch readout sessions/*.h5 --out DIR
    zaprig batch swims   sessions/*.h5 --out DIR
    zaprig batch report  sessions/*.h5 --out DIR
      [--scheduler tcp://host:8786] [--workers N] [--chunk-volumes N]

Dask (and tensorstore) are the ``batch`` extra: this package is the only one that
imports them, and only ``zaprig batch`` imports this package. docs/batch.md says how
it runs, restarts and scales.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.batch._run import SessionStatus

__all__ = ["cli_batch", "format_status"]

EXTRA_HINT = "pip install 'zaprig[batch]'"


def _missing_extra(command: str, fmt: str) -> str | None:
    """The one-line error when the batch extra is not installed, else None."""
    needed = ["dask", "distributed"]
    if command == "readout" or (command == "export" and fmt == "zapbench"):
        needed.append("tensorstore")
    for name in needed:
        try:
            __import__(name)
        except ImportError as e:
            return f"zaprig batch needs {name}, which is not installed ({e}): {EXTRA_HINT}"
    return None


def format_status(statuses: list[SessionStatus], command: str, out: Path) -> str:
    """The table printed at the end: one row per session."""
    rows = [("session", "tasks", "skipped", "volumes", "status")]
    for s in statuses:
        state = "ok" if s.ok else f"FAILED: {s.error or 'not all tasks finished'}"
        rows.append(
            (s.stem, f"{s.done + s.skipped}/{s.total}", str(s.skipped), str(s.volumes), state)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    return "\n".join([f"zaprig batch {command} -> {out}", *lines])


def cli_batch(args: argparse.Namespace) -> int:
    """``zaprig batch``: 0 when every session finished, 1 when one failed, 2 on bad input."""
    from rig.core.errors import ZaprigError

    fmt = getattr(args, "format", "zapbench")
    problem = _missing_extra(args.what, fmt)
    if problem:
        print(f"zaprig: error: {problem}", file=sys.stderr)
        return 2
    from rig.batch._plan import Plan, plan_session, session_stems
    from rig.batch._run import connect, run_plans

    sessions = [Path(s).resolve() for s in args.sessions]
    for s in sessions:
        if not s.is_file():
            print(f"zaprig: error: {s}: no such session file", file=sys.stderr)
            return 2
    for stem, paths in session_stems(sessions).items():
        if len(paths) > 1:
            print(
                f"zaprig: error: {', '.join(map(str, paths))} would all write {args.out / stem}:"
                " run them in separate batches with different --out folders",
                file=sys.stderr,
            )
            return 2
    if args.chunk_volumes < 1:
        print("zaprig: error: --chunk-volumes must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plans: list[Plan] = []
    for s in sessions:
        try:
            plans.append(plan_session(args.what, s, out, fmt, args.chunk_volumes))
        except (ZaprigError, OSError) as e:
            plans.append(Plan(stem=s.stem, session=s, error=str(e).splitlines()[0]))
    try:
        client, cluster = connect(args.scheduler, args.workers)
    except OSError as e:
        print(
            f"zaprig: error: cannot reach the dask scheduler {args.scheduler} ({e}): "
            "check the address, or leave --scheduler out for a local cluster",
            file=sys.stderr,
        )
        return 2
    try:
        import importlib.util

        # a scheduler without bokeh still names a dashboard port, with nothing behind it
        served = args.scheduler is not None or importlib.util.find_spec("bokeh") is not None
        link = client.dashboard_link if served else None
        n = len(client.scheduler_info()["workers"])
        where = args.scheduler or "a local cluster"
        print(f"zaprig: batch {args.what}: {len(sessions)} sessions on {where} ({n} workers)")
        if link:
            print(f"  dashboard: {link}")
        else:
            print("  dashboard: none (it needs bokeh: pip install 'dask[diagnostics]')")
        skipped = sum(len(p.skipped) for p in plans)
        if skipped:
            print(f"  {skipped} tasks already complete from an earlier run: skipped")
        statuses = run_plans(client, plans, f"batch {args.what}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(format_status(statuses, args.what, out))
    failed = [s for s in statuses if not s.ok]
    for st in failed:
        print(f"zaprig: error: {st.session}: {st.error}", file=sys.stderr)
    return 1 if failed else 0
