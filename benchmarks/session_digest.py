"""A digest of a session file's contents, dataset by dataset, to compare two runs of one seed.

A speed-up of the engine must not change what a seed records. ``bout_reference.py``
holds the bouts and displayed velocities; this digest covers everything else the
file holds: every dataset's bytes (the 10-row stream, volumes, tables, traces),
with the wall-clock parts left out (``events/wall_time``, the readout's compute times
``live/seconds`` and ``live/forecast/seconds``, root attributes such as
``started_at``, and the writer's "buffer full" warnings, which say how fast this
machine's disk and cores were, not what was recorded), so two runs of the same
seed on any machine give the same lines.

Usage:
    python benchmarks/session_digest.py SESSION.h5 [> a.txt]
    python benchmarks/session_digest.py --run [--time-scale 0.05] [--seed 0] [--readout] [> a.txt]
    diff a.txt b.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

#: Datasets that hold wall-clock times or compute costs (differ between any two runs).
_WALL = ("events/wall_time", "live/seconds", "live/forecast/seconds")
#: Events that depend on the machine's speed: the writer's ring filling up.
_LOAD_EVENT = "writer buffer "
#: Root attributes that hold wall-clock times or paths.
_WALL_ATTRS = ("started_at", "ended_at")


def digest(path: Path) -> list[str]:
    """``name  shape  sha256`` per dataset and one line for the root attributes, sorted."""
    lines: list[str] = []
    with h5py.File(path, "r") as f:
        events = f.get("events")
        keep = None
        if isinstance(events, h5py.Group) and "message" in events:
            msgs = [m.decode() if isinstance(m, bytes) else str(m) for m in events["message"][()]]
            keep = np.array([not m.startswith(_LOAD_EVENT) for m in msgs], dtype=bool)

        def visit(name: str, obj: object) -> None:
            if not isinstance(obj, h5py.Dataset) or name in _WALL:
                return
            data = obj[()]
            if name.startswith("events/") and keep is not None and len(data) == len(keep):
                data = data[keep]
            if isinstance(data, np.ndarray) and data.dtype == object:
                raw = "\x00".join(
                    x.decode() if isinstance(x, bytes) else str(x) for x in data.ravel()
                ).encode()
            else:
                raw = np.ascontiguousarray(data).tobytes()
            lines.append(f"{name}  {np.shape(data)}  {hashlib.sha256(raw).hexdigest()[:16]}")

        f.visititems(visit)
        attrs = {k: str(v) for k, v in f.attrs.items() if k not in _WALL_ATTRS}
        raw = repr(sorted(attrs.items())).encode()
        lines.append(f"/attrs  {len(attrs)}  {hashlib.sha256(raw).hexdigest()[:16]}")
    return sorted(lines)


def run(time_scale: float, seed: int, out: Path, readout: bool = False) -> Path:
    """One virtual-time run of the built-in protocol at ``time_scale``; its file. With
    ``readout``, the live readout (``[readout] enabled``) runs and fills ``/live``."""
    from rig.core.config import load_config
    from rig.engine import Engine, RunState
    from stimuli.builtin import dataset_protocol

    rig = load_config()
    if readout:
        rig = rig.model_copy(update={"readout": rig.readout.model_copy(update={"enabled": True})})
    engine = Engine(rig, dataset_protocol().scaled(time_scale), out, clock="virtual", seed=seed)
    if engine.run() is not RunState.COMPLETE:
        raise RuntimeError(f"the run ended {engine.state.value}")
    assert engine.path is not None
    return engine.path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", type=Path, nargs="?", help="a session file (or --run)")
    ap.add_argument("--run", action="store_true", help="run the built-in protocol first")
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readout", action="store_true", help="with the live readout on (/live)")
    args = ap.parse_args(argv)
    if args.run:
        with tempfile.TemporaryDirectory(prefix="zaprig-digest-") as d:
            path = run(args.time_scale, args.seed, Path(d), readout=args.readout)
            print("\n".join(digest(path)))
        return 0
    if args.session is None:
        ap.error("give a session file or --run")
    print("\n".join(digest(args.session)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
