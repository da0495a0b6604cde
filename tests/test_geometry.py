"""The projection model (stimuli/geometry.py) against worked values of Dunn & Fitzgerald, eLife 2020.

The paper's flat-interface set-up: the eye d_w above the air-water interface, the
screen d_a below it, refractive indices air 1 and water 1.333. The worked values
below follow from its Snell's-law relation by hand (noted at each), so a wrong
sign, index or layer order in the code shows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.core.config import ProjectionConfig
from rig.core.errors import ConfigError
from stimuli.geometry import Projection, resolve_angles
from stimuli.library import Flow
from stimuli.protocol import Protocol, condition, step


def test_snells_window_is_the_critical_angle() -> None:
    # the paper: nothing beyond asin(1 / 1.333) = 48.6 deg is seen through the air gap
    p = Projection(ProjectionConfig(eye_height_mm=1.0, air_gap_mm=10.0))
    assert p.critical_deg == pytest.approx(48.61, abs=0.01)
    assert float(p.received_deg(1e6)) == pytest.approx(48.61, abs=0.01)


@pytest.mark.parametrize(
    ("ratio", "received", "screen", "true"),
    [
        # d_a / d_w = 10 (the paper's Figure 1b, pink), d_w = 1 mm. At 30 deg received:
        # sin(psi_a) = 1.333 x 0.5 = 0.6665, psi_a = 41.80 deg, tan = 0.8940;
        # r = tan 30 + 10 x 0.8940 = 9.517 mm; true = atan(9.517 / 11) = 40.87 deg
        (10.0, 30.0, 9.517, 40.87),
        # d_a / d_w = 0.1 (blue): r = tan 30 + 0.1 x 0.8940 = 0.6667 mm; true = atan(0.6667 / 1.1)
        (0.1, 30.0, 0.6667, 31.22),
    ],
)
def test_received_and_true_angles_match_worked_values(
    ratio: float, received: float, screen: float, true: float
) -> None:
    p = Projection(ProjectionConfig(eye_height_mm=1.0, air_gap_mm=ratio))
    assert float(p.screen_mm(received)) == pytest.approx(screen, abs=1e-3)
    assert float(p.received_deg(screen)) == pytest.approx(received, abs=0.01)
    assert float(p.true_deg(screen)) == pytest.approx(true, abs=0.01)


def test_no_air_gap_no_distortion_and_round_trip() -> None:
    water_only = Projection(ProjectionConfig(eye_height_mm=4.0, air_gap_mm=0.0))
    r = np.linspace(0.0, 30.0, 31)
    np.testing.assert_allclose(water_only.received_deg(r), water_only.true_deg(r), atol=1e-6)
    p = Projection(ProjectionConfig(eye_height_mm=4.0, air_gap_mm=2.0, dish_mm=1.0))
    deg = np.linspace(0.0, 45.0, 10)
    np.testing.assert_allclose(p.received_deg(p.screen_mm(deg)), deg, atol=1e-6)
    # a thin plastic dish bends light little more than the water it displaces (Appendix 1)
    water_for_dish = Projection(ProjectionConfig(eye_height_mm=5.0, air_gap_mm=2.0))
    assert abs(float(p.screen_mm(20.0)) - float(water_for_dish.screen_mm(20.0))) < 0.1


def test_nadir_scale_and_degrees_in_a_protocol() -> None:
    cfg = ProjectionConfig(eye_height_mm=3.0, air_gap_mm=0.5)
    p = Projection(cfg)
    assert p.mm_per_deg_at_nadir == pytest.approx((3.0 + 1.333 * 0.5) * math.pi / 180.0)
    proto = Protocol(
        name="deg",
        conditions=[condition("gain", step(Flow(cycles_per_deg=0.05), 5.0), seconds=5.0)],
    )
    got = resolve_angles(proto, cfg).conditions[0].steps[0].stimulus
    assert got.spatial_freq == pytest.approx(0.05 / p.mm_per_deg_at_nadir)
    in_mm = Protocol(name="mm", conditions=[condition("g", step(Flow(), 5.0), seconds=5.0)])
    assert resolve_angles(in_mm, None) is in_mm
    with pytest.raises(ConfigError, match=r"condition 'gain'.*\[display.projection\]"):
        resolve_angles(proto, None)
