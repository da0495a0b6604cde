"""The readout process: reads committed volumes from the writer's ring, never holding a slot.

It attaches the ring's shared memory by name and is told "slot k holds volume t
(generation g)". It computes straight from the slot (no copy) and checks the
slot's generation afterwards: if the engine took the slot for a newer volume
meanwhile, the row is thrown away and the volume counted as skipped. So the ring
never fills because of the readout, and the writer never waits for it.

Ctrl-C and SIGTERM are the engine's (:func:`rig.core.stopping.ignore_stop_signals`);
it ends on a ``None`` message or when the engine process is gone.
"""

from __future__ import annotations

import os
import queue
import traceback
from typing import Any

from acquisition.writer import VolumeRing
from rig.core.stopping import ignore_stop_signals
from rig.readout._compute import LabelIndex
from rig.readout._state import Readout, ReadoutSettings

__all__ = ["readout_main"]

#: How long a result may wait for room in the engine's queue before it is dropped.
_PUT_TIMEOUT_S = 1.0


def _put(outbox: Any, msg: tuple[Any, ...]) -> bool:
    try:
        outbox.put(msg, timeout=_PUT_TIMEOUT_S)
    except queue.Full:
        return False
    return True


def readout_main(
    ring_spec: dict[str, Any],
    states: Any,
    generations: Any,
    settings: ReadoutSettings,
    labels: LabelIndex | None,
    inbox: Any,
    outbox: Any,
    done: Any,
    parent_pid: int,
    ready: Any = None,
) -> None:
    """Entry point of the readout process; sets ``ready`` once it can take volumes."""
    ignore_stop_signals()
    ring = VolumeRing(
        ring_spec["shape"], ring_spec["n_slots"], ring_spec["name"], states, generations
    )
    readout = Readout(settings, labels)
    if ready is not None:
        ready.set()
    announced = labels is not None
    try:
        while True:
            try:
                msg = inbox.get(timeout=0.5)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return  # the engine is gone: nobody reads our results
                continue
            if msg is None:
                return
            seq, slot, t, gen = msg
            try:
                if generations[slot] != gen:
                    _put(outbox, ("skipped", t, "slot reused before the readout reached it"))
                    continue
                row = readout.process(t, ring.slot(slot))
                if generations[slot] != gen:
                    # reused while we read: the numbers mix two volumes
                    _put(outbox, ("skipped", t, "slot reused while the readout read it"))
                    continue
            finally:
                done.value = seq
            if not announced and readout.labels is not None:
                announced = True
                lab = readout.labels
                _put(outbox, ("labels", lab.ids, lab.positions_zyx))
            if row is not None and not _put(outbox, ("row", row)):
                _put(outbox, ("skipped", t, "the engine did not take the readout's results"))
    except Exception:
        _put(outbox, ("error", traceback.format_exc(limit=8)))
    finally:
        del readout
        ring.close()
