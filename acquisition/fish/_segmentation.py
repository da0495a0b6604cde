"""A label volume drawn from neuron positions (simulated sessions' ground truth).

The virtual brain renders each neuron as a 2-D Gaussian blob in its own plane,
so the matching segmentation is a small disk per neuron in that plane. Where
two disks overlap a voxel goes to the nearer centre, as a watershed on the
blobs would give. Labels are neuron index + 1 (0 is background), so label
``k`` is column ``k - 1`` of the exported traces, as in the dataset.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["label_plane"]


def _disk(radius: float) -> tuple[np.ndarray, np.ndarray]:
    r = math.ceil(radius)
    dx, dy = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dx * dx + dy * dy <= radius * radius
    return dx[inside], dy[inside]


def label_plane(
    positions_zyx: np.ndarray, z: int, shape_xy: tuple[int, int], radius: float
) -> np.ndarray:
    """Labels (x, y) int32 of plane ``z`` for neurons at ``positions_zyx`` (voxels)."""
    nx, ny = shape_xy
    out = np.zeros((nx, ny), dtype=np.int32)
    pos = np.asarray(positions_zyx, dtype=np.float64)
    if len(pos) == 0:
        return out
    idx = np.flatnonzero(np.rint(pos[:, 0]) == z)
    if len(idx) == 0:
        return out
    dx, dy = _disk(radius)
    py, px = pos[idx, 1], pos[idx, 2]
    cx = np.rint(px)[:, None] + dx[None, :]
    cy = np.rint(py)[:, None] + dy[None, :]
    dist = (cx - px[:, None]) ** 2 + (cy - py[:, None]) ** 2
    label = np.broadcast_to((idx + 1)[:, None], cx.shape)
    ok = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
    cx, cy, dist, label = cx[ok].astype(np.int64), cy[ok].astype(np.int64), dist[ok], label[ok]
    flat = cx * ny + cy
    # nearest centre wins: sort by voxel, then by distance, keep the first per voxel
    order = np.lexsort((dist, flat))
    flat, label = flat[order], label[order]
    first = np.ones(len(flat), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    out.ravel()[flat[first]] = label[first]
    return out
