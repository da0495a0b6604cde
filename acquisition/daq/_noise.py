"""Gaussian noise drawn many samples at a time and handed out in order.

The simulated DAQ and projector add input noise to every chunk: one
``rng.normal`` call per chunk and input costs a few microseconds each, and it
releases the GIL, so in virtual time another lane takes the interpreter for up to
a switch interval at each call. A numpy ``Generator`` gives the same sequence of
values whether they are drawn ``n`` at a time or thousands at once (each value
is ``loc + scale * standard_normal`` from the same bit stream), so drawing in
blocks changes no sample of a session, only how often numpy is called.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NormalStream"]


class NormalStream:
    """``take(n)`` returns the next ``n`` values of ``rng.normal(0.0, scale)``.

    Only for a generator nothing else draws from: values drawn ahead are not
    available to anyone else (the DAQ's and the projector's generators are their own).
    """

    def __init__(self, rng: np.random.Generator, scale: float, block: int = 8192) -> None:
        self._rng = rng
        self._scale = scale
        self._block = block
        self._buf = np.zeros(0)
        self._i = 0

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` values (a read-only view: copy before changing it)."""
        i = self._i
        if i + n > len(self._buf):
            new = self._rng.normal(0.0, self._scale, max(self._block, n))
            self._buf = np.concatenate([self._buf[i:], new])
            self._buf.flags.writeable = False
            i = 0
        self._i = i + n
        return self._buf[i : i + n]
