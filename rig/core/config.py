"""Rig configuration: one validated, frozen model per rig, loaded from TOML.

The simulated rig and real rigs share this one schema, so switching between them
is a config change (the ``backend`` of each device), never a code change.
Validation happens when the file is loaded, before any device is opened, and is
strict: values are never converted from another type (``sample_rate_hz = "6000"`` is
refused), times and rates are range-checked, and a file must name its hardware
(``[daq]``, ``[microscope]`` and ``[display]``) or say ``simulated = true``.

What only a simulated rig has (the virtual fish, the simulated projector and sample, the
injected faults) is its own model, ``rig.core.simulation.SimulationConfig``, held in
``RigConfig.simulation`` when the DAQ or the microscope is simulated and None otherwise. A
file writes its parts as top-level tables (``[fish]``, ``[faults]``, ``[sim_projector]``,
``[sim_microscope]``); a file whose DAQ and microscope are both real hardware is refused if
it has one, naming the table and the fix. ``RigConfig.model_dump`` and ``to_json`` (a
session's ``hardware_config``) write them back the same way, at the top level.

This module is the whole rig and its loading: ``RigConfig`` (with the checks that span more
than one table), reading a TOML file or a session's stored JSON, and the strict validation
with its messages. The model of each device table (``DaqConfig``, ``MicroscopeConfig`` ...)
is in :mod:`rig.core._devices`, each checked on its own, and is importable from here: the
split is between what one table may hold and how a whole file becomes a rig.
"""

from __future__ import annotations

import importlib.resources
import json
import tomllib
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError, model_validator

from rig.core._devices import (
    DaqConfig,
    DisplayConfig,
    LaserConfig,
    MicroscopeConfig,
    ProjectionConfig,
    ReadoutConfig,
    SwimsConfig,
    SyncPatchConfig,
    WriterConfig,
)
from rig.core._model import Model
from rig.core.errors import ConfigError, format_validation_error
from rig.core.simulation import (
    SIMULATION_TABLES,
    FaultConfig,
    FishConfig,
    SimMicroscopeConfig,
    SimProjectorConfig,
    SimulationConfig,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DaqConfig",
    "DisplayConfig",
    "FaultConfig",
    "FishConfig",
    "LaserConfig",
    "MicroscopeConfig",
    "ProjectionConfig",
    "ReadoutConfig",
    "RigConfig",
    "SimMicroscopeConfig",
    "SimProjectorConfig",
    "SimulationConfig",
    "SyncPatchConfig",
    "WriterConfig",
    "load_config",
]


def _shipped_configs() -> Path:
    """The folder of the rig configs zaprig ships: ``hardware_configs/``, a data-only package,
    so a source checkout, an editable install and a wheel installed anywhere all find it."""
    folder = importlib.resources.files("hardware_configs")
    if not isinstance(folder, Path):  # a zip import: configs are read as files, so refuse it
        raise ConfigError(
            f"the shipped rig configs are inside {folder}, not a folder: "
            "install zaprig unzipped (pip install zaprig)"
        )
    return folder


#: Where the shipped rig configs live (``hardware_configs/``, installed as package data).
CONFIG_DIR = _shipped_configs()
DEFAULT_CONFIG = CONFIG_DIR / "simulated.toml"

#: The tables that name a rig's hardware. A file without them would silently run the
#: simulated rig's defaults: it must say ``simulated = true`` (top level) to mean that.
HARDWARE_TABLES = ("daq", "microscope", "display")


class RigConfig(Model):
    """A whole rig."""

    name: str = "simulated"
    description: str = ""
    daq: DaqConfig = DaqConfig()
    microscope: MicroscopeConfig = MicroscopeConfig()
    display: DisplayConfig = DisplayConfig()
    laser: LaserConfig = LaserConfig()
    writer: WriterConfig = WriterConfig()
    readout: ReadoutConfig = ReadoutConfig()
    swims: SwimsConfig = SwimsConfig()
    #: The simulation's settings: present when a device is simulated (the defaults unless
    #: given), None on real hardware. Declared after daq and microscope, which decide it.
    simulation: SimulationConfig | None = Field(
        default_factory=lambda given: SimulationConfig() if _names_sim(given) else None
    )

    @property
    def simulated(self) -> bool:
        return self.daq.backend == "sim" or self.microscope.backend == "sim"

    @property
    def sim(self) -> SimulationConfig:
        """The simulation's settings of a simulated rig (a ConfigError on real hardware)."""
        if self.simulation is None:
            raise ConfigError(
                f"rig {self.name!r}: no device is simulated, so it has no simulation settings"
            )
        return self.simulation

    def with_simulation(
        self,
        *,
        fish: FishConfig | None = None,
        faults: FaultConfig | None = None,
        sim_projector: SimProjectorConfig | None = None,
        sim_microscope: SimMicroscopeConfig | None = None,
    ) -> RigConfig:
        """This simulated rig with the given simulation tables replaced (the others kept)."""
        given = {
            "fish": fish,
            "faults": faults,
            "sim_projector": sim_projector,
            "sim_microscope": sim_microscope,
        }
        update = {k: v for k, v in given.items() if v is not None}
        return self.model_copy(update={"simulation": self.sim.model_copy(update=update)})

    @model_validator(mode="after")
    def _simulation_matches_devices(self) -> Self:
        if self.simulated and self.simulation is None:
            raise ValueError(
                "simulation: a rig with a simulated DAQ or microscope needs its simulation "
                "settings (leave simulation out for the defaults)"
            )
        if not self.simulated and self.simulation is not None:
            raise ValueError(
                "simulation: daq.backend and microscope.backend name real hardware, so the "
                "rig has no simulation settings; remove them"
            )
        return self

    @model_validator(mode="after")
    def _timing_decodable(self) -> Self:
        """Refuse a TTL timing the dataset's decoder could not read back (DATASET.md).

        Per volume: the marker, ``marker_lead`` before plane 0, then z plane pulses
        ``plane_step`` apart, then the flyback. ``find_peaks(distance=50)`` needs every
        pair of neighbouring pulses more than 50 samples apart (a pulse's width of
        margin, since a measured flat pulse peaks anywhere on its top), and
        ``find_peaks(distance=500)`` needs the markers more than 500 apart.
        """
        fs = self.daq.sample_rate_hz
        m = self.microscope
        width = self.daq.trigger_pulse_ms * 1e-3 * fs
        need = 50 + width
        period = m.volume_period_s * fs
        flyback = m.flyback_ms * 1e-3 * fs
        lead = self.daq.marker_lead_ms * 1e-3 * fs
        step = (period - flyback) / m.planes_per_volume
        if period <= 500:
            raise ValueError("microscope.volume_period_s must exceed 500 DAQ samples")
        if flyback >= period:
            raise ValueError("microscope.flyback_ms must be shorter than volume_period_s")
        if m.planes_per_volume > 1 and step <= need:
            raise ValueError(
                f"microscope: {m.planes_per_volume} planes in {m.volume_period_s} s less "
                f"{m.flyback_ms} ms flyback puts plane triggers {step:.1f} samples apart; the "
                f"dataset's TTL decoder needs more than 50 plus the {width:.0f}-sample pulse (fewer planes, a shorter flyback_ms "
                "or a longer volume_period_s)"
            )
        if lead <= need:
            raise ValueError(
                f"daq.marker_lead_ms = {self.daq.marker_lead_ms} puts the volume-start marker "
                f"{lead:.1f} samples before plane 0; the dataset's TTL decoder needs > "
                f"{need:.0f} (raise daq.marker_lead_ms)"
            )
        if step + flyback - lead <= need:
            raise ValueError(
                f"microscope.flyback_ms = {m.flyback_ms} leaves the volume-start marker "
                f"{step + flyback - lead:.1f} samples after the previous volume's last plane; "
                f"the dataset's TTL decoder needs > {need:.0f} (raise microscope.flyback_ms "
                "or lower daq.marker_lead_ms)"
            )
        if m.lead_in_s * fs <= lead + need:
            raise ValueError(
                "microscope.lead_in_s must leave room for the first volume-start marker "
                f"(more than {(lead + need) / fs * 1e3:.0f} ms)"
            )
        if width >= 50:
            raise ValueError("daq.trigger_pulse_ms must be shorter than 50 DAQ samples")
        r = self.readout
        if r.enabled and r.labels == "ground_truth" and m.backend != "sim":
            raise ValueError(
                "readout.labels = 'ground_truth' needs the simulated microscope: use "
                "labels = 'file' (with label_file) or 'detect' on a real rig"
            )
        return self

    def to_json(self) -> str:
        """The rig as a rig file writes it (a session's ``hardware_config``): the
        simulation's tables at the top level."""
        data = self.model_dump(mode="json")
        data.update(data.pop("simulation", None) or {})
        return json.dumps(data, sort_keys=True)


def _names_sim(given: dict[str, Any]) -> bool:
    """Whether validated fields ``given`` hold a simulated DAQ or microscope."""
    return any(_backend(given.get(d)) == "sim" for d in ("daq", "microscope"))


def _backend(device: Any) -> Any:
    """The backend a raw device table (or a device model) names; "sim" when it names none."""
    if isinstance(device, dict):
        return device.get("backend", "sim")
    return getattr(device, "backend", "sim")


def _misplaced_simulation(data: dict[str, Any]) -> list[str]:
    """One line per simulation table in raw rig data whose DAQ and microscope are both real
    hardware (none when a device is simulated): the table, why, and the fix."""
    tables = [k for k in SIMULATION_TABLES if k in data]
    backends = {d: _backend(data.get(d)) for d in ("daq", "microscope")}
    if not tables or "sim" in backends.values():
        return []
    real = " and ".join(f'{d}.backend = "{b}"' for d, b in backends.items())
    return [
        f"{t}: [{t}] is for the simulated rig only, and this rig's {real} name real "
        f'hardware; remove the [{t}] table (or set a backend to "sim" to simulate that device)'
        for t in tables
    ]


def _validate(data: dict[str, Any], source: str | Path) -> RigConfig:
    """Validate strictly: a number must be written as a number (``"6000"`` is refused, not
    converted), a flag as true/false. Validated through JSON so that TOML arrays fill tuples."""
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as e:  # a TOML date or time: no rig setting is one
        raise ConfigError(
            f"{source}: invalid: {e}; write times as numbers of seconds, not TOML dates"
        ) from None
    if "simulation" in data:
        raise ConfigError(
            f"{source}: invalid\n  simulation: not a table of a rig file; write the simulated "
            f"rig's settings as top-level tables: {', '.join(f'[{t}]' for t in SIMULATION_TABLES)}"
        )
    refused = _misplaced_simulation(data)
    if refused:
        raise ConfigError("\n  ".join([f"{source}: invalid", *refused]))
    tables = {k: data[k] for k in SIMULATION_TABLES if k in data}
    if tables:
        data = {k: v for k, v in data.items() if k not in tables} | {"simulation": tables}
        text = json.dumps(data)
    try:
        return RigConfig.model_validate_json(text, strict=True)
    except ValidationError as e:
        # the simulation's tables are top-level tables in the file: name them as written
        errors = [
            {**err, "loc": tuple(err["loc"][1:])}
            if err["loc"][:1] == ("simulation",) and len(err["loc"]) > 1
            else err
            for err in e.errors()
        ]
        raise ConfigError(format_validation_error(source, errors)) from None


def _declared_hardware(data: dict[str, Any], declared: Any, source: Path) -> None:
    """Refuse a config that names no hardware, unless it says it means the simulated rig
    (checked after the fields, so a wrong field is named first)."""
    if declared is not None and not isinstance(declared, bool):
        raise ConfigError(
            f"{source}: invalid\n  simulated: must be true or false (got {declared!r}); "
            "write simulated = true for the simulated rig"
        )
    missing = [t for t in HARDWARE_TABLES if not isinstance(data.get(t), dict)]
    if declared:
        real = [t for t in ("daq", "microscope") if data.get(t, {}).get("backend", "sim") != "sim"]
        if real:
            raise ConfigError(
                f"{source}: invalid\n  simulated: the file says simulated = true but "
                f"{', '.join(f'{t}.backend' for t in real)} names real hardware; remove "
                'simulated = true, or set those backends to "sim"'
            )
    elif missing:
        raise ConfigError(
            f"{source}: invalid\n  <top level>: no [{'], ['.join(missing)}] table: the file "
            "does not say which hardware the rig has, and would run the simulated rig's "
            "defaults without a word; add the missing tables, or write simulated = true at "
            "the top of the file to mean the simulated rig"
        )


def load_config(path: str | Path | None = None) -> RigConfig:
    """Read and validate a rig config; the default is the simulated rig."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.exists():
        raise ConfigError(f"{p}: rig config not found (give --config with an existing TOML file)")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; give --config a rig config TOML file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the rig config: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file: {e}") from None
    declared = data.pop("simulated", None)
    rig = _validate(data, p)
    _declared_hardware(data, declared, p)
    return rig


def config_from_json(text: str) -> RigConfig:
    """Rebuild a config stored in a session file's ``hardware_config`` attribute.

    Sessions recorded before the simulation had its own model hold its tables (at their
    defaults) for real hardware too: those are dropped, not refused."""
    data = json.loads(text)
    if isinstance(data, dict) and _misplaced_simulation(data):
        data = {k: v for k, v in data.items() if k not in SIMULATION_TABLES}
    return _validate(data, "<session hardware_config>")
