"""The built-in protocol: the ZAPBench dataset's nine conditions, in order, at its lengths.

Written with the same public API as any user protocol. Condition lengths are
in volumes (timesteps), exactly the dataset's ``CONDITION_OFFSETS`` differences,
so at the dataset's volume period (0.9141 s) the conditions start at exactly
(0, 649, 2422, 3078, 3735, 5047, 5638, 6623, 7279) and the run ends at 7879.
Repeating periods inside each block follow DATASET.md.
"""

from __future__ import annotations

import itertools
from functools import cache

from stimuli.library import Dark, Dots, Flash, Flow, Position, Replay, Rotation, Taxis, Turning
from stimuli.protocol import Condition, Protocol, condition, step

__all__ = [
    "CONDITION_NAMES",
    "CONDITION_OFFSETS",
    "DATASET_VOLUME_PERIOD_S",
    "HIGH_GAIN",
    "LOW_GAIN",
    "dataset_protocol",
]

CONDITION_NAMES = (
    "gain", "dots", "flash", "taxis", "turning", "position", "open loop", "rotation", "dark"
)  # fmt: skip
CONDITION_OFFSETS = (0, 649, 2422, 3078, 3735, 5047, 5638, 6623, 7279, 7879)
DATASET_VOLUME_PERIOD_S = 0.9141
#: Closed-loop gains of the gain block, in mm/s per unit of swim power (power is in
#: multiples of the noise threshold); high gain makes each swim move the world 4x further.
LOW_GAIN = 2.0
HIGH_GAIN = 8.0


def _periods(volumes: int, n: int) -> float:
    """Seconds per repeating period when ``n`` periods fill ``volumes`` at the dataset rate."""
    return volumes * DATASET_VOLUME_PERIOD_S / n


def _conditions() -> list[Condition]:
    lengths = [b - a for a, b in itertools.pairwise(CONDITION_OFFSETS)]
    gain_v, dots_v, flash_v, taxis_v, turn_v, pos_v, open_v, rot_v, dark_v = lengths

    half_gain = _periods(gain_v, 10) / 2
    dots_period = _periods(dots_v, 3)
    flash_period = _periods(flash_v, 10)
    taxis_period = _periods(taxis_v, 5)
    turn_period = _periods(turn_v, 5)
    pos_period = _periods(pos_v, 3)
    rot_period = _periods(rot_v, 10)
    return [
        condition(
            "gain",
            step(Flow(gain=LOW_GAIN, stim_id=0), half_gain, "low gain"),
            step(Flow(gain=HIGH_GAIN, stim_id=1), half_gain, "high gain"),
            volumes=gain_v,
        ),
        condition(
            "dots",
            step(Dots(segment_s=dots_period / 8), dots_period, "coherence x direction"),
            volumes=dots_v,
        ),
        condition(
            "flash",
            step(Flash(period_s=flash_period, on_s=flash_period / 2), flash_period, "light/dark"),
            volumes=flash_v,
        ),
        condition(
            "taxis",
            step(Taxis(period_s=taxis_period), taxis_period, "bright left, then right"),
            volumes=taxis_v,
        ),
        condition(
            "turning",
            step(
                Turning(moving_s=turn_period / 8, still_s=turn_period / 8),
                turn_period,
                "four directions, moving then still",
            ),
            volumes=turn_v,
        ),
        condition(
            "position",
            step(Position(period_s=pos_period), pos_period, "hold position against drift"),
            volumes=pos_v,
        ),
        condition(
            "open loop",
            step(Replay(from_condition="gain"), open_v * DATASET_VOLUME_PERIOD_S, "replay"),
            volumes=open_v,
        ),
        condition(
            "rotation",
            step(Rotation(period_s=rot_period), rot_period, "rotate out and back"),
            volumes=rot_v,
        ),
        condition("dark", step(Dark(), 60.0, "no stimulus"), volumes=dark_v),
    ]


@cache
def dataset_protocol() -> Protocol:
    """The dataset's protocol (cached: it is immutable)."""
    return Protocol(
        name="zapbench",
        description="The nine conditions of the ZAPBench recording, at the dataset's lengths",
        volume_period_s=DATASET_VOLUME_PERIOD_S,
        conditions=tuple(_conditions()),
    )
