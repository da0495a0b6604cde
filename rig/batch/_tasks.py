"""What a worker runs: one :class:`~rig.batch._layout.Task`, then its completion marker.

Every task opens its session file itself, through the one reader (read-only; in SWMR
mode while a run still records it), and reads only the
volumes it owns, so no task holds a whole session in memory. Outputs are written
through tensorstore in whole chunks that no other task writes: no lock is needed on a
local disk or on a shared filesystem. A task that is run again (a worker was killed
under it) rewrites the same chunks with the same bytes.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path
from typing import Any

import h5py

from rig.batch._layout import Task, TaskResult, mark_done

__all__ = ["run_task"]


def _export_range(task: Task, f: h5py.File) -> tuple[int, int]:
    """Volumes start:stop into raw/ (whole per-volume chunks); (volumes, bytes written)."""
    from rig.export import raw_array, write_volume_range

    info = task.option("info")
    raw = raw_array(info, task.out / "raw", bool(task.option("shard_volumes")), create=False)
    write_volume_range(f["volumes/raw"], raw, task.start, task.stop)
    written = sum(
        os.path.getsize(p)
        for t in range(task.start, task.stop)
        for p in glob.glob(str(task.out / "raw" / "c" / "*" / "*" / "*" / str(t)))
    )
    return task.stop - task.start, written


def _export_rest(task: Task, f: h5py.File) -> None:
    """The stream, conditions, ground truth, live traces and metadata.json."""
    from rig.export import write_rest

    info = task.option("info")
    t, z, y, x = info.shape_tzyx
    # a re-run (its worker was killed) starts clean: all but raw/ is this task's alone
    for p in task.out.iterdir():
        if p.name != "raw":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    write_rest(f, info, task.out, (x, y, z, t), False, bool(task.option("shard_volumes")), 2.0)


def _export_nwb(task: Task) -> None:
    """One NWB file per session: HDF5 has one writer, so it is one task."""
    from rig.export import export_nwb

    task.out.mkdir(parents=True, exist_ok=True)
    path = task.out / f"{task.stem}.nwb"
    path.unlink(missing_ok=True)  # a killed attempt's half file
    export_nwb(task.session, path, progress=False)


def _swims(task: Task) -> None:
    from acquisition.swims import OfflineParams, compare
    from rig.swims import TOLERANCE_S, detect_session_bouts, format_comparison, read_online_bouts

    path = Path(task.session)
    params = OfflineParams()
    online, conds = read_online_bouts(path)
    off = detect_session_bouts(path, params)
    if off.samples == 0:
        text = f"session   {path}\nno tail samples in the file: nothing to compare"
    else:
        cmp = compare(online[0], off.bouts, TOLERANCE_S, off.sample_rate_hz)
        text = format_comparison(path, online, off, cmp, conds, params)
    task.out.mkdir(parents=True, exist_ok=True)
    (task.out / "swims.txt").write_text(text + "\n", encoding="utf-8")


def _report(task: Task) -> None:
    from rig.report import write_report

    if task.out.exists():
        shutil.rmtree(task.out)  # a killed attempt's half report
    write_report(task.session, task.out)


def run_task(task: Task, *after: Any) -> TaskResult:
    """Run ``task`` (``after``: results of the tasks it waits for, unused) and mark it done."""
    from rig.batch._readout import readout_dff, readout_range, readout_reference

    w0, c0 = time.perf_counter(), time.process_time()
    volumes = written = 0
    per_volume = int(task.option("volume_bytes", 0))
    if task.kind in ("range", "rest", "reference"):
        from rig.session import SessionReader

        with SessionReader(task.session) as reader:
            f = reader.file
            if task.command == "export" and task.kind == "range":
                volumes, written = _export_range(task, f)
            elif task.kind == "rest":
                _export_rest(task, f)
            elif task.kind == "reference":
                volumes = readout_reference(task, f)
            else:
                volumes = readout_range(task, f)
    elif task.kind == "dff":
        readout_dff(task)
    elif task.kind == "nwb":
        _export_nwb(task)
    elif task.kind == "swims":
        _swims(task)
    elif task.kind == "report":
        _report(task)
    else:
        raise ValueError(f"unknown batch task kind {task.kind!r}")
    try:
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):
        worker = "local"
    result = TaskResult(
        stem=task.stem,
        key=task.key,
        volumes=volumes,
        wall_s=time.perf_counter() - w0,
        cpu_s=time.process_time() - c0,
        bytes_read=volumes * per_volume,
        bytes_written=written,
        worker=worker,
    )
    mark_done(task, result)
    return result
