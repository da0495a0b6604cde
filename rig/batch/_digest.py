"""A digest of an output folder: every zarr array's contents and every other file's bytes.

Two exports are the same when their digests are: the arrays compared by what a reader
gets (shape, dtype and values, read through tensorstore one slab at a time), not by
their chunk files' bytes (compression may differ between library versions), and the
other files (the stream, the JSON files) byte for byte. ``.batch`` bookkeeping is left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["folder_digest"]


def _array_digest(path: Path) -> str:
    import tensorstore as ts

    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}).result()
    h = hashlib.sha256()
    h.update(json.dumps([list(arr.shape), str(arr.dtype)]).encode())
    if arr.ndim and arr.shape[-1]:
        # raw/ (x, y, z, t): one volume at a time; smaller arrays at once
        step = 1 if arr.ndim >= 3 else arr.shape[-1]
        for a in range(0, arr.shape[-1], step):
            h.update(arr[..., a : a + step].read().result().tobytes())
    return h.hexdigest()


def folder_digest(folder: str | Path) -> dict[str, str]:
    """{relative path: sha256}: zarr arrays by contents, other files by bytes."""
    root = Path(folder)
    out: dict[str, str] = {}
    arrays = sorted(
        p.parent
        for p in root.rglob("zarr.json")
        if json.loads(p.read_text()).get("node_type") == "array"
    )
    for a in arrays:
        out[str(a.relative_to(root))] = _array_digest(a)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or rel.parts[0] == ".batch":
            continue
        if any(p.is_relative_to(a) for a in arrays):
            continue
        out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
