"""The ZAPBench forecasting benchmark's splits and windows, for a session's conditions.

Every definition follows google-research/zapbench (read at commit c077c12); the
function or constant each one follows is named beside it. Nothing of that code is
imported: it needs jax, flax and tensorstore, and its constants are fixed to the
released recording, while a session has its own condition offsets.

A condition ``c`` spans timesteps ``offsets[c]:offsets[c + 1]``. The benchmark
drops ``PADDING`` timesteps at both ends, cuts the rest into train / val / test by
fraction, and scores the test part with windows of ``context`` inputs followed by
``HORIZON`` targets, one window per timestep (stride 1). The held-out condition is
never trained on; its test part starts ``MAX_CONTEXT - context`` timesteps in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CONDITIONS_HOLDOUT",
    "CONDITIONS_TRAIN",
    "CONTEXT",
    "HORIZON",
    "MAX_CONTEXT",
    "PADDING",
    "TEST_FRACTION",
    "VAL_FRACTION",
    "InferSet",
    "condition_bounds",
    "infer_sets",
    "min_length",
    "num_windows",
    "smallest_scale",
    "split_bounds",
    "too_short",
]

#: zapbench/constants.py ``CONDITION_PADDING``: timesteps left out at each end of a condition.
PADDING = 1
#: constants.py ``CONDITIONS_TRAIN`` / ``CONDITIONS_HOLDOUT`` (3 = taxis is held out).
CONDITIONS_TRAIN = (0, 1, 2, 4, 5, 6, 7, 8)
CONDITIONS_HOLDOUT = (3,)
#: constants.py ``VAL_FRACTION`` and ``TEST_FRACTION`` of each condition's timesteps.
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2
#: constants.py ``MAX_CONTEXT_LENGTH``: the held-out condition's test part starts this far in.
MAX_CONTEXT = 256
#: constants.py ``PREDICTION_WINDOW_LENGTH``: timesteps predicted per window.
HORIZON = 32
#: ts_forecasting/configs/mean.py and linear.py ``_ARGS['timesteps_input']``: inputs per window.
CONTEXT = 4

SPLITS = ("train", "val", "train_val", "test", "test_holdout", None)


def condition_bounds(offsets: tuple[int, ...] | list[int], condition: int) -> tuple[int, int]:
    """(first, stop) timesteps of a condition less its padding.

    Follows zapbench/data_utils.py ``get_condition_bounds``, with the session's offsets
    in place of ``constants.CONDITION_OFFSETS``.
    """
    if condition < 0 or condition >= len(offsets) - 1:
        raise ValueError(f"condition must be in [0, {len(offsets) - 1}), not {condition}")
    return offsets[condition] + PADDING, offsets[condition + 1] - PADDING


def split_bounds(split: str | None, lo: int, hi: int, context: int = CONTEXT) -> tuple[int, int]:
    """(first, stop) timesteps of one split of a condition's bounds, context included.

    Follows data_utils.py ``adjust_condition_bounds_for_split``: the test and val parts
    reach ``context`` timesteps back into the part before them (the windows' inputs),
    and ``int()`` truncates the fractions as there.
    """
    total = hi - lo
    n_test = int(total * TEST_FRACTION)
    n_val = int(total * VAL_FRACTION)
    n_train = total - n_test - n_val
    if split == "train":
        hi = lo + n_train
    elif split == "val":
        hi = lo + n_train + n_val
        lo += n_train - context
    elif split == "train_val":
        hi = lo + n_train + n_val
    elif split == "test":
        lo += n_train + n_val - context
    elif split == "test_holdout":
        lo += MAX_CONTEXT - context
    elif split is not None:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if lo < 0 or lo >= hi:
        raise ValueError(f"split {split!r} of timesteps [{lo}, {hi}) is empty")
    return lo, hi


def num_windows(lo: int, hi: int, context: int = CONTEXT, horizon: int = HORIZON) -> int:
    """Windows at stride 1 in timesteps [lo, hi): data_utils.py ``get_num_windows``."""
    return hi - lo - horizon - context + 1


@dataclass(frozen=True)
class InferSet:
    """One scored set: ts_forecasting/configs/common.py ``get_infer_sets``.

    Window ``w`` takes inputs ``start + w : start + w + context`` and targets the
    ``horizon`` timesteps after them (ts_forecasting/data_source.py ``__getitem__`` with
    ``sequential=True``; infer.py ``inference`` loops ``start_idx + window``).
    """

    condition: int
    split: str
    start: int
    windows: int

    @property
    def name(self) -> str:
        return f"{self.split}_condition_{self.condition}"


def _split_of(condition: int) -> str:
    return "test_holdout" if condition in CONDITIONS_HOLDOUT else "test"


def infer_sets(offsets: tuple[int, ...] | list[int], context: int = CONTEXT) -> list[InferSet]:
    """The benchmark's scored sets in its order (train conditions' test parts, then the
    held-out condition's); a set with no window has ``windows <= 0``."""
    out = []
    n_cond = len(offsets) - 1
    for c in [c for c in CONDITIONS_TRAIN + CONDITIONS_HOLDOUT if c < n_cond]:
        split = _split_of(c)
        lo, hi = condition_bounds(offsets, c)
        try:
            a, b = split_bounds(split, lo, hi, context)
            n = num_windows(a, b, context)
        except ValueError:
            a, n = lo, 0
        out.append(InferSet(c, split, a, n))
    return out


def _fits(condition: int, length: int, context: int) -> bool:
    lo, hi = PADDING, length - PADDING
    if hi <= lo:
        return False
    try:
        a, b = split_bounds(_split_of(condition), lo, hi, context)
    except ValueError:
        return False
    return num_windows(a, b, context) >= 1


def min_length(condition: int, context: int = CONTEXT) -> int:
    """The fewest timesteps condition ``condition`` needs for one scored window."""
    n = 1
    while not _fits(condition, n, context):
        n += 1
    return n


def too_short(lengths: list[int], context: int = CONTEXT) -> list[tuple[int, int, int]]:
    """(condition, length, length needed) of each condition too short for a scored window."""
    return [
        (c, n, min_length(c, context)) for c, n in enumerate(lengths) if not _fits(c, n, context)
    ]


def smallest_scale(lengths_at: Callable[[float], list[int]], guess: float = 1.0) -> float:
    """The smallest time scale (in steps of 0.01) at which every condition has a window.

    ``lengths_at(scale)`` gives the conditions' lengths in timesteps at that scale (a
    protocol's :meth:`~stimuli.protocol.Protocol.scaled` rounds each length, so the
    answer is searched, not divided out). ``guess`` is where the search starts.
    """
    k = max(1, int(guess * 100) - 5)
    while k < 100_000:
        if not too_short(lengths_at(k / 100)):
            # step back while it still fits: the guess may have overshot
            while k > 1 and not too_short(lengths_at((k - 1) / 100)):
                k -= 1
            return k / 100
        k += 1
    raise ValueError("no time scale up to 1000 gives every condition a window")
