"""Fuzzing the parsers: whatever the input, a config or protocol either loads or fails with
our validation error naming the file; never a traceback from inside."""

from __future__ import annotations

import contextlib
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.core.config import load_config
from rig.core.errors import ConfigError, ProtocolError
from stimuli.library import STIMULUS_KINDS
from stimuli.protocol import load_protocol

FUZZ = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars.filter(lambda v: v is not None),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
CONFIG_KEYS = {
    "daq": ["backend", "sample_rate_hz", "chunk_samples", "tail_channels", "plane_trigger_v"],
    "microscope": ["planes_per_volume", "volume_period_s", "width", "voxel_size_um", "backend"],
    "display": ["refresh_hz", "px_per_mm", "size_px"],
    "laser": ["backend", "power_mw", "port"],
    "writer": ["compression", "volume_slots"],
}
config_docs = st.dictionaries(
    st.sampled_from([*CONFIG_KEYS, "name", "bogus"]),
    st.one_of(
        values,
        st.sampled_from(list(CONFIG_KEYS)).flatmap(
            lambda sec: st.dictionaries(st.sampled_from([*CONFIG_KEYS[sec], "typo"]), values)
        ),
    ),
    max_size=5,
)
stimulus = st.fixed_dictionaries(
    {"kind": st.one_of(st.sampled_from(list(STIMULUS_KINDS)), st.text(max_size=8))},
    optional={
        "period_s": values,
        "gain": values,
        "on_s": values,
        "directions_deg": values,
        "velocities_mm_s": values,
        "unknown": values,
    },
)
protocol_docs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), values),
        "conditions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.text(max_size=10), values),
                    "volumes": values,
                    "seconds": values,
                    "steps": st.lists(
                        st.fixed_dictionaries(
                            {}, optional={"duration_s": values, "stimulus": stimulus}
                        ),
                        max_size=3,
                    ),
                },
            ),
            max_size=3,
        ),
    },
)


def _write(path: Path, doc: dict) -> bool:
    try:
        path.write_text(tomli_w.dumps(doc))
    except (TypeError, ValueError):  # not representable in TOML (None, NaN keys...)
        return False
    return True


@FUZZ
@given(doc=config_docs)
def test_configs_load_or_fail_with_a_config_error(tmp_path: Path, doc: dict) -> None:
    p = tmp_path / "rig.toml"
    if not _write(p, doc):
        return
    try:
        load_config(p)
    except ConfigError as e:
        assert str(p) in str(e)


@FUZZ
@given(doc=protocol_docs)
def test_protocols_load_or_fail_with_a_protocol_error(tmp_path: Path, doc: dict) -> None:
    p = tmp_path / "proto.toml"
    if not _write(p, doc):
        return
    try:
        load_protocol(p)
    except ProtocolError as e:
        assert str(p) in str(e)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_parsers(tmp_path: Path, text: str) -> None:
    p = tmp_path / "x.toml"
    p.write_text(text, encoding="utf-8")
    for load, err in ((load_config, ConfigError), (load_protocol, ProtocolError)):
        with contextlib.suppress(err):
            load(p)
