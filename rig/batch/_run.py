"""Running a batch job on dask.distributed: the cluster, the submission, the progress.

A ``LocalCluster`` of worker *processes* (one thread each) by default: h5py holds the
GIL while it reads, so threads would take turns. ``--scheduler tcp://host:8786`` uses a
cluster someone started (``dask scheduler`` / ``dask worker``, or dask-jobqueue on
SLURM: docs/batch.md). A worker that dies is replaced by the scheduler, which runs its
tasks again elsewhere; a task's output is whole chunks written with the same bytes, so
a re-run changes nothing. Exceptions are not retried: they are the session's failure.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rig.batch._layout import Task, TaskResult
from rig.batch._plan import Plan, dff_tasks
from rig.batch._tasks import run_task

__all__ = ["SessionStatus", "connect", "run_plans"]


@dataclass
class SessionStatus:
    """How one session's work went, for the table at the end."""

    stem: str
    session: Path
    total: int
    skipped: int
    done: int = 0
    volumes: int = 0
    error: str = ""
    results: list[TaskResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and self.done + self.skipped == self.total


def connect(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    """(client, cluster or None): a LocalCluster of processes, or the given scheduler."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="20s"), None
    import importlib.util
    import os

    n = workers or max(1, len(os.sched_getaffinity(0)))
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        # the dashboard needs bokeh (dask's diagnostics extra); without it, none
        dashboard_address=":0" if importlib.util.find_spec("bokeh") else None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return (
            "workers died running it several times (out of memory, or killed): "
            f"{exc}; see the workers' logs"
        )
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0] if text else ''}".rstrip(": ")


def run_plans(client: Any, plans: list[Plan], label: str) -> list[SessionStatus]:
    """Submit every planned task, follow them to the end, return each session's status."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    status = {
        p.stem: SessionStatus(p.stem, p.session, len(p.tasks) + len(p.skipped), len(p.skipped))
        for p in plans
    }
    for p in plans:
        status[p.stem].error = p.error
    futures: dict[Any, Task] = {}
    ranges: dict[str, list[Any]] = {}
    reference: dict[str, Any] = {}

    def submit(task: Task, after: list[Any]) -> Any:
        fut = client.submit(
            run_task,
            task,
            *after,
            key=f"zaprig-{task.command}-{task.stem}-{task.key}-{token}",
            pure=False,
            retries=0,
        )
        futures[fut] = task
        return fut

    for p in plans:
        ref = next((t for t in p.tasks if t.kind == "reference"), None)
        ref_fut = submit(ref, []) if ref is not None else None
        if ref_fut is not None:
            reference[p.stem] = ref_fut
        for t in p.tasks:
            if t is ref:
                continue
            after = [ref_fut] if (ref_fut is not None and t.kind == "range") else []
            if t.kind == "dff":
                after = ranges.get(p.stem, [])
            fut = submit(t, after)
            if t.kind == "range":
                ranges.setdefault(p.stem, []).append(fut)
    total = sum(len(p.tasks) for p in plans)
    with tqdm(
        total=total, unit="task", desc=label, file=sys.stderr, dynamic_ncols=True, disable=None
    ) as bar:
        pending = as_completed(list(futures))
        for fut in pending:
            task = futures[fut]
            st = status[task.stem]
            bar.update(1)
            if fut.status == "error":
                if not st.error:
                    st.error = f"{task.key}: {_reason(fut.exception())}"
                continue
            if fut.status == "cancelled":
                st.error = st.error or f"{task.key}: cancelled"
                continue
            res: TaskResult = fut.result()
            st.done += 1
            st.volumes += res.volumes if task.kind in ("range", "nwb") else 0
            st.results.append(res)
            if task.kind == "reference":
                # ΔF/F needs the number of label columns, known now
                extra = dff_tasks(task)
                st.total += len(extra)
                bar.total += len(extra)
                bar.refresh()
                for t in extra:
                    pending.add(submit(t, ranges.get(task.stem, [])))
    return list(status.values())
