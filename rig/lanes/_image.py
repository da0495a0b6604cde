"""The image lane: camera frames into the writer's ring, on a thread of its own.

At the dataset's size (72 x 1328 x 2048 every 0.914 s) moving frames is 428 MB/s,
most of a core. The loop lane only tells the microscope which planes the DAQ
triggered (:meth:`Microscope.on_triggers`, cheap bookkeeping) and wakes this lane;
here :meth:`Microscope.poll` pops or renders the frames and the shared
:class:`~acquisition.microscope._assembler.VolumeAssembler` places them in the
ring with one copy. What the microscope reports goes to the session's events.

numpy releases the GIL while it copies or computes on large arrays, so this
thread runs beside the loop on another core; the loop never waits for it
(except in virtual time, where nothing is real-time and the loop keeps the
image lane at most a few volumes behind, so a run's end is not a long backlog).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from acquisition.microscope import Microscope, MicroscopeEvent

__all__ = ["ImageLane"]

#: How often the lane looks for frames when nobody wakes it (a real camera's frames
#: arrive on their own, a few ms after their trigger).
_POLL_S = 0.002


class ImageLane:
    """Runs ``microscope.poll()`` on its own thread until stopped."""

    def __init__(
        self,
        microscope: Microscope,
        report: Callable[[MicroscopeEvent], None],
        threaded: bool = True,
    ) -> None:
        self.microscope = microscope
        #: False in virtual time: the loop's wake() then polls on its own thread.
        self.threaded = threaded
        self._report = report
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zaprig-image-lane", daemon=True)
        #: What killed the lane, if anything did (the engine turns it into a fault).
        self.error: str | None = None
        self.polls = 0

    def start(self) -> None:
        if self.threaded:
            self._thread.start()

    def wake(self) -> None:
        """Triggers were fired: frames are (or will soon be) there."""
        if not self.threaded:
            if self.error is None:
                try:
                    self._poll()
                except Exception as e:
                    self.error = f"image lane: {type(e).__name__}: {e}"
            return
        self._wake.set()

    def alive(self) -> bool:
        return self._thread.is_alive() if self.threaded else self.error is None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(_POLL_S)
                self._wake.clear()
                self._poll()
        except Exception as e:
            self.error = f"image lane: {type(e).__name__}: {e}"

    def _poll(self) -> None:
        for ev in self.microscope.poll():
            self._report(ev)
        self.polls += 1

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the current poll; False if the thread did not end in time."""
        if not self.threaded:
            self.wake()
            return True
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
