"""The engine's lanes: the closed loop never shares a thread with images, records or disk.

::

                 DAQ chunk (10 ms)
      ┌──────────────── loop lane (engine thread, real-time priority) ────────────────┐
      │ read DAQ → detect swims → feedback law → publish to renderer                   │
      │ → note plane triggers (microscope.on_triggers) → hand the chunk on             │
      └──────┬───────────────────────────────┬───────────────────────────┬────────────┘
             │ triggers (wake)               │ ChunkRecord (deque)       │ LoopState (shared memory)
      ┌──────▼──────── image lane ─────┐ ┌───▼──────── record lane ────┐ ┌─▼──── renderer process ─┐
      │ microscope.poll(): frames →    │ │ 10-row stream, conditions,  │ │ draws, flips, reports   │
      │ VolumeAssembler → ring slot    │ │ frames/bouts tables, events,│ │ frames (flip_sample)    │
      │ (one copy) → commit            │ │ health checks, live views   │ └─────────────────────────┘
      └──────┬─────────────────────────┘ └───┬─────────────────────────┘
             │ slot numbers                  │ batched records
      ┌──────▼───────────────────────────────▼─────── writer process ─────────────────┐
      │ HDF5 (SWMR): volumes from the shared-memory ring, tables, stream, events       │
      └────────────────────────────────────────────────────────────────────────────────┘

What crosses between lanes: plane-trigger indices (loop → image; a few integers per
chunk), :class:`ChunkRecord` (loop → record: the chunk as read, the frames and bouts
of that chunk), microscope events (image → the session's events), ring slot numbers
and batched records (image and record lanes → writer process). Nothing crosses back
into the loop lane but two flags it reads between chunks: a fault to stop on, and a
stop request. docs/design-notes.md ("Lanes") says why each boundary is where it is.

In real time the engine's threads run on a CPU of their own and the writer (and
readout) processes on the others (``_rt.py``); in virtual time the image and record
lanes run inline on the loop's thread (``threaded=False``), where lanes gain nothing.
"""

from __future__ import annotations

from rig.lanes._costs import PARTS, ChunkCosts, TimedLoop
from rig.lanes._image import ImageLane
from rig.lanes._loop import LoopLane, LoopParts
from rig.lanes._record_step import LiveChunk, Notes, RecordParts, RecordStep
from rig.lanes._records import ChunkRecord, RecordLane, StreamRecorder
from rig.lanes._rt import cpu_split, frozen_heap, loop_lane_priority, thread_off_engine_cpus
from rig.lanes._session import LaneParts, SessionLanes

__all__ = [
    "PARTS",
    "ChunkCosts",
    "ChunkRecord",
    "ImageLane",
    "LaneParts",
    "LiveChunk",
    "LoopLane",
    "LoopParts",
    "Notes",
    "RecordLane",
    "RecordParts",
    "RecordStep",
    "SessionLanes",
    "StreamRecorder",
    "TimedLoop",
    "cpu_split",
    "frozen_heap",
    "loop_lane_priority",
    "thread_off_engine_cpus",
]
