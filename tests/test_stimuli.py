"""Stimulus models and closed-loop laws as pure functions: the numbers an experimenter expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stimuli.closed_loop import FlowLaw, LoopState, SwimInput, TurnLaw
from stimuli.library import STIMULUS_KINDS, Flash, Flow, Replay, Rotation, Shadow, Taxis, Turning
from stimuli.state import FRAME_DTYPE, Look

DOCS = Path(__file__).resolve().parents[1] / "docs" / "stimulus-rows.md"


def frame(stim, t: float, loop: LoopState | None = None) -> np.void:
    rec = np.zeros((), dtype=FRAME_DTYPE)[()]
    stim.fill(rec, t, loop or LoopState())
    return rec


def test_flash_steps_between_its_luminances() -> None:
    f = Flash(period_s=10, on_s=4, on_luminance=0.8, off_luminance=0.1)
    assert frame(f, 1.0)["luminance"] == pytest.approx(0.8)
    assert frame(f, 5.0)["luminance"] == pytest.approx(0.1)
    assert frame(f, 11.0)["luminance"] == pytest.approx(0.8)
    assert frame(f, 1.0)["look"] == Look.UNIFORM


def test_flow_law_swimming_pushes_the_world_back_and_rest_relaxes_to_drift() -> None:
    law = FlowLaw(drift_mm_s=10.0, gain=5.0)
    s = LoopState(velocity=-10.0)
    law.step(s, SwimInput(True, 4.0, 4.0), 1 / 60)
    # the lab's rule at one frame: 0.3 v + 0.6 (-drift + gain * power)
    assert s.velocity == pytest.approx(0.3 * -10 + 0.6 * (-10 + 5 * 4))
    law.step(s, SwimInput(False, 0, 0), 0.01)
    assert s.velocity < 0.3 * -10 + 0.6 * (-10 + 5 * 4)
    for _ in range(500):
        law.step(s, SwimInput(False, 0, 0), 0.01)
    assert s.velocity == pytest.approx(-10.0)


def test_flow_law_does_not_depend_on_the_chunk_size() -> None:
    law = FlowLaw(drift_mm_s=10.0, gain=5.0)
    a, b = LoopState(velocity=-10.0), LoopState(velocity=-10.0)
    law.step(a, SwimInput(True, 3.0, 3.0), 1 / 60)
    for _ in range(10):
        law.step(b, SwimInput(True, 3.0, 3.0), 1 / 600)
    assert a.velocity == pytest.approx(b.velocity)


def test_higher_gain_moves_the_world_further_per_swim() -> None:
    low, high = LoopState(velocity=-10.0), LoopState(velocity=-10.0)
    for _ in range(20):
        FlowLaw(10.0, 2.0).step(low, SwimInput(True, 5.0, 5.0), 0.01)
        FlowLaw(10.0, 8.0).step(high, SwimInput(True, 5.0, 5.0), 0.01)
    assert high.position_mm > low.position_mm


def test_turn_law_turns_towards_the_stronger_tail_side() -> None:
    s = LoopState()
    law = TurnLaw(FlowLaw(0.0, 1.0), turn_gain_deg=30.0)
    law.step(s, SwimInput(True, 3.0, 1.0), 0.1)
    assert s.heading_deg == pytest.approx(30.0 * 2.0 * 0.1)  # left stronger -> turn left (ccw)


def test_closed_loop_flow_draws_the_loop_state_open_loop_does_not() -> None:
    loop = LoopState(velocity=7.0, position_mm=3.0)
    assert frame(Flow(), 1.0, loop)["velocity"] == pytest.approx(7.0)
    assert frame(Flow(closed_loop=False, drift_mm_s=4), 2.0, loop)["position_mm"] == pytest.approx(
        -8.0
    )
    assert Flow(closed_loop=False).law() is None and Flow().law() is not None


def test_turning_moves_then_stands_still_in_each_direction() -> None:
    t = Turning(directions_deg=(0, 90), speed_mm_s=5, moving_s=2, still_s=1)
    assert frame(t, 1.0)["angle_deg"] == 0 and frame(t, 1.0)["velocity"] == 5
    assert frame(t, 2.5)["velocity"] == 0 and frame(t, 2.5)["position_mm"] == pytest.approx(10)
    assert frame(t, 3.5)["angle_deg"] == 90


def test_rotation_turns_at_its_angular_speed_and_comes_back() -> None:
    r = Rotation(deg_per_s=45, period_s=8)
    assert frame(r, 1.0)["angle_deg"] - frame(r, 0.0)["angle_deg"] == pytest.approx(45)
    assert frame(r, 8.0)["angle_deg"] == pytest.approx(frame(r, 0.0)["angle_deg"])


def test_taxis_bright_side_alternates_and_follows_heading() -> None:
    tx = Taxis(period_s=10, first_bright_side="left")
    a, b = frame(tx, 1.0), frame(tx, 6.0)
    assert a["left_luminance"] == 1 and a["right_luminance"] == 0
    assert b["left_luminance"] == 0 and b["right_luminance"] == 1
    assert frame(tx, 1.0, LoopState(heading_deg=20))["angle_deg"] == pytest.approx(-20)


def test_shadow_crosses_and_looms() -> None:
    cross = Shadow(mode="cross", start_mm=(-10, 0), end_mm=(10, 0), speed_mm_s=10, period_s=10)
    assert frame(cross, 1.0)["disk_x_mm"] == pytest.approx(0.0)
    assert frame(cross, 5.0)["disk_radius_mm"] == 0  # between events: no disk
    loom = Shadow(mode="loom", radius_mm=1, final_radius_mm=11, loom_s=2, period_s=10)
    assert frame(loom, 1.0)["disk_radius_mm"] == pytest.approx(6.0)


def test_replay_plays_its_trace_and_integrates_position() -> None:
    r = Replay(velocities_mm_s=(1.0, 2.0, 3.0), trace_rate_hz=1.0)
    assert frame(r, 1.5)["velocity"] == 2.0
    assert frame(r, 2.0)["position_mm"] == pytest.approx(3.0)
    assert frame(r, 4.0)["position_mm"] == pytest.approx(7.0)  # loops: 1+2+3 then 1


def test_row_documentation_is_generated_from_the_classes() -> None:
    """docs/stimulus-rows.md is what `python -m stimuli.docs` writes, for every stimulus."""
    from stimuli.docs import rows_markdown

    text = DOCS.read_text()
    assert text == rows_markdown(), "run `python -m stimuli.docs` to regenerate the page"
    ids = next(x for x in text.splitlines() if x.startswith("| `dots` | c + n_c"))
    assert "direction" in ids
    for kind, cls in STIMULUS_KINDS.items():
        line = next(x for x in text.splitlines() if x.startswith(f"| `{kind}` |"))
        for meaning in cls.ROWS.values():
            assert meaning in line, (kind, meaning)


def test_every_built_in_parameter_has_a_source_and_the_page_is_current() -> None:
    """docs/builtin-protocol.md: value, unit and source of every built-in parameter."""
    from stimuli.builtin import dataset_protocol
    from stimuli.docs import PROVENANCE_PATH, pages
    from stimuli.provenance import provenance_rows

    rows = provenance_rows(dataset_protocol())
    missing = [(c, p) for c, p, _, _, src in rows if not src]
    assert missing == []
    assert ("gain", "gain", "8", "mm/s per unit of swim power") in [r[:4] for r in rows]
    assert PROVENANCE_PATH.read_text() == pages()[PROVENANCE_PATH.name], (
        "run `python -m stimuli.docs` to regenerate the page"
    )
