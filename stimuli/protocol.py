"""Stimulus protocols: conditions made of steps, as data.

A protocol is a sequence of *conditions* (the dataset's blocks: gain, dots, ...);
a condition lasts a number of volumes (or seconds) and cycles through its *steps*;
a step shows one stimulus for a duration. Protocols are written as Python
scripts with this module's small API or as TOML files; both give the same frozen,
validated :class:`Protocol` with a content hash, and nothing here touches hardware.

TOML::

    name = "flashes"
    [[conditions]]
    name = "flash"
    seconds = 120
    [[conditions.steps]]
    duration_s = 60
    stimulus = { kind = "flash", period_s = 60, on_s = 30 }
    # a brain-triggered step: the loom starts when the tectum's mean dF/F exceeds 0.3
    # [[conditions.steps]]
    # duration_s = 40
    # stimulus = { kind = "shadow", mode = "loom", period_s = 40 }
    # wait_for = { signal = "dff_mean", region = "box:0-8,0-40,0-64", above = 0.3, timeout_s = 30 }

Python (a file that defines ``PROTOCOL``)::

    from stimuli.protocol import Protocol, condition, step
    from stimuli.library import Flash
    PROTOCOL = Protocol(name="flashes", conditions=[
        condition("flash", step(Flash(period_s=60, on_s=30), 60), seconds=120)])
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rig.core.errors import ProtocolError, format_validation_error
from stimuli.library import AnyStimulus, Replay

__all__ = [
    "SCALING_NOTE",
    "Condition",
    "Protocol",
    "Step",
    "WaitFor",
    "condition",
    "load_protocol",
    "parse_region",
    "step",
]


class _Model(BaseModel):
    # NaN and infinity are never a physical setting: refuse them in every float field
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


#: Fastest replayed grating speed (mm/s): the closed-loop laws' and drift's own limit.
REPLAY_MAX_MM_S = 100.0


def _check_trace(values: Sequence[float] | np.ndarray, where: str) -> None:
    """A replayed trace must be finite and physically showable; raises ValueError saying where."""
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{where}: sample {i} is {arr[i]}: every velocity must be finite")
    if arr.size and float(np.max(np.abs(arr))) > REPLAY_MAX_MM_S:
        i = int(np.argmax(np.abs(arr)))
        raise ValueError(
            f"{where}: sample {i} is {arr[i]:g} mm/s, beyond the rig's "
            f"±{REPLAY_MAX_MM_S:g} mm/s: scale the trace to mm/s"
        )


class WaitFor(_Model):
    """A live brain signal a step waits for before its stimulus starts (brain-triggered).

    ``signal = "dff_mean"``: the mean ΔF/F of the traced neurons in ``region`` (the live
    readout, rig/readout), one value per volume. ``region``: ``"all"``; ``"tuning:NAME"``
    (the simulated brain's neurons tuned to NAME, e.g. ``tuning:light_on``); or a box in
    voxels ``"box:z0-z1,y0-y1,x0-x1"`` (ends exclusive). The stimulus starts when the
    value exceeds ``above`` (or at ``timeout_s`` if it never does); until then the step
    shows its stimulus's background. The step's length does not change, so the
    protocol's conditions keep their volumes.

    ``signal = "surprise"``: how far the brain strays from the live forecaster's
    expectation (rig/forecast/_online.py): the region's MAE of the forecast of this volume
    made one volume before, over its running median (about 1 while the brain does what
    the model expects). ``above`` is then that ratio, e.g. 3.
    """

    signal: Literal["dff_mean", "surprise"] = "dff_mean"
    region: str = "all"
    above: float = Field(allow_inf_nan=False)
    timeout_s: float = Field(gt=0.0, le=86_400.0)

    @model_validator(mode="after")
    def _region_syntax(self) -> Self:
        parse_region(self.region)
        return self


def parse_region(region: str) -> tuple[str, Any]:
    """("all", None) | ("tuning", name) | ("box", ((z0, z1), (y0, y1), (x0, x1)))."""
    if region == "all":
        return ("all", None)
    if region.startswith("tuning:") and len(region) > len("tuning:"):
        return ("tuning", region.split(":", 1)[1])
    if region.startswith("box:"):
        parts = region[4:].split(",")
        try:
            ranges = tuple(tuple(int(v) for v in p.split("-")) for p in parts)
        except ValueError:
            ranges = ()
        if len(ranges) == 3 and all(len(r) == 2 and 0 <= r[0] < r[1] for r in ranges):
            return ("box", ranges)
    raise ValueError(
        f"wait_for.region {region!r}: use 'all', 'tuning:NAME' or 'box:z0-z1,y0-y1,x0-x1' "
        "(voxels, ends exclusive)"
    )


class Step(_Model):
    """One stimulus shown for ``duration_s`` seconds (after a live signal, with ``wait_for``)."""

    duration_s: float = Field(gt=0.0, le=86_400.0)
    stimulus: AnyStimulus
    label: str = ""
    wait_for: WaitFor | None = None

    @model_validator(mode="after")
    def _timeout_inside(self) -> Self:
        if self.wait_for is not None and self.wait_for.timeout_s >= self.duration_s:
            raise ValueError(
                f"wait_for.timeout_s = {self.wait_for.timeout_s:g} must be shorter than the "
                f"step's duration_s = {self.duration_s:g} (the stimulus needs time to show)"
            )
        return self


class Condition(_Model):
    """A block of the protocol; its steps repeat until it has lasted its length."""

    name: str = Field(min_length=1, max_length=64)
    volumes: int | None = Field(None, gt=0, le=10_000_000)
    seconds: float | None = Field(None, gt=0.0, le=604_800.0)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_length(self) -> Self:
        if (self.volumes is None) == (self.seconds is None):
            raise ValueError(f"condition {self.name!r}: give its length as volumes or seconds")
        return self

    @property
    def cycle_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    def n_volumes(self, volume_period_s: float) -> int:
        if self.volumes is not None:
            return self.volumes
        assert self.seconds is not None
        return max(1, round(self.seconds / volume_period_s))


class Protocol(_Model):
    """A whole protocol; ``sha256`` identifies its content in session files."""

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    #: The volume period the protocol was designed for (informational).
    volume_period_s: float | None = Field(None, gt=0.0)
    #: Units of the swim power its closed-loop gains multiply: ``"threshold"`` (multiples
    #: of the electrode noise threshold) or ``"lab"`` (the Ahrens lab's volts, so a lab
    #: rig's gains carry over): docs/closed-loop-units.md.
    swim_power: Literal["threshold", "lab"] = "threshold"
    conditions: tuple[Condition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _replays_valid(self) -> Self:
        """Replayed traces are finite and showable; ``from_condition`` names an earlier one."""
        for ci, c in enumerate(self.conditions):
            earlier = [x.name for x in self.conditions[:ci]]
            for si, s in enumerate(c.steps):
                stim = s.stimulus
                if not isinstance(stim, Replay):
                    continue
                where = f"conditions[{ci}].steps[{si}].stimulus"
                _check_trace(stim.velocities_mm_s, f"{where}.velocities_mm_s")
                src = stim.from_condition
                if src is not None and src not in earlier:
                    # suggest only an earlier condition: naming itself (or a later one) is
                    # the mistake, so it is never the fix
                    close = difflib.get_close_matches(src, earlier, 1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    if src == c.name:
                        hint = " (a condition cannot replay itself: it is being recorded)"
                    raise ValueError(
                        f"{where}.from_condition: {src!r} is not an earlier condition{hint}; "
                        f"earlier conditions: {', '.join(map(repr, earlier)) or 'none'}"
                    )
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def scaled(self, factor: float) -> Protocol:
        """The protocol at ``factor`` of its length (demos, previews, tests).

        Time scales everywhere: each condition's length, its steps' durations, a
        brain-triggered step's timeout and every duration inside its stimuli (the
        fields each stimulus class declares, :attr:`Stimulus.TIME_FIELDS`), so a
        shortened run shows the same sequence of stimulus states as the full one.
        A condition given in volumes is rounded to whole volumes, and its contents
        scale with the rounded length (:meth:`condition_factors`), so the states fit
        it exactly. Speeds stay physical.
        """
        if factor == 1.0:
            return self
        if not 0.0 < factor <= 1000.0:
            raise ProtocolError(f"time scale must be in (0, 1000], not {factor}")
        conds = []
        for c, fc in zip(self.conditions, self.condition_factors(factor), strict=True):
            steps = tuple(_scaled_step(s, fc) for s in c.steps)
            upd: dict[str, Any] = {"steps": steps}
            if c.volumes is not None:
                upd["volumes"] = max(1, round(c.volumes * factor))
            else:
                assert c.seconds is not None
                upd["seconds"] = c.seconds * factor
            conds.append(c.model_copy(update=upd))
        return self.model_copy(
            update={"conditions": tuple(conds), "name": f"{self.name} (x{factor:g})"}
        )

    def condition_factors(self, factor: float) -> tuple[float, ...]:
        """Per condition, the factor its contents scale by at time scale ``factor``:
        ``factor`` itself, or for a length in volumes the rounded volumes over the full
        ones (the built-in gain block at 0.01 is 6 of 649 volumes: 0.00924)."""
        return tuple(
            max(1, round(c.volumes * factor)) / c.volumes if c.volumes is not None else factor
            for c in self.conditions
        )


def _scaled_step(s: Step, factor: float) -> Step:
    upd: dict[str, Any] = {
        "duration_s": s.duration_s * factor,
        "stimulus": s.stimulus.scaled(factor),
    }
    if s.wait_for is not None:
        upd["wait_for"] = s.wait_for.model_copy(update={"timeout_s": s.wait_for.timeout_s * factor})
    return s.model_copy(update=upd)


#: What ``zaprig plan`` says a time scale does (one line).
SCALING_NOTE = (
    "time scale: conditions, steps, timeouts and every duration inside a stimulus (periods, "
    "on/off phases, segments, replay rates) scale together; a condition in volumes scales "
    "with its rounded length; speeds, sizes and the closed-loop feedback delay stay physical"
)


def step(stimulus: Any, seconds: float, label: str = "", wait_for: WaitFor | None = None) -> Step:
    """``step(Flash(), 60)``: show a stimulus for some seconds (after ``wait_for``, if given)."""
    return Step(duration_s=seconds, stimulus=stimulus, label=label, wait_for=wait_for)


def condition(
    name: str, *steps: Step, volumes: int | None = None, seconds: float | None = None
) -> Condition:
    """``condition("flash", step(...), step(...), volumes=656)``."""
    return Condition(name=name, volumes=volumes, seconds=seconds, steps=steps)


def protocol_from_dict(data: dict[str, Any], source: str | Path) -> Protocol:
    """Validate plain data (from TOML or JSON) into a protocol, errors naming the field."""
    try:
        proto = Protocol.model_validate(data)
    except ValidationError as e:
        raise ProtocolError(format_validation_error(source, e.errors())) from None
    return _resolve_trace_files(proto, Path(source).parent if source else Path("."))


def _resolve_trace_files(proto: Protocol, base: Path) -> Protocol:
    """Read replay traces now, so a missing file fails before any hardware moves."""
    conds = []
    changed = False
    for ci, c in enumerate(proto.conditions):
        steps: list[Step] = []
        for si, s in enumerate(c.steps):
            stim = s.stimulus
            if isinstance(stim, Replay) and stim.trace_file:
                trace = _read_trace(base / stim.trace_file, f"conditions[{ci}].steps[{si}]")
                stim = stim.model_copy(update={"velocities_mm_s": trace})
                s = s.model_copy(update={"stimulus": stim})
                changed = True
            steps.append(s)
        conds.append(c.model_copy(update={"steps": tuple(steps)}))
    return proto.model_copy(update={"conditions": tuple(conds)}) if changed else proto


def _read_trace(path: Path, where: str) -> tuple[float, ...]:
    if not path.exists():
        raise ProtocolError(
            f"{where}.stimulus.trace_file: {path} not found (give an existing file)"
        )
    if not path.is_file():
        # a device (/dev/zero never ends), a FIFO or a folder: refused by type, never read
        kind = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise ProtocolError(
            f"{where}.stimulus.trace_file: {path}: is {kind}; give a .npy, .csv or text file"
        )
    try:
        if path.suffix == ".npy":
            arr = np.load(path)
        else:
            arr = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None)
    except (OSError, ValueError, EOFError) as e:
        raise ProtocolError(f"{where}.stimulus.trace_file: {path}: cannot read: {e}") from None
    if getattr(arr, "dtype", None) is not None and arr.dtype.kind == "c":
        raise ProtocolError(
            f"{where}.stimulus.trace_file: {path}: holds complex numbers ({arr.dtype}); "
            "velocities are real: save the real part (np.real) in mm/s"
        )
    if getattr(arr, "ndim", 1) == 0:  # a file of one value reads as a scalar: one sample
        arr = np.atleast_1d(arr)
    try:
        arr = np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"{where}.stimulus.trace_file: {path}: not numbers: {e}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ProtocolError(
            f"{where}.stimulus.trace_file: {path}: has shape {arr.shape}; need a non-empty "
            "1-D list of velocities in mm/s (one column, or one value per line)"
        )
    try:
        _check_trace(arr, f"{where}.stimulus.trace_file: {path}")
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    return tuple(float(x) for x in arr)


def load_protocol(source: str | Path | None) -> Protocol:
    """A protocol from a ``.toml`` or ``.py`` file, or ``None``/``"dataset"`` for the built-in."""
    from stimuli.builtin import dataset_protocol

    if source is None or str(source) in ("dataset", "builtin", "zapbench"):
        return dataset_protocol()
    path = Path(source)
    if not path.exists():
        raise ProtocolError(
            f"{path}: protocol file not found (give a .toml or .py file, or 'dataset')"
        )
    if path.is_dir():
        raise ProtocolError(f"{path}: is a folder; give a .toml or .py protocol file")
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ProtocolError(f"{path}: not valid TOML: {e}") from None
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{path}: not a UTF-8 text file: {e}") from None
        except OSError as e:
            raise ProtocolError(f"{path}: cannot read the protocol: {e.strerror or e}") from None
        return protocol_from_dict(data, path)
    if path.suffix == ".py":
        from stimuli._script import run_protocol_script

        # protocol code runs in a child process with a time limit (stimuli/_script.py)
        return protocol_from_dict(run_protocol_script(path), path)
    raise ProtocolError(f"{path}: unknown protocol file type (use .toml or .py)")


def condition_names(proto: Protocol) -> Sequence[str]:
    return [c.name for c in proto.conditions]
