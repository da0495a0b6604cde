"""Where a batch job keeps its outputs and its bookkeeping, and how it knows what is done.

    DIR/<session stem>/                      the command's output for that session
    DIR/.batch/<command>/<stem>/job.json     which file and settings the output is from
    DIR/.batch/<command>/<stem>/<task>.done  one per finished task (written last, atomically)

The bookkeeping lives beside the outputs, not in them, so a batch export is the same
folder, byte for byte, as ``zaprig export`` makes. A task writes its marker only after
all its chunks are written, with a rename, so a marker never names a half-written
piece: a job started again skips exactly the tasks whose markers exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rig.core.errors import SessionFileError

__all__ = ["Task", "TaskResult", "atomic_write", "bookkeeping", "check_job", "done", "mark_done"]


@dataclass(frozen=True, slots=True)
class Task:
    """One piece of a batch job: ``kind`` over volumes ``start:stop`` (or columns, for
    ``dff``) of one session. Picklable: it travels to the workers."""

    command: str
    kind: str
    session: str  # absolute path of the session file
    out_root: str  # DIR
    stem: str
    start: int = 0
    stop: int = 0
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.start}-{self.stop}"

    @property
    def out(self) -> Path:
        return Path(self.out_root) / self.stem

    @property
    def book(self) -> Path:
        return bookkeeping(Path(self.out_root), self.command, self.stem)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a task did, for the progress, the status table and the scaling model."""

    stem: str
    key: str
    volumes: int  # volumes (or for dff: 0) this task processed
    wall_s: float
    cpu_s: float  # CPU time of the worker process over the task (all its threads)
    thread_cpu_s: float  # CPU time of the thread that ran the task (not tensorstore's pool)
    minor_faults: int  # page faults of the worker process over the task (heap reuse)
    bytes_read: int
    bytes_written: int
    worker: str


def bookkeeping(root: Path, command: str, stem: str) -> Path:
    return root / ".batch" / command / stem


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash of the machine
    finally:
        os.close(fd)


def done(task: Task) -> bool:
    return (task.book / f"{task.key}.done").exists()


def mark_done(task: Task, result: TaskResult) -> None:
    atomic_write(task.book / f"{task.key}.done", json.dumps(asdict(result)) + "\n")


def check_job(root: Path, command: str, stem: str, job: dict[str, Any]) -> bool:
    """Record ``job`` for this session's output, or check it is the one recorded.

    True when the output was started before (its completed tasks may be skipped).
    A different file or other settings for the same output, or an output folder that
    no batch job made, is refused: mixing them would give a folder that is neither.
    """
    book = bookkeeping(root, command, stem)
    spec = book / "job.json"
    if spec.exists():
        old = json.loads(spec.read_text(encoding="utf-8"))
        if old != job:
            diff = ", ".join(
                f"{k} {old.get(k)!r} -> {job.get(k)!r}"
                for k in sorted(set(old) | set(job))
                if old.get(k) != job.get(k)
            )
            raise SessionFileError(
                f"{root / stem}: holds a batch {command} of other input ({diff}); "
                "pass another --out folder or remove that one"
            )
        return True
    out = root / stem
    if out.exists() and any(out.iterdir()):
        raise SessionFileError(
            f"{out}: exists and was not made by zaprig batch {command}; "
            "pass another --out folder or remove it"
        )
    atomic_write(spec, json.dumps(job, indent=2, sort_keys=True) + "\n")
    return False
