"""Where every parameter of the built-in protocol comes from: the dataset, the lab, or us.

``docs/builtin-protocol.md`` is generated from this table and the protocol itself
(``python -m stimuli.docs``), so the values shown are the values run. A test fails
when a built-in parameter has no source, so a new parameter cannot slip in unexplained.

Keys are ``(condition, parameter)``; ``("*", parameter)`` holds for every condition
that has the parameter. Sources say "dataset" (the ZAPBench release: constants and
DATASET.md), "lab" (the Ahrens lab's published method) or "chosen" with the reason.
"""

from __future__ import annotations

from typing import Any

from stimuli.protocol import Protocol

__all__ = ["SOURCES", "protocol_provenance_markdown", "provenance_rows", "unit_of"]

_D = "dataset: DATASET.md"
SOURCES: dict[tuple[str, str], str] = {
    # condition structure
    ("*", "volumes"): "dataset: CONDITION_OFFSETS differences (zapbench constants)",
    ("*", "duration_s"): (
        f"{_D}, periods inside the block: the block's timesteps x 0.9141 s / its period count"
    ),
    ("dark", "duration_s"): "chosen: the block has no period; one 60 s step repeats",
    ("open loop", "duration_s"): "dataset: the block has no period (one step, the block long)",
    ("*", "stim_id"): "chosen: 0, or 0/1 to tell the gain block's two steps apart in row 7",
    # gratings
    ("*", "spatial_freq"): "chosen: 0.1 cycles/mm (10 mm bars), coarse enough for larval acuity",
    ("*", "contrast"): "chosen: full contrast",
    ("*", "mean_luminance"): "chosen: mid grey, so bars are 0 and 1",
    ("gain", "drift_mm_s"): (
        "lab: the grating drifts forward at a base speed (1-D closed loop); 10 mm/s chosen, "
        "the speed the virtual fish's optomotor drive is tuned to"
    ),
    ("gain", "gain"): (
        "lab: low and high gain alternate; 2 and 8 (x4) chosen in threshold units, so a "
        "virtual bout moves the world 4x further at high gain"
    ),
    ("gain", "closed_loop"): "dataset: closed-loop water flow",
    ("open loop", "drift_mm_s"): "chosen: only used if the gain block left no trace",
    (
        "open loop",
        "from_condition",
    ): f"{_D}: gratings replayed without feedback (of the gain block)",
    ("open loop", "velocities_mm_s"): "from_condition: filled from the gain block when it starts",
    ("open loop", "trace_rate_hz"): "chosen: the display's 60 Hz frame rate",
    ("open loop", "trace_file"): "none: the trace comes from the same session",
    # dots
    ("dots", "n_dots"): "chosen: 300 dots over the field",
    ("dots", "dot_radius_mm"): "chosen: 0.5 mm",
    ("dots", "speed_mm_s"): "chosen: 5 mm/s",
    ("dots", "coherences"): "chosen: 0, 25, 50 and 100 % coherent motion",
    ("dots", "directions_deg"): "chosen: sideways, both ways",
    ("dots", "segment_s"): "chosen: 8 segments (4 coherences x 2 directions) per dataset period",
    ("dots", "seed"): "chosen: a fixed dot field, reproducible from the log",
    ("dots", "dot_luminance"): "chosen: white dots",
    ("dots", "background"): "chosen: on black",
    # flash
    ("flash", "period_s"): f"{_D}: 10 periods of ~65.6 timesteps",
    ("flash", "on_s"): "chosen: half of each period light, half dark",
    ("flash", "on_luminance"): f"{_D}: whole-field light",
    ("flash", "off_luminance"): f"{_D}: then dark",
    # taxis
    ("taxis", "period_s"): f"{_D}: 5 periods of ~131 timesteps",
    ("taxis", "bright_luminance"): f"{_D}: light/dark halves",
    ("taxis", "dark_luminance"): f"{_D}: light/dark halves",
    ("taxis", "first_bright_side"): "chosen: left first, then right",
    ("taxis", "closed_loop"): "chosen: the fish can steer the boundary (phototaxis)",
    ("taxis", "gain"): "chosen: forward feedback 1 (threshold units), no drift",
    ("taxis", "turn_gain_deg"): "chosen: 30 deg/s per unit of left-right power difference",
    # turning
    ("turning", "directions_deg"): f"{_D}: gratings in four directions (unverified)",
    ("turning", "speed_mm_s"): "chosen: 10 mm/s, as the flow drift",
    ("turning", "moving_s"): f"{_D}: 30 s moving (unverified)",
    ("turning", "still_s"): f"{_D}: 30 s still (unverified)",
    # position
    ("position", "period_s"): f"{_D}: 3 periods of 197 timesteps",
    ("position", "drift_mm_s"): "chosen: 5 mm/s drift to hold against",
    ("position", "drift_fraction"): "chosen: drift for 2/3 of each period, then still",
    ("position", "gain"): "chosen: 1 (threshold units)",
    ("position", "turn_gain_deg"): "chosen: as in taxis",
    # rotation
    ("rotation", "deg_per_s"): f"{_D}: ~45 deg/s (unverified)",
    ("rotation", "period_s"): f"{_D}: 10 periods of ~65.6 timesteps",
    ("rotation", "start_angle_deg"): "chosen: bars across the body axis",
    # dark
    ("dark", "luminance"): f"{_D}: no visual stimulus",
    # protocol level
    ("protocol", "volume_period_s"): "dataset: 0.9141 s per timestep",
    ("protocol", "swim_power"): (
        "chosen: threshold units, as every protocol written before lab units existed "
        "(docs/closed-loop-units.md)"
    ),
}

_UNITS = (
    ("_mm_s", "mm/s"),
    ("turn_gain_deg", "deg/s per unit of power difference"),
    ("deg_per_s", "deg/s"),
    ("_deg", "deg"),
    ("_mm", "mm"),
    ("_hz", "Hz"),
    ("_s", "s"),
    ("spatial_freq", "cycles/mm"),
    ("luminance", "0..1"),
    ("background", "0..1"),
    ("contrast", "0..1"),
    ("coherences", "fraction"),
    ("drift_fraction", "fraction"),
    ("gain", "mm/s per unit of swim power"),
    ("volumes", "volumes"),
)


def unit_of(name: str) -> str:
    """A parameter's unit, from the naming convention of the stimulus library."""
    for suffix, unit in _UNITS:
        if name.endswith(suffix) or name == suffix:
            return unit
    return "-"


def _source(condition: str, name: str) -> str | None:
    return SOURCES.get((condition, name)) or SOURCES.get(("*", name))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple | list):
        return "(" + ", ".join(_fmt(x) for x in v) + ")" if v else "()"
    return str(v)


def provenance_rows(protocol: Protocol) -> list[tuple[str, str, str, str, str | None]]:
    """(condition, parameter, value, unit, source) for every parameter of the protocol."""
    rows: list[tuple[str, str, str, str, str | None]] = []
    for name in ("volume_period_s", "swim_power"):
        v = getattr(protocol, name)
        rows.append(("protocol", name, _fmt(v), unit_of(name), _source("protocol", name)))
    for c in protocol.conditions:
        length = "volumes" if c.volumes is not None else "seconds"
        rows.append(
            (c.name, length, _fmt(getattr(c, length)), unit_of(length), _source(c.name, length))
        )
        for st in c.steps:
            rows.append(
                (c.name, "duration_s", _fmt(st.duration_s), "s", _source(c.name, "duration_s"))
            )
            params = st.stimulus.model_dump()
            kind = params.pop("kind")
            rows.append((c.name, "kind", kind, "-", "dataset: the condition's stimulus"))
            for k, v in params.items():
                rows.append((c.name, k, _fmt(v), unit_of(k), _source(c.name, k)))
    return rows


def protocol_provenance_markdown(protocol: Protocol) -> str:
    lines = [
        f"# The built-in protocol ({protocol.name}): every parameter and where it comes from",
        "",
        "<!-- Generated by `python -m stimuli.docs` from stimuli/builtin.py and "
        "stimuli/provenance.py; do not edit. -->",
        "",
        "Sources: **dataset** = the ZAPBench release (its constants and `../shared/DATASET.md`); "
        "**lab** = the Ahrens lab's published closed-loop method; **chosen** = our choice, with "
        "the reason. *(unverified)* marks what DATASET.md itself marks unverified.",
        "",
        "| condition | parameter | value | unit | source |",
        "|---|---|---|---|---|",
    ]
    for cond, name, value, unit, source in provenance_rows(protocol):
        lines.append(f"| {cond} | `{name}` | {value} | {unit} | {source or '**MISSING**'} |")
    return "\n".join([*lines, ""])
