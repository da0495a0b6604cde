"""A shortened run shows the protocol: time scales every duration inside a stimulus (issue 26).

The states are sampled with the function the renderers use for ``/stimulus/frames``
(:class:`stimuli.render.frames.FrameMaker`, at the headless renderer's flip samples),
so the full two-hour protocol is checked in seconds; one real 1 % session's logged
frames are checked against the same function.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import ClassVar, Literal

import h5py
import numpy as np
import pytest

from rig.core.config import load_config
from stimuli.builtin import dataset_protocol
from stimuli.closed_loop import LoopState
from stimuli.library import STIMULUS_KINDS, Flash, Stimulus
from stimuli.library._base import time_like_fields
from stimuli.protocol import Protocol, WaitFor, condition, step
from stimuli.render.frames import FrameMaker
from stimuli.schedule import Schedule

SCALE = 0.01


def frame_states(tl: Schedule, refresh_hz: float) -> np.ndarray:
    """(flip_sample, condition, stim_id) of every frame of the run, as the headless renderer
    makes them (its flip samples, the shared FrameMaker); the loop state does not change
    which state a frame shows, so a state at rest stands in for the fish's."""
    fm = FrameMaker(tl)
    fm.set_frame_rate(refresh_hz)
    fs = tl.sample_rate_hz
    n_max = math.ceil(tl.end_sample * refresh_hz / fs) + 1
    flips = [math.floor(k * fs / refresh_hz + 0.5) for k in range(n_max)]
    flips = flips[: bisect.bisect_left(flips, tl.end_sample)]  # every flip inside the run
    out = np.empty((len(flips), 3), dtype=np.int64)
    loop = LoopState()
    for k, flip in enumerate(flips):  # HeadlessRenderer._flip_sample
        rec = fm.make(k, flip, loop)
        out[k] = flip, rec["condition"], rec["stim_id"]
    return out


def runs(stim_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length code: the ordered states and how many frames each lasted."""
    edges = np.flatnonzero(np.diff(stim_ids)) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [len(stim_ids)]]))
    return stim_ids[starts], lengths


@pytest.fixture(scope="module")
def states() -> tuple[np.ndarray, np.ndarray, tuple[float, ...], float]:
    rig = load_config()
    full = dataset_protocol()
    hz = rig.display.refresh_hz
    return (
        frame_states(Schedule.build(full, rig), hz),
        frame_states(Schedule.build(full.scaled(SCALE), rig), hz),
        full.condition_factors(SCALE),
        hz,
    )


@pytest.mark.parametrize("c", range(9), ids=lambda c: dataset_protocol().conditions[c].name)
def test_a_one_percent_run_shows_every_state_of_the_full_run_in_proportion(
    states: tuple[np.ndarray, np.ndarray, tuple[float, ...], float], c: int
) -> None:
    full, short, factors, _hz = states
    seq_full, n_full = runs(full[full[:, 1] == c, 2])
    seq_short, n_short = runs(short[short[:, 1] == c, 2])
    assert seq_short.tolist() == seq_full.tolist()
    # each boundary lands on a frame in either run: within one frame of the full run's
    # length at the condition's factor (plus the full run's own frame, scaled)
    err = np.abs(n_short - n_full * factors[c])
    assert err.max() <= 1.0 + factors[c], (err.max(), n_full, n_short)


def test_the_built_in_conditions_have_the_states_the_dataset_describes(
    states: tuple[np.ndarray, np.ndarray, tuple[float, ...], float],
) -> None:
    """At 1 % the flash block goes dark, the dots leave 0 % coherence and the turning grating
    stops and turns (the symptoms of issue 26)."""
    _full, short, _f, _hz = states
    seq = {c: runs(short[short[:, 1] == c, 2])[0] for c in range(9)}
    assert len(seq[0]) == 20  # gain: 10 periods of low then high gain
    assert set(seq[1].tolist()) == set(range(8))  # dots: 4 coherences x 2 directions
    assert len(seq[2]) == 20 and set(seq[2].tolist()) == {0, 1}  # flash: 10 x light, dark
    assert seq[4].tolist() == list(range(8)) * 5  # turning: 4 directions, moving then still
    assert len(seq[7]) == 20  # rotation: 10 x out and back


def test_a_real_short_session_logs_the_states_the_function_gives(
    short_session: Path, states: tuple[np.ndarray, np.ndarray, tuple[float, ...], float]
) -> None:
    _full, short, _f, _hz = states
    with h5py.File(short_session, "r") as f:
        fr = f["stimulus/frames"]
        logged = np.stack(
            [fr["flip_sample"][...], fr["condition"][...], fr["stim_id"][...]], axis=1
        ).astype(np.int64)
    logged = logged[logged[:, 0] <= short[-1, 0]]  # the last chunk may flip past the end
    assert len(logged) > 4000
    k = np.searchsorted(short[:, 0], logged[:, 0])
    assert (short[k, 0] == logged[:, 0]).all()
    np.testing.assert_array_equal(short[k, 1:], logged[:, 1:])


def test_scaled_stimuli_keep_speeds_and_scale_their_times() -> None:
    proto = Protocol(
        name="p",
        conditions=[
            condition(
                "flash",
                step(Flash(period_s=60, on_s=20), 60, wait_for=WaitFor(above=0.3, timeout_s=30)),
                seconds=120,
            )
        ],
    )
    st = proto.scaled(0.1).conditions[0].steps[0]
    assert isinstance(st.stimulus, Flash)
    assert (st.duration_s, st.stimulus.period_s, st.stimulus.on_s) == pytest.approx((6, 6, 2))
    assert st.wait_for is not None and st.wait_for.timeout_s == pytest.approx(3)
    turning = dataset_protocol().scaled(SCALE).conditions[4].steps[0].stimulus
    assert turning.speed_mm_s == 10.0  # type: ignore[union-attr]


def test_every_time_like_field_of_every_stimulus_is_declared() -> None:
    for kind, cls in STIMULUS_KINDS.items():
        declared = {*cls.TIME_FIELDS, *cls.RATE_FIELDS, *cls.PHYSICAL_TIME_FIELDS}
        assert set(time_like_fields(cls)) <= declared, kind
        assert declared <= set(cls.model_fields), kind


def test_a_stimulus_with_an_undeclared_duration_is_refused() -> None:
    with pytest.raises(TypeError, match=r"\['ramp_s'\] are not declared"):

        class Ramp(Stimulus):
            kind: Literal["ramp"] = "ramp"
            ramp_s: float = 2.0
            speed_mm_s: float = 5.0  # a speed: physical, needs no declaration

    class Declared(Stimulus):
        kind: Literal["declared"] = "declared"
        ramp_s: float = 2.0
        TIME_FIELDS: ClassVar[tuple[str, ...]] = ("ramp_s",)

    assert Declared().scaled(0.5).ramp_s == 1.0


def test_plan_says_what_a_time_scale_does(capsys: pytest.CaptureFixture[str]) -> None:
    from rig.cli import main

    assert main(["plan", "--time-scale", "0.01"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("scale"))
    assert "every duration inside a stimulus" in line and "speeds" in line
    assert "x0.009245 to x0.01067" in line  # the gain block's 6 of 649 volumes ... 7 of 656
