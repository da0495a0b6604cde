"""What a worker runs: one :class:`~rig.batch._layout.Task`, then its completion marker.

Every task opens its session file itself, through the one reader (read-only; in SWMR
mode while a run still records it), and reads only the
volumes it owns, so no task holds a whole session in memory. Outputs are written
through tensorstore in whole chunks that no other task writes: no lock is needed on a
local disk or on a shared filesystem. A task that is run again (a worker was killed
under it) rewrites the same chunks with the same bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import h5py

from rig.batch._layout import Task, TaskResult, mark_done

__all__ = ["heap_as_one_process", "run_task"]

#: glibc's mallopt parameters, and the values a plain process's dynamic thresholds reach
#: once it has freed a big array: 32 MiB (the most glibc allows) and twice that.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 64 << 20
_heap_set: bool | None = None


def heap_as_one_process() -> bool:
    """In a Dask worker, give malloc back the thresholds it has in ``zaprig readout``.

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its config
    ``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the system.
    Setting it also freezes glibc's mmap threshold at 128 KiB (a threshold set by hand
    turns off its dynamic growth), so every array above that, each plane read and each
    temporary, is a fresh mmap whose pages the kernel faults in and zeroes, and which is
    unmapped when freed. At full size that is ~130,000 page faults per volume for the
    readout and ~1,000,000 for the export, and twice the CPU per volume of one process
    (docs/batch.md, "Scaling"). This sets the two thresholds (once per process) to where a
    plain process's end up, so the heap is reused; memory above 64 MiB free at the top of
    the heap still goes back. Only when the worker has that setting and no mmap
    threshold of its own, and only with glibc; True when it changed them.
    """
    global _heap_set
    if _heap_set is not None:
        return _heap_set
    _heap_set = False
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None  # not glibc (musl, macOS): nothing to set
    if mallopt is None:
        return False
    _heap_set = bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    return _heap_set


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

    heap_as_one_process()
    w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
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
        thread_cpu_s=time.thread_time() - t0,
        minor_faults=resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0,
        bytes_read=volumes * per_volume,
        bytes_written=written,
        worker=worker,
    )
    mark_done(task, result)
    return result
