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
"""

from __future__ import annotations

import importlib.resources
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

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

Volts = Annotated[float, Field(ge=-10.0, le=10.0)]
PositiveUm = Annotated[float, Field(gt=0.0, le=10_000.0)]
PositivePx = Annotated[int, Field(gt=0, le=100_000)]
#: The tables that name a rig's hardware. A file without them would silently run the
#: simulated rig's defaults: it must say ``simulated = true`` (top level) to mean that.
HARDWARE_TABLES = ("daq", "microscope", "display")


class DaqConfig(Model):
    """The NI DAQ: the master clock, the tail electrodes and the light-sheet timing."""

    backend: Literal["sim", "nidaqmx"] = "sim"
    device: str = "Dev1"
    sample_rate_hz: float = Field(6000.0, ge=1000.0, le=100_000.0)
    #: Samples per read; the closed loop reacts once per chunk (the lab's rig: 50).
    chunk_samples: int = Field(60, ge=10, le=6000)
    tail_channels: tuple[str, str] = ("ai0", "ai1")
    trigger_readback_channel: str = "ai2"
    photodiode_channel: str | None = None
    #: More analog inputs recorded beside the photodiode in ``/analog_inputs`` (name ->
    #: channel, e.g. ``{ water_temp = "ai5" }``), on the stream's sample index.
    extra_inputs: dict[str, str] = Field(default_factory=dict)
    input_range_v: float = Field(10.0, gt=0.0, le=10.0)
    camera_trigger_output: str = "ao0"
    #: The volume-start marker has its own output line: the camera sees only the z plane
    #: pulses, and the marker reaches the read-back input through the TTL wiring
    #: (docs/hardware.md: both lines diode-ORed into ``trigger_readback_channel``).
    volume_marker_output: str = "ao3"
    #: Read the marker line back on an input of its own instead (row 2 is then the larger
    #: of the two measured signals, which is what the diode-OR wiring gives).
    marker_readback_channel: str | None = None
    galvo_output: str | None = "ao1"
    piezo_output: str | None = "ao2"
    #: TTL levels as the dataset's decoder expects: volume start > 3.55 V, plane in 1-3.55 V.
    volume_start_v: Volts = 5.0
    plane_trigger_v: Volts = 3.0
    trigger_pulse_ms: float = Field(1.0, gt=0.0, le=5.0)
    #: The volume-start marker comes this long before the volume's first plane trigger. The
    #: dataset's decoder (``find_peaks(distance=50)``) keeps only the taller of two peaks
    #: closer than 50 samples, so the marker must lead plane 0 by more than that.
    marker_lead_ms: float = Field(10.0, gt=0.0, le=100.0)
    galvo_amplitude_v: Volts = 2.0
    piezo_amplitude_v: Volts = 5.0
    #: Samples the driver buffers before an overflow (the NI default is a few seconds).
    buffer_seconds: float = Field(5.0, gt=0.1, le=60.0)

    @model_validator(mode="after")
    def _levels_decodable(self) -> Self:
        if not self.volume_start_v > 3.55:
            raise ValueError("volume_start_v must be above 3.55 V for the dataset's decoder")
        if not 1.0 < self.plane_trigger_v < 3.55:
            raise ValueError("plane_trigger_v must be between 1 and 3.55 V")
        for name in self.extra_inputs:
            if not name.isidentifier() or name == "photodiode":
                raise ValueError(
                    f"extra_inputs: {name!r} is not a usable name (letters, digits and _; "
                    "'photodiode' is daq.photodiode_channel's)"
                )
        return self

    @property
    def analog_input_names(self) -> tuple[str, ...]:
        """Inputs beyond the three of the 10-row stream, in column order (``/analog_inputs``)."""
        pd = ("photodiode",) if self.photodiode_channel else ()
        return pd + tuple(self.extra_inputs)


class MicroscopeConfig(Model):
    """The light-sheet: the camera, and how many planes per volume how often."""

    backend: Literal["sim", "pymmcore", "pycromanager"] = "sim"
    planes_per_volume: int = Field(8, ge=1, le=500)
    volume_period_s: float = Field(0.9141, gt=0.05, le=60.0)
    #: Camera frame size (x, y) in pixels.
    width: int = Field(128, ge=8, le=8192)
    height: int = Field(80, ge=8, le=8192)
    voxel_size_um: tuple[PositiveUm, PositiveUm, PositiveUm] = (4.0, 6.496, 6.496)  # (z, y, x)
    #: Time between arming and the first volume; TTL decoding needs a quiet baseline.
    lead_in_s: float = Field(0.1, ge=0.01, le=10.0)
    #: Time at the end of each volume with no plane (the galvo and piezo fly back); the
    #: volume-start marker of the next volume falls in it. Planes are spread evenly over
    #: the rest of the volume period.
    flyback_ms: float = Field(10.0, ge=0.0, le=1000.0)
    mm_config: str | None = None
    camera_device: str = "Camera"
    exposure_ms: float = Field(5.0, gt=0.0, le=1000.0)
    #: Micro-Manager's circular buffer (MB) that holds frames until the image lane takes
    #: them: 2 GB is 5 s of the dataset's 428 MB/s, room for any hiccup (MM's default,
    #: 250 MB, overflows in 0.6 s at that rate and stops the sequence).
    sequence_buffer_mb: int = Field(2048, ge=64, le=262_144)
    pycromanager_port: int = 4827

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.planes_per_volume, self.height, self.width)


class SyncPatchConfig(Model):
    """A small square in a corner of the projected image, under the photodiode.

    ``mode = "code"`` shows each frame's sync code (stimuli/render/sync_patch.py) so
    the photodiode trace alone says which frame appeared when; ``"luminance"`` shows
    the frame's mean luminance instead (``zaprig calibrate display`` uses it).
    """

    corner: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "bottom-left"
    size_px: int = Field(40, ge=4, le=1000)
    mode: Literal["code", "luminance"] = "code"


class ProjectionConfig(Model):
    """Where the screen is relative to the fish, and what lies between (stimuli/geometry.py).

    The flat-interface model of Dunn & Fitzgerald (eLife 2020): the eye
    ``eye_height_mm`` above the dish bottom in water, the dish, then an air gap to
    the screen. Gratings may then be given in cycles per degree as the fish receives them.
    """

    eye_height_mm: float = Field(3.0, gt=0.0, le=100.0)
    dish_mm: float = Field(0.0, ge=0.0, le=20.0)
    air_gap_mm: float = Field(0.5, ge=0.0, le=200.0)
    n_water: float = Field(1.333, ge=1.0, le=2.0)
    n_dish: float = Field(1.49, ge=1.0, le=2.0)
    n_air: float = Field(1.0, ge=1.0, le=2.0)


class DisplayConfig(Model):
    """The projector under the fish, calibrated in millimetres."""

    backend: Literal["headless", "psychopy"] = "headless"
    screen: int = Field(0, ge=0)
    size_px: tuple[PositivePx, PositivePx] = (800, 600)
    refresh_hz: float = Field(60.0, ge=10.0, le=500.0)
    fullscreen: bool = False
    px_per_mm: float = Field(10.0, gt=0.0, le=100_000.0)
    #: Where the fish's head is on the screen (px from the screen centre) and where it faces.
    fish_position_px: tuple[float, float] = (0.0, 0.0)
    fish_heading_deg: float = Field(90.0, ge=-360.0, le=360.0)
    #: The sync patch the photodiode looks at (none: nothing is drawn in the corner).
    sync_patch: SyncPatchConfig | None = None
    #: The projector's measured gamma (light = level ** gamma), written by ``zaprig calibrate
    #: display``; drawing raises relative luminances to 1 / gamma so light is linear in them.
    gamma: float = Field(1.0, ge=0.2, le=5.0)
    #: Screen, dish and water between the fish and the image (needed for cycles per degree).
    projection: ProjectionConfig | None = None


class LaserConfig(Model):
    """The excitation laser on a serial port (Coherent OBIS command set)."""

    backend: Literal["sim", "obis", "none"] = "sim"
    port: str = "/dev/ttyUSB0"
    baudrate: int = 115200
    power_mw: float = Field(20.0, ge=0.0, le=1000.0)
    timeout_s: float = Field(0.5, gt=0.0, le=10.0)


class WriterConfig(Model):
    """The session writer: compression, buffering, crash-safety flushing."""

    compression: Literal["none", "lz4", "zstd"] = "none"
    volume_slots: int = Field(6, ge=2, le=256)
    flush_interval_s: float = Field(1.0, gt=0.0, le=2.0)
    #: Warn when the volume buffer is this full (fraction of slots in use).
    warn_fill: float = Field(0.5, gt=0.0, le=1.0)


class ReadoutConfig(Model):
    """The live readout (rig/readout): drift, brightness and neuron traces per volume.

    ``labels`` says where the neurons come from: ``ground_truth`` (the simulated
    brain's), ``file`` (``label_file``: .npy, .h5[:/dataset] or .zarr, in (z, y, x) or
    the dataset's (x, y, z) layout) or ``detect`` (cells found on the reference volume).
    """

    enabled: bool = False
    #: Binning in y and x for the coarse drift and the brightness (the traces and the
    #: drift's sub-voxel refinement use full resolution).
    downsample: int = Field(8, ge=1, le=64)
    #: The reference is the mean of the first this many volumes.
    reference_volumes: int = Field(3, ge=1, le=1000)
    labels: Literal["ground_truth", "file", "detect"] = "ground_truth"
    label_file: str | None = None
    #: Disk radius of a label drawn from a position (ground truth, detected cells).
    label_radius_px: float = Field(2.0, gt=0.0, le=100.0)
    #: Voxels averaged per label at most (a fixed sample of large labels).
    max_voxels_per_label: int = Field(64, ge=1, le=100_000)
    #: ΔF/F's baseline F0: this low percentile, over the last ``baseline_volumes``, of the
    #: trace averaged in blocks of ``baseline_block_volumes`` (after Jia et al. 2011, Nat
    #: Protoc 6:28-35, "Data analysis": F0 is the minimum, over a long preceding window, of
    #: a short running mean; a low percentile instead of the minimum is our choice, so one
    #: noisy block cannot pull F0 down). The window keeps a response: a cell holds its ΔF/F
    #: while it is active for less than (100 - percentile) % of the window, and the default
    #: (600 volumes, ~9 min at 0.914 s) is longer than any of the dataset's stimulus periods.
    baseline_volumes: int = Field(600, ge=2, le=100_000)
    baseline_percentile: float = Field(10.0, ge=0.0, le=100.0)
    baseline_block_volumes: int = Field(3, ge=1, le=1000)
    #: What is taken off a trace before ΔF/F: ``annulus`` (the camera's dark level, then
    #: ``background_factor`` x the local background: the mean of a ring around the label,
    #: clear of every label) or ``dark`` (the dark level alone).
    background: Literal["annulus", "dark"] = "annulus"
    #: The ring: from this many pixels beyond the label's radius, this many pixels wide.
    annulus_px: tuple[float, float] = (2.0, 4.0)
    #: The share of the ring's signal (over the dark level) taken off: 1 for a background of
    #: autofluorescence and scattered light (light-sheet, the simulated brain); two-photon
    #: pipelines take 0.7 of an active neuropil (Pachitariu et al. 2017, bioRxiv 061507,
    #: suite2p "neuropil subtraction").
    background_factor: float = Field(1.0, ge=0.0, le=2.0)
    #: A "drift" warning event when the drift's length exceeds this (once per excursion).
    drift_warn_um: float = Field(5.0, gt=0.0, le=10_000.0)
    #: A detected cell stands this many robust deviations above its plane's DoG median
    #: (measured on the simulated brain: 3 let noise through, 74 % precision; 5: 100 %).
    detect_threshold_sd: float = Field(5.0, gt=0.0, le=100.0)
    #: The live forecaster (rig/forecast/_online.py): volumes ahead it forecasts every
    #: traced neuron (0: off), principal components it projects each volume on (the
    #: neurons' shared activity), and the past volumes it takes them from.
    #: ``/live/forecast`` records it.
    forecast_horizon: int = Field(4, ge=0, le=64)
    forecast_components: int = Field(8, ge=1, le=256)
    forecast_history: int = Field(128, ge=16, le=4096)
    #: The camera's dark level (counts), taken out of the brightness (it does not bleach);
    #: None: the lowest 1 % of the reference volume (the dark around the brain).
    dark_level: float | None = Field(None, ge=0.0, le=65535.0)

    @model_validator(mode="after")
    def _label_source(self) -> Self:
        gap, width = self.annulus_px
        if gap < 0 or width <= 0:
            raise ValueError(
                f"readout.annulus_px = {list(self.annulus_px)}: want [gap >= 0, width > 0] "
                "(pixels beyond the label's radius, and the ring's width)"
            )
        if self.labels == "file" and not self.label_file:
            raise ValueError(
                "readout.labels = 'file' needs readout.label_file (the path of a label volume)"
            )
        if self.labels != "file" and self.label_file:
            raise ValueError(
                f"readout.label_file is given but readout.labels = '{self.labels}': "
                "set labels = 'file' to use it, or remove label_file"
            )
        return self


class SwimsConfig(Model):
    """The online swim detector (acquisition/swims/_online.py), ``[swims]`` in a rig file.

    ``rule = "lab"`` is the Ahrens lab's online rule as DATASET.md gives it: threshold =
    noise mode + 1.8 x (mode - low tail), bouts split at gaps of 0.4 s. The default,
    ``"zaprig"``, differs in two values, each measured on the virtual fish's tail (240 s of
    optomotor swimming, 125 true bouts; 300 s of electrode noise; docs/design-notes.md):
    ``threshold_k`` 2.5 (with 1.8: precision 0.92 and 12 false bouts in 300 s of noise;
    with 2.5: 1.00 and 0) and ``gap_s`` 0.1 (with 0.4, true bouts closer than 0.4 s
    merge: recall 0.94; with 0.1: 1.00). Either value may be set on its own over a rule.
    On the realistic tail (mains hum, heartbeat, drift, light-step artefacts; issue 27),
    ``benchmarks/fish_validation.py --fish 3 --time-scale 0.05 --neurons 300``: the default
    finds 310 of 310 true bouts (precision and recall 1.000, onset p95 4.7 ms); the lab rule
    finds 369 for 302 (precision 0.60, recall 0.74): its factor was set on the lab's own
    power measure and noise, and does not carry over to this detector's unchanged.
    """

    rule: Literal["zaprig", "lab"] = "zaprig"
    #: Threshold = mode + threshold_k x (mode - low tail) of the power's noise distribution.
    threshold_k: float | None = Field(None, gt=0.0, le=50.0)
    #: A bout ends after this long with both channels below threshold (s).
    gap_s: float | None = Field(None, gt=0.0, le=10.0)


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
