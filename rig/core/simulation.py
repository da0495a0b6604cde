"""The simulated rig's own settings: the virtual fish, the simulated projector and sample,
and the faults injected into a run.

Only a simulated rig has them (``RigConfig.simulation``, present when the DAQ or the
microscope is ``"sim"``); a rig of real hardware has none, and its file may not name them.
In a rig file, as in a session's ``hardware_config``, each is a top-level table, as it
always was: ``[fish]``, ``[faults]``, ``[sim_projector]`` and ``[sim_microscope]``
(``SIMULATION_TABLES``).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from rig.core._model import Model

__all__ = [
    "SIMULATION_TABLES",
    "FaultConfig",
    "FishConfig",
    "Seconds",
    "SimMicroscopeConfig",
    "SimProjectorConfig",
    "SimulationConfig",
]

#: A moment of a run, in seconds from its start (at most a week).
Seconds = Annotated[float, Field(ge=0.0, le=7 * 24 * 3600.0)]


class FishConfig(Model):
    """The virtual fish of the simulated rig."""

    n_neurons: int = Field(300, ge=1, le=100_000)
    spontaneous_bout_rate_hz: float = Field(0.05, ge=0.0, le=10.0)
    omr_bout_rate_hz: float = Field(1.2, ge=0.0, le=20.0)
    noise_v: float = Field(0.01, ge=0.0, le=1.0)
    spike_v: float = Field(0.25, ge=0.0, le=5.0)
    bout_duration_s: float = Field(0.35, gt=0.02, le=5.0)
    visual_latency_s: float = Field(0.15, ge=0.0, le=2.0)
    #: Rotating whole-field motion drives turning bouts toward it (optokinetic turning).
    okr_bout_rate_hz: float = Field(0.8, ge=0.0, le=20.0)
    #: Tail-beat (burst) frequency range of routine bouts, Hz; escapes use the top of
    #: the range and above (acquisition/fish/_behaviour.py cites the sources).
    burst_hz: tuple[float, float] = (20.0, 40.0)
    #: Electrode artefacts (acquisition/fish/_tail.py): mains hum (0 Hz: none), its
    #: amplitude, heartbeat amplitude and rate range, slow drift, the per-fish spread of
    #: the noise level (log-normal sd: the signal-to-noise ratio varies across fish) and
    #: the deflection a light step gives on the electrodes (V per unit of luminance).
    mains_hz: float = Field(50.0, ge=0.0, le=400.0)
    mains_v: float = Field(0.004, ge=0.0, le=1.0)
    heartbeat_v: float = Field(0.008, ge=0.0, le=1.0)
    heart_rate_hz: tuple[float, float] = (2.0, 3.0)
    drift_v: float = Field(0.02, ge=0.0, le=1.0)
    snr_spread: float = Field(0.3, ge=0.0, le=2.0)
    stim_artefact_v: float = Field(0.03, ge=0.0, le=5.0)
    #: The calcium indicator (acquisition/fish/_indicator.py: GCaMP6s, GCaMP6f, jGCaMP7f,
    #: jGCaMP8m, and each with an H2B- prefix for the nuclear-localised line).
    indicator: Literal[
        "GCaMP6s",
        "GCaMP6f",
        "jGCaMP7f",
        "jGCaMP8m",
        "H2B-GCaMP6s",
        "H2B-GCaMP6f",
        "H2B-jGCaMP7f",
        "H2B-jGCaMP8m",
    ] = "H2B-jGCaMP7f"
    #: Spontaneous assemblies (acquisition/fish/_dynamics.py) and the ARTR's period.
    n_assemblies: int = Field(8, ge=0, le=64)
    artr_period_s: float = Field(20.0, ge=2.0, le=300.0)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for name in ("burst_hz", "heart_rate_hz"):
            lo, hi = getattr(self, name)
            top = 100.0 if name == "burst_hz" else 10.0
            if not 0.0 < lo <= hi <= top:
                raise ValueError(
                    f"fish.{name} = [{lo:g}, {hi:g}] must be 0 < low <= high <= {top:g} (Hz)"
                )
        return self


class SimProjectorConfig(Model):
    """The simulated rig's projector as its photodiode sees it (acquisition/daq/_sim_projector.py).

    A frame flipped at sample ``f`` starts scanning out ``input_lag_ms`` later; scan-out
    runs top to bottom over ``scanout_ms``, so the sync patch's rows light up after the
    fraction of it above them; the light then rises with a first-order response
    (``rise_time_ms``, 10-90 %). The light of a drawn level ``v`` is
    ``black + (1 - black) * v ** gamma`` of full scale.
    """

    input_lag_ms: float = Field(25.0, ge=0.0, le=500.0)
    scanout_ms: float = Field(15.0, ge=0.0, le=100.0)
    rise_time_ms: float = Field(1.0, ge=0.0, le=50.0)
    gamma: float = Field(2.2, ge=0.2, le=5.0)
    black: float = Field(0.02, ge=0.0, lt=1.0)
    full_scale_v: float = Field(2.0, gt=0.0, le=10.0)
    noise_v: float = Field(0.004, ge=0.0, le=1.0)


class SimMicroscopeConfig(Model):
    """How the simulated sample moves and fades (to test the live readout against a known truth).

    The brain is drawn displaced by ``drift_um_per_min`` x minutes since the start,
    plus ``drift_step_um`` from ``drift_step_at_s`` on (z, y, x; rounded to whole
    voxels when drawn); its fluorescence (not the camera offset) falls by
    ``bleaching_per_min`` per minute (exponentially).
    """

    drift_um_per_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    drift_step_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    drift_step_at_s: float | None = Field(None, ge=0.0)
    #: On by default at 0.1 % per minute (~11 % over the dataset's 2 h). A model choice of
    #: the published order: two-photon light-sheet imaging of elavl3:H2B-GCaMP6s lost
    #: < 0.5 % in 30 min (Keomanee-Dizon et al. 2020, Neurophotonics 7:015003, Fig. 13d);
    #: one-photon light sheets, as in the dataset, bleach faster.
    bleaching_per_min: float = Field(0.001, ge=0.0, lt=1.0)

    @property
    def moves(self) -> bool:
        return any(self.drift_um_per_min) or (
            self.drift_step_at_s is not None and any(self.drift_step_um)
        )


class FaultConfig(Model):
    """Fault injection for simulated runs: which device fails, and when (seconds)."""

    camera_stops_at_s: Seconds | None = None
    camera_drops_frame_at_s: Seconds | None = None
    daq_overflow_at_s: Seconds | None = None
    renderer_dies_at_s: Seconds | None = None
    laser_disconnects_at_s: Seconds | None = None
    disk_full_at_s: Seconds | None = None
    writer_dies_at_s: Seconds | None = None
    #: The simulated projector skips the frame due at each of these times (it never shows
    #: it; the previous frame stays up): only the photodiode can tell.
    display_drops_frames_at_s: tuple[Seconds, ...] = ()
    #: The simulated brain changes course at this time: from then on every second neuron
    #: is driven fully, whatever the stimulus (what a live forecaster did not expect).
    brain_change_at_s: Seconds | None = None


class SimulationConfig(Model):
    """Everything only a simulated rig has; each field is a top-level table of a rig file."""

    fish: FishConfig = FishConfig()
    faults: FaultConfig = FaultConfig()
    sim_projector: SimProjectorConfig = SimProjectorConfig()
    sim_microscope: SimMicroscopeConfig = SimMicroscopeConfig()


#: The top-level tables of a rig file that belong to the simulation (``SimulationConfig``).
SIMULATION_TABLES: tuple[str, ...] = tuple(SimulationConfig.model_fields)
