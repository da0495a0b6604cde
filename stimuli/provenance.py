"""Where every parameter of the built-in protocol and of the closed-loop law comes from.

``docs/builtin-protocol.md`` is generated from this table, the protocol and the law's code
(``python -m stimuli.docs``), so the values shown are the values run. A test fails when a
parameter has no source, or when a source that is not "chosen" names no publication with
a year and a place in it, so a new parameter cannot slip in unexplained.

Keys are ``(condition, parameter)``; ``("*", parameter)`` holds for every condition that
has the parameter; ``("law", parameter)`` is the closed-loop law (stimuli/closed_loop.py).
Each :class:`Source` says its kind: **dataset** (the ZAPBench release: its constants and
DATASET.md), **lab** (the Ahrens lab's method as DATASET.md gives it from their code),
**paper** (a publication says it) or **chosen** (ours, with the reason); and cites the
publications (:data:`PAPERS`) with where in them. A paper is cited only for what it
says; a value we picked near a paper's is "chosen", and its reason names the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stimuli import closed_loop
from stimuli.protocol import Protocol

__all__ = [
    "LAW_PARAMETERS",
    "PAPERS",
    "SOURCES",
    "Source",
    "law_rows",
    "protocol_provenance_markdown",
    "provenance_rows",
    "source_of",
    "unit_of",
]

#: The publications cited below (short form; where in them is given per use).
PAPERS: dict[str, str] = {
    "zapbench": "Lueckmann et al. 2025, ZAPBench, ICLR 2025 (zapbench/constants.py of its release)",
    "ahrens2012": "Ahrens et al. 2012, Nature 485:471-477",
    "vladimirov2014": "Vladimirov et al. 2014, Nat. Methods 11:883-884",
    "portugues2011": "Portugues & Engert 2011, Front. Syst. Neurosci. 5:72",
    "orger2008": "Orger et al. 2008, Nat. Neurosci. 11:327-333",
    "naumann2016": "Naumann et al. 2016, Cell 167:947-960",
    "dunn2020": "Dunn & Fitzgerald 2020, eLife 9:e53684",
    "mu2019": "Mu et al. 2019, Cell 178:27-43",
    "stih2019": "Štih et al. 2019, PLoS Comput. Biol. 15:e1006699 (Stytra)",
}

Kind = Literal["dataset", "lab", "paper", "chosen"]


@dataclass(frozen=True)
class Source:
    """Where one parameter comes from: its kind, what it says (or why we chose it), and the
    publications with where in them, as ``((paper key, where), ...)``."""

    kind: Kind
    note: str
    cites: tuple[tuple[str, str], ...] = ()

    def citations(self) -> list[str]:
        return [f"{PAPERS[key]}, {where}" for key, where in self.cites]

    def markdown(self) -> str:
        text = f"{self.kind}: {self.note}"
        if self.cites:
            text += " — " + "; ".join(f"*{c}*" for c in self.citations())
        return text


def _ds(note: str) -> Source:
    """From the dataset: DATASET.md and the ZAPBench release."""
    return Source("dataset", f"DATASET.md: {note}", (("zapbench", "the recording's protocol"),))


def _ch(reason: str, *cites: tuple[str, str]) -> Source:
    return Source("chosen", reason, cites)


_CONDITIONS = ("zapbench", "the recording's nine stimulus conditions")
_FICTIVE_VR = (
    "ahrens2012",
    "Fig. 1 and Supplementary Information §1 (paralysed larva, fictive swimming drives a "
    "1-D virtual environment)",
)
_GAIN = (
    "portugues2011",
    "abstract and Results (higher closed-loop gain: shorter, weaker bouts; a new gain acts "
    "within 175 ms)",
)
_OMR = ("orger2008", "whole-field moving gratings drive the optomotor response (Results)")
_RIG = (
    "vladimirov2014",
    "light-sheet imaging of the whole brain with fictive behaviour and visual stimuli "
    "projected under the fish",
)
_STYTRA_P2011 = (
    "stih2019",
    "its replication protocol of Portugues & Engert 2011 (examples: grating period 10 mm, "
    "grating speed 10 mm/s)",
)
_DISTORTION = (
    "dunn2020",
    "stimuli on a flat screen under the fish are distorted in visual angle; give them in "
    "degrees to reproduce them (Results)",
)
_DIRECTIONS = (
    "naumann2016",
    "whole-field motion in several directions (forward, backward, leftward, rightward, "
    "rotations) maps the brain's optomotor circuit (Results)",
)

SOURCES: dict[tuple[str, str], Source] = {
    # condition structure
    ("*", "volumes"): Source(
        "dataset", "CONDITION_OFFSETS differences", (("zapbench", "zapbench/constants.py"),)
    ),
    ("*", "duration_s"): _ds(
        "periods inside the block: the block's timesteps x 0.9141 s / its period count"
    ),
    ("dark", "duration_s"): _ch("the block has no period; one 60 s step repeats"),
    ("open loop", "duration_s"): _ds("the block has no period (one step, the block long)"),
    ("*", "kind"): Source("dataset", "the condition's stimulus (DATASET.md)", (_CONDITIONS,)),
    ("*", "stim_id"): _ch("0, or 0/1 to tell the gain block's two steps apart in row 7"),
    ("*", "feedback_delay_ms"): _ch(
        "0: no delay beyond the rig's own; the parameter is there for delayed-feedback "
        "experiments in the closed loop (issue 26), not used by the dataset's protocol"
    ),
    # gratings
    ("*", "spatial_freq"): _ch(
        "0.1 cycles/mm: a 10 mm period, i.e. 5 mm bars, the period of a published "
        "replication of the lab's closed-loop gratings",
        _STYTRA_P2011,
    ),
    ("*", "cycles_per_deg"): _ch(
        "not used (None): the dataset's gratings are given on the screen in cycles/mm; set "
        "it to give them in visual angle",
        _DISTORTION,
    ),
    ("*", "contrast"): _ch("full contrast: black and white bars"),
    ("*", "mean_luminance"): _ch("mid grey, so bars are 0 and 1"),
    ("gain", "drift_mm_s"): Source(
        "lab",
        "the grating drifts forward at a base speed and swims push it back (DATASET.md); "
        "10 mm/s is the speed of a published replication (chosen value)",
        (_FICTIVE_VR, _STYTRA_P2011),
    ),
    ("gain", "gain"): Source(
        "lab",
        "low and high gain alternate (DATASET.md); 2 and 8 (x4) chosen in threshold units, "
        "so a virtual bout moves the world 4x further at high gain",
        (_FICTIVE_VR, _GAIN),
    ),
    ("gain", "closed_loop"): Source("dataset", "closed-loop water flow", (_FICTIVE_VR,)),
    ("open loop", "closed_loop"): Source(
        "paper",
        "swims move nothing: feedback withheld, as in the futility paradigm",
        (("mu2019", "the futility-induced passivity paradigm (Results, first section)"),),
    ),
    ("open loop", "drift_mm_s"): _ch("only used if the gain block left no trace"),
    ("open loop", "from_condition"): _ds("gratings replayed without feedback (of the gain block)"),
    ("open loop", "velocities_mm_s"): _ch("filled from the gain block when it starts (replay)"),
    ("open loop", "trace_rate_hz"): _ch("the display's 60 Hz frame rate"),
    ("open loop", "trace_file"): _ch("none: the trace comes from the same session"),
    # dots
    ("dots", "n_dots"): _ch("300 dots over the field"),
    ("dots", "dot_radius_mm"): _ch("0.5 mm, a dot well above larval acuity at the screen"),
    ("dots", "speed_mm_s"): _ch("5 mm/s, half the flow's drift"),
    ("dots", "coherences"): _ch("0, 25, 50 and 100 % coherent motion: a graded motion signal"),
    ("dots", "directions_deg"): _ch("sideways, both ways"),
    ("dots", "segment_s"): _ch(
        "8 segments (4 coherences x 2 directions) per dataset period of the block"
    ),
    ("dots", "seed"): _ch("a fixed dot field, reproducible from the log"),
    ("dots", "dot_luminance"): _ch("white dots"),
    ("dots", "background"): _ch("on black"),
    # flash
    ("flash", "period_s"): _ds("10 periods of ~65.6 timesteps"),
    ("flash", "on_s"): _ch("half of each period light, half dark"),
    ("flash", "on_luminance"): _ds("whole-field light"),
    ("flash", "off_luminance"): _ds("then dark"),
    # taxis
    ("taxis", "period_s"): _ds("5 periods of ~131 timesteps"),
    ("taxis", "bright_luminance"): _ds("light/dark halves"),
    ("taxis", "dark_luminance"): _ds("light/dark halves"),
    ("taxis", "first_bright_side"): _ch("left first, then right"),
    ("taxis", "closed_loop"): _ch("the fish can steer the boundary (phototaxis)"),
    ("taxis", "gain"): _ch("forward feedback 1 (threshold units), no drift"),
    ("taxis", "turn_gain_deg"): _ch("30 deg/s per unit of left-right power difference"),
    # turning
    ("turning", "directions_deg"): Source(
        "dataset",
        "DATASET.md: gratings in four directions (unverified); forward, left, backward, right",
        (_CONDITIONS, _DIRECTIONS),
    ),
    ("turning", "speed_mm_s"): _ch("10 mm/s, as the flow drift", _OMR),
    ("turning", "moving_s"): _ds("30 s moving (unverified)"),
    ("turning", "still_s"): _ds("30 s still (unverified)"),
    # position
    ("position", "period_s"): _ds("3 periods of 197 timesteps"),
    ("position", "drift_mm_s"): _ch("5 mm/s drift to hold against, half the flow's"),
    ("position", "drift_fraction"): _ch("drift for 2/3 of each period, then still"),
    ("position", "gain"): _ch("1 (threshold units)"),
    ("position", "turn_gain_deg"): _ch("as in taxis"),
    # rotation
    ("rotation", "deg_per_s"): _ds("~45 deg/s (unverified)"),
    ("rotation", "period_s"): _ds("10 periods of ~65.6 timesteps"),
    ("rotation", "start_angle_deg"): _ch("bars across the body axis"),
    # dark
    ("dark", "luminance"): _ds("no visual stimulus"),
    # protocol level
    ("protocol", "volume_period_s"): Source(
        "dataset", "0.9141 s per timestep", (("zapbench", "zapbench/constants.py"), _RIG)
    ),
    ("protocol", "swim_power"): _ch(
        "threshold units, as every protocol written before lab units existed "
        "(docs/closed-loop-units.md)"
    ),
    # the closed-loop law (stimuli/closed_loop.py)
    ("law", "LAB_FRAME_S"): _ch(
        "1/60 s: the lab's update is written per frame of its ≈60 Hz projector (DATASET.md); "
        "the law applies the same recurrence for any DAQ chunk length"
    ),
    ("law", "keep"): Source(
        "lab",
        "v <- 0.3 v + 0.6 target per lab frame while swimming (DATASET.md, the lab's code)",
        (_FICTIVE_VR,),
    ),
    ("law", "push"): Source(
        "lab", "the 0.6 of the same update (DATASET.md, the lab's code)", (_FICTIVE_VR,)
    ),
    ("law", "max_speed_mm_s"): _ch(
        "60 mm/s: the lab caps the velocity (DATASET.md) without a published value; 6x the "
        "built-in drift"
    ),
    ("law", "relax_mm_s2"): _ch(
        "40 mm/s²: the lab relaxes by a fixed step per frame (DATASET.md) without a "
        "published value; back from the cap to the drift in about 1.75 s"
    ),
    ("law", "turn_gain_deg"): _ch(
        "30 deg/s per unit of left-right power difference (2-D laws: taxis, position)"
    ),
    ("law", "power"): Source(
        "lab",
        "swim power = mean of the two channels' power, in threshold units by default "
        "(docs/closed-loop-units.md)",
        (_FICTIVE_VR,),
    ),
}

#: The closed-loop law's parameters as the code has them: name -> value (docs table).
LAW_PARAMETERS: dict[str, Any] = {
    "LAB_FRAME_S": closed_loop.LAB_FRAME_S,
    "keep": closed_loop._KEEP,
    "push": closed_loop._PUSH,
    "max_speed_mm_s": closed_loop.FlowLaw.__dataclass_fields__["max_speed_mm_s"].default,
    "relax_mm_s2": closed_loop.FlowLaw.__dataclass_fields__["relax_mm_s2"].default,
    "turn_gain_deg": closed_loop.TurnLaw.__dataclass_fields__["turn_gain_deg"].default,
    "power": "(left + right) / 2",
}

_UNITS = (
    ("_mm_s2", "mm/s²"),
    ("_mm_s", "mm/s"),
    ("cycles_per_deg", "cycles/deg"),
    ("turn_gain_deg", "deg/s per unit of power difference"),
    ("deg_per_s", "deg/s"),
    ("_deg", "deg"),
    ("_mm", "mm"),
    ("_hz", "Hz"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("spatial_freq", "cycles/mm"),
    ("LAB_FRAME_S", "s"),
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


def source_of(condition: str, name: str) -> Source | None:
    """The source of a parameter of a condition (or of the law: ``condition="law"``)."""
    return SOURCES.get((condition, name)) or SOURCES.get(("*", name))


def _source(condition: str, name: str) -> str | None:
    src = source_of(condition, name)
    return src.markdown() if src is not None else None


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
            rows.append((c.name, "kind", kind, "-", _source(c.name, "kind")))
            for k, v in params.items():
                rows.append((c.name, k, _fmt(v), unit_of(k), _source(c.name, k)))
    return rows


def law_rows() -> list[tuple[str, str, str, str, str | None]]:
    """The closed-loop law's parameters, as provenance rows (condition ``law``)."""
    return [("law", k, _fmt(v), unit_of(k), _source("law", k)) for k, v in LAW_PARAMETERS.items()]


def protocol_provenance_markdown(protocol: Protocol) -> str:
    lines = [
        f"# The built-in protocol ({protocol.name}): every parameter and where it comes from",
        "",
        "<!-- Generated by `python -m stimuli.docs` from stimuli/builtin.py and "
        "stimuli/provenance.py; do not edit. -->",
        "",
        "Sources: **dataset** = the ZAPBench release (its constants and `../shared/DATASET.md`); "
        "**lab** = the Ahrens lab's closed-loop method as DATASET.md gives it from their code; "
        "**paper** = a publication says it; **chosen** = our choice, with the reason. "
        "Publications are in *italics*, with where in them. *(unverified)* marks what "
        "DATASET.md itself marks unverified. A grating of 0.1 cycles/mm has a 10 mm period: "
        "5 mm bright and 5 mm dark bars.",
        "",
        "Times scale with `--time-scale` (stimuli/protocol.py, `Protocol.scaled`); speeds, "
        "sizes and the feedback delay do not. The last rows (`law`) are the closed-loop "
        "feedback law's own parameters (stimuli/closed_loop.py).",
        "",
        "| condition | parameter | value | unit | source |",
        "|---|---|---|---|---|",
    ]
    for cond, name, value, unit, source in [*provenance_rows(protocol), *law_rows()]:
        lines.append(f"| {cond} | `{name}` | {value} | {unit} | {source or '**MISSING**'} |")
    return "\n".join([*lines, ""])
