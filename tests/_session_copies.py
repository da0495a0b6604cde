"""Copies of a session file doctored into edge cases the engine rarely produces."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py


def stopped_at_once(session: Path, copy: Path) -> Path:
    """A copy of the session as if it had been aborted before the first sample."""
    shutil.copy(session, copy)
    with h5py.File(copy, "r+") as f:

        def empty(_name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and obj.maxshape[0] is None:
                obj.resize(0, axis=0)

        f.visititems(empty)
        f.attrs["status"] = "aborted"
    return copy
