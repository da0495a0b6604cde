"""The zarr3 arrays of an export: codecs, the array spec, and the raw volume array's writer.

Split from :mod:`rig.export._zapbench` by job: this module writes arrays (the raw/ volumes,
(x, y, z, t) in the dataset's 512 x 512 x 1 x 1 read chunks, optionally one shard per
volume, streamed a volume at a time with a few writes in flight), and it is what
``zaprig batch`` uses to write ranges of volumes in parallel (:func:`raw_array`,
:func:`write_volume_range`, :func:`zarr_codecs`, through :mod:`rig.export`).
:mod:`rig.export._zapbench` writes the rest of the layout (the 10-row stream, the
conditions, the trace and label tables, the metadata) and puts the export together.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorstore as ts
from tqdm import tqdm

from rig.export._common import SessionInfo, dimension_units_xyzt

__all__ = [
    "DATASET_CHUNK_XY",
    "progress_bar",
    "raw_array",
    "write_volume_range",
    "write_volumes",
    "zarr3",
    "zarr_codecs",
]

#: Volume writes in flight at once (HDF5 reads overlap compression; memory stays bounded).
_IN_FLIGHT = 2
#: The dataset's read chunk along x and y (clipped to the volume).
DATASET_CHUNK_XY = 512


def zarr_codecs(dtype_bytes: int) -> list[dict[str, Any]]:
    # bitshuffle + zstd: camera images and label volumes shrink several-fold at little CPU cost
    return [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {
                "cname": "zstd",
                "clevel": 3,
                "shuffle": "bitshuffle",
                "typesize": dtype_bytes,
            },
        },
    ]


def zarr3(
    path: Path,
    shape: tuple[int, ...],
    dtype: str,
    labels: list[str],
    units: list[str | None],
    read_chunk: tuple[int, ...],
    write_chunk: tuple[int, ...] | None = None,
    create: bool = True,
) -> ts.TensorStore:
    size = np.dtype(dtype).itemsize
    if write_chunk is None or write_chunk == read_chunk:
        grid, codecs = read_chunk, zarr_codecs(size)
    else:
        grid = write_chunk
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(read_chunk),
                    "codecs": zarr_codecs(size),
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                },
            }
        ]
    spec: dict[str, Any] = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(shape),
            "data_type": dtype,
            "dimension_names": labels,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
            "codecs": codecs,
            "fill_value": 0,
        },
        "schema": {"dimension_units": units},
    }
    # opening checks the stored metadata against this spec's: a mismatch is an error
    spec["create" if create else "open"] = True
    return ts.open(spec).result()


def progress_bar(total: int, unit: str, desc: str, show: bool) -> tqdm:
    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
        unit_scale=unit == "sample",
    )


def raw_array(
    info: SessionInfo, out: Path, shard_volumes: bool, create: bool = True
) -> ts.TensorStore:
    """The raw/ array (x, y, z, t): created empty, or (``create`` False) opened as it is.

    Its chunks along t are one volume, so a writer of whole volumes owns whole chunks
    (and whole shards): ``zaprig batch export`` writes ranges of volumes in parallel
    without a lock.
    """
    t_n, z, y, x = info.shape_tzyx
    cx, cy = min(DATASET_CHUNK_XY, x), min(DATASET_CHUNK_XY, y)
    # a shard must hold whole chunks: 1328 rows of 512-row chunks make a 1536-row shard
    shard = (-(-x // cx) * cx, -(-y // cy) * cy, z, 1)
    return zarr3(
        out,
        (x, y, z, t_n),
        "uint16",
        ["x", "y", "z", "t"],
        list(dimension_units_xyzt(info)),
        (cx, cy, 1, 1),
        shard if shard_volumes else None,
        create=create,
    )


def write_volume_range(
    raw: h5py.Dataset, arr: ts.TensorStore, start: int, stop: int, bar: tqdm | None = None
) -> None:
    """Volumes ``start:stop`` of /volumes/raw (t, z, y, x) into ``arr`` (x, y, z, t).

    One volume at a time with a few writes in flight: HDF5 reads overlap compression,
    and memory stays at a few volumes whatever the range.
    """
    pending: deque[ts.WriteFutures] = deque()
    for t in range(start, stop):
        vol = raw[t]
        pending.append(arr[:, :, :, t].write(vol.transpose(2, 1, 0)))
        while len(pending) >= _IN_FLIGHT:
            pending.popleft().result()
        if bar is not None:
            bar.update(1)
    while pending:
        pending.popleft().result()


def write_volumes(
    f: h5py.File, info: SessionInfo, out: Path, progress: bool, shard_volumes: bool
) -> tuple[int, int, int, int]:
    """/volumes/raw (t, z, y, x) -> zarr3 (x, y, z, t), one volume at a time."""
    arr = raw_array(info, out, shard_volumes)
    t_n = info.shape_tzyx[0]
    with progress_bar(t_n, "volume", "volumes", progress) as bar:
        write_volume_range(f["volumes/raw"], arr, 0, t_n, bar)
    return tuple(int(v) for v in arr.shape)  # type: ignore[return-value]
