"""The per-device tables of a rig config: one model per kind of device or lane.

Split from :mod:`rig.core.config` (which re-exports every public model here) by job: this
module says what each table of a rig file (``[daq]``, ``[microscope]``, ``[display]``,
``[laser]``, ``[writer]``, ``[readout]``, ``[swims]``) may hold and checks each table on
its own; :mod:`rig.core.config` puts them together in ``RigConfig``, checks what depends on
more than one table (the TTL timing the dataset's decoder must read back), and loads and
validates files. The simulation's own tables are in :mod:`rig.core.simulation`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from rig.core._model import Model

Volts = Annotated[float, Field(ge=-10.0, le=10.0)]
PositiveUm = Annotated[float, Field(gt=0.0, le=10_000.0)]
PositivePx = Annotated[int, Field(gt=0, le=100_000)]


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
