"""The readout process: reads committed volumes from the writer's ring, never holding a slot.

It attaches the ring's shared memory by name and is told "slot k holds volume t
(generation g)". It computes straight from the slot (no copy) and checks the
slot's generation afterwards: if the engine took the slot for a newer volume
meanwhile, the row is thrown away and the volume counted as skipped. So the ring
never fills because of the readout, and the writer never waits for it.

It runs under :class:`rig.core.worker.Worker` (signals, parent watch, error report); it
ends on :class:`~rig.core.worker.Stop` after the volumes sent before it.
"""

from __future__ import annotations

from typing import Any

from acquisition.writer import VolumeRing
from rig.core.worker import Handlers, Stop, WorkerContext, dispatch
from rig.readout._compute import LabelIndex
from rig.readout._messages import Labels, Read, Row, Skipped
from rig.readout._state import Readout, ReadoutSettings

__all__ = ["readout_main"]

#: How long a result may wait for room in the engine's queue before it is dropped.
_PUT_TIMEOUT_S = 1.0


class _Reader:
    """Reads the slots it is told of; its dispatch table is :attr:`handlers`."""

    def __init__(
        self, ctx: WorkerContext, ring: VolumeRing, readout: Readout, done: Any, announced: bool
    ) -> None:
        self.ctx = ctx
        self.ring = ring
        self.readout: Readout | None = readout
        self.done = done
        self.announced = announced
        self.stopped = False
        self.handlers: Handlers = {Read: self.read, Stop: self.stop}

    def put(self, msg: Row | Labels | Skipped) -> bool:
        return self.ctx.send(msg, timeout=_PUT_TIMEOUT_S)

    def read(self, msg: Read) -> None:
        readout, generations = self.readout, self.ring.generations
        assert readout is not None
        slot, t, gen = msg.slot, msg.t, msg.gen
        try:
            if generations[slot] != gen:
                self.put(Skipped(t, "slot reused before the readout reached it"))
                return
            row = readout.process(t, self.ring.slot(slot))
            if generations[slot] != gen:
                # reused while we read: the numbers mix two volumes
                self.put(Skipped(t, "slot reused while the readout read it"))
                return
        finally:
            self.done.value = msg.seq
        if not self.announced and readout.labels is not None:
            self.announced = True
            lab = readout.labels
            self.put(Labels(lab.ids, lab.positions_zyx))
        if row is not None and not self.put(Row(row)):
            self.put(Skipped(t, "the engine did not take the readout's results"))

    def stop(self, msg: Stop) -> None:
        self.stopped = True


def readout_main(
    ctx: WorkerContext,
    ring_spec: dict[str, Any],
    states: Any,
    generations: Any,
    settings: ReadoutSettings,
    labels: LabelIndex | None,
    done: Any,
) -> None:
    """The readout process's main; ready once it can take volumes."""
    ring = VolumeRing(
        ring_spec["shape"], ring_spec["n_slots"], ring_spec["name"], states, generations
    )
    reader = _Reader(ctx, ring, Readout(settings, labels), done, labels is not None)
    ctx.ready()
    try:
        while not reader.stopped:
            msg = ctx.receive(0.5)
            if msg is not None:
                dispatch(reader.handlers, msg, ctx.name)
    finally:
        reader.readout = None  # its views of the ring go before the ring
        ring.close()
