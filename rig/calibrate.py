"""``zaprig calibrate display``: measure the projector's luminance curve with the photodiode.

A projector's light is not linear in the level drawn (roughly ``level ** gamma``).
The calibration runs an ordinary session on the rig whose only condition steps
the whole field through a sweep of levels, with the sync patch showing the
field's level instead of its frame code (``sync_patch.mode = "luminance"``) and
no gamma correction (``display.gamma = 1``). Each level's light is the median
photodiode voltage over the last quarter of its step, and a level whose light
still moves between the step's last two quarters (more than 2 % of the black-white
range) refuses the sweep: the light had not settled. A fit that ends on the fit's
bound, or far from a gamma curve (RMS residual over 3 %), is refused too, with why;
nothing is written then. PsychoPy's ``monitors.GammaCalculator`` fits
``light = black + (white - black) * level ** gamma``; the gamma is written into
the rig config's ``[display]`` table (the file keeps its comments), and every
later session draws ``luminance ** (1 / gamma)``, so relative luminances are
linear in light (stimuli/render/gamma.py).

The session file of the sweep is kept (``calibration/`` beside the sessions)
as the record of what was measured.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rig.core.config import DEFAULT_CONFIG, RigConfig, SyncPatchConfig, load_config
from rig.core.errors import ConfigError, DeviceError, ZaprigError
from rig.core.optional import require
from stimuli.library import Dark
from stimuli.protocol import Protocol, condition, step

__all__ = ["GammaFit", "calibrate_display", "check_sweep", "measure_levels", "write_gamma"]


@dataclass(frozen=True)
class GammaFit:
    """A measured luminance curve and the gamma fitted to it."""

    levels: np.ndarray  # drawn (or asked-for) levels 0..1
    volts: np.ndarray  # photodiode median at each level
    gamma: float
    session: Path

    @property
    def relative(self) -> np.ndarray:
        """Light at each level relative to black (0) and white (1)."""
        return (self.volts - self.volts[0]) / (self.volts[-1] - self.volts[0])


def _check_rig(rig: RigConfig, source: Path) -> SyncPatchConfig:
    if not rig.daq.photodiode_channel:
        raise ConfigError(
            f"{source}: daq.photodiode_channel is not set: the display calibration measures "
            "light with a photodiode over the sync patch (set it to the photodiode's input)"
        )
    if rig.display.sync_patch is None:
        raise ConfigError(
            f"{source}: display.sync_patch is not set: the calibration shows its levels in the "
            "patch under the photodiode (add a [display.sync_patch] table)"
        )
    return rig.display.sync_patch


#: Sane limits of a sweep: 3 levels at least to fit a curve, 256 at most (an 8-bit display
#: has no more); each level shown for 50 ms to 60 s.
LEVELS_RANGE = (3, 256)
SECONDS_RANGE = (0.05, 60.0)
#: A level has settled when the medians of its step's last two quarters agree within 2 % of
#: the black-white range; a fit is refused if its RMS residual exceeds 3 % of that range.
SETTLED_FRACTION = 0.02
RESIDUAL_FRACTION = 0.03
#: PsychoPy's GammaCalculator bounds the gamma to [0.8, 5.0] (calibTools.fitGammaFun): a fit
#: on a bound did not find a minimum.
GAMMA_BOUNDS = (0.8, 5.0)


def check_sweep(n_levels: int, seconds_per_level: float) -> None:
    """Refuse a sweep that cannot measure a curve, with the limits and the fix."""
    lo, hi = LEVELS_RANGE
    if not lo <= n_levels <= hi:
        raise ZaprigError(
            f"--levels {n_levels}: a sweep needs {lo} to {hi} levels (black, white and at "
            f"least one between; an 8-bit display has {hi}); give e.g. --levels 11"
        )
    lo_s, hi_s = SECONDS_RANGE
    if not math.isfinite(seconds_per_level) or not lo_s <= seconds_per_level <= hi_s:
        raise ZaprigError(
            f"--seconds-per-level {seconds_per_level}: give a number of seconds from {lo_s} "
            f"to {hi_s:g} (each level must be shown long enough for its light to settle); "
            "e.g. --seconds-per-level 0.5"
        )


@dataclass(frozen=True)
class _Sweep:
    """The photodiode over a sweep: each level's last two quarters, and the settling probe."""

    third: np.ndarray  # median volts over each level's step's third quarter
    last: np.ndarray  # ... and over its last quarter (the measurement)
    settle_s: float | None  # black -> white: light within 5 % of white after this (None: never)
    session: Path


def _settle_time(pd: np.ndarray, c0: int, step_n: int, fs: float) -> float | None:
    """Seconds from the probe's white step to its light staying within 5 % of white.

    The sweep starts with one step of white after the black lead-in: black -> white is the
    largest change the display makes, so its latency plus rise bounds every level's.
    None: no light change came within the step (the display is slower than the step).
    """
    q = max(1, step_n // 4)
    pre = float(np.median(pd[max(0, c0 - q) : c0]))
    probe = pd[c0 : c0 + step_n]
    white = float(np.median(probe[-q:]))
    if white - pre < 0.5 * (float(np.max(pd)) - pre):
        return None
    k = max(1, int(fs / 1000))  # 1 ms moving average: noise is not unsettled light
    smooth = np.convolve(probe, np.ones(k) / k, mode="same")
    far = np.flatnonzero(np.abs(smooth[: len(probe) - k] - white) > 0.05 * (white - pre))
    return (int(far[-1]) + 1 if len(far) else 0) / fs


def _sweep(
    rig: RigConfig, levels: np.ndarray, out_dir: Path, seconds_per_level: float, source: Path
) -> _Sweep:
    """Run the sweep (a white probe step, then the levels) and read the photodiode."""
    from rig.engine import Engine, RunState
    from rig.session import SessionReader

    patch = _check_rig(rig, source)
    display = rig.display.model_copy(
        update={"sync_patch": patch.model_copy(update={"mode": "luminance"})}
    )
    measuring = rig.model_copy(update={"display": display})
    steps = [step(Dark(luminance=1.0), seconds_per_level, "settling probe (white)")]
    steps += [step(Dark(luminance=float(v)), seconds_per_level, f"level {v:.3f}") for v in levels]
    # whole volumes, rounded up: a condition rounded down would cut the last levels short
    period = rig.microscope.volume_period_s
    n_vol = math.ceil(seconds_per_level * len(steps) / period - 1e-9)
    proto = Protocol(
        name="display calibration", conditions=[condition("sweep", *steps, volumes=n_vol)]
    )
    clock = "virtual" if rig.daq.backend == "sim" else "realtime"
    engine = Engine(measuring, proto, out_dir, clock=clock, rig_source=str(source))
    final = engine.run()
    if final is not RunState.COMPLETE or engine.path is None:
        raise DeviceError(
            f"display calibration: the sweep ended {final.value}; see the events of {engine.path}"
        )
    fs = rig.daq.sample_rate_hz
    step_n = round(seconds_per_level * fs)
    with SessionReader(engine.path) as r:
        if r.analog_inputs is None:
            raise DeviceError(f"display calibration: {engine.path} recorded no photodiode")
        pd = r.analog_inputs[:, 0]
        c0 = int(r.table("protocol/conditions")["start_sample"][0])
    # step i starts i step lengths into the condition (stimuli/schedule.py, Schedule.step_at)
    starts = c0 + np.round(np.arange(1, len(steps)) * seconds_per_level * fs).astype(np.int64)
    if int(starts[-1]) + step_n > len(pd):
        raise DeviceError(
            f"display calibration: the recording ends before the last level's step "
            f"({len(pd)} samples, the sweep needs {int(starts[-1]) + step_n}) ({engine.path})"
        )
    q = max(1, step_n // 4)
    third = np.array([float(np.median(pd[s + step_n - 2 * q : s + step_n - q])) for s in starts])
    last = np.array([float(np.median(pd[s + step_n - q : s + step_n])) for s in starts])
    return _Sweep(third, last, _settle_time(pd, c0, step_n, fs), engine.path)


def measure_levels(
    rig: RigConfig,
    levels: np.ndarray,
    out_dir: Path,
    seconds_per_level: float = 0.5,
    source: Path = DEFAULT_CONFIG,
) -> tuple[np.ndarray, Path]:
    """Show each relative luminance in turn; the photodiode's median volts per level (over the
    last quarter of its step, once the light has settled), and the file.

    The rig's own ``display.gamma`` applies, so this measures what stimuli get.
    """
    sw = _sweep(rig, levels, out_dir, seconds_per_level, source)
    return sw.last, sw.session


def fit_gamma(levels: np.ndarray, volts: np.ndarray) -> float:
    """PsychoPy's fit of ``black + (white - black) * level ** gamma`` (its equation 1)."""
    try:
        from psychopy import monitors
    except ImportError as e:
        raise ZaprigError(
            f"display calibration needs PsychoPy to fit the gamma ({e}): "
            "pip install 'zaprig[psychopy]'"
        ) from None
    calc = monitors.GammaCalculator(inputs=np.asarray(levels) * 255.0, lums=np.asarray(volts), eq=1)
    return float(calc.gamma)


def write_gamma(path: Path, gamma: float) -> None:
    """Set ``gamma`` in the ``[display]`` table of a rig TOML, keeping the rest of the file."""
    old = text = path.read_text(encoding="utf-8")
    line = f"gamma = {gamma:.3f}"
    header = re.search(r"^\[display\][ \t]*(#.*)?$", text, flags=re.M)
    if header is None:
        text = text.rstrip("\n") + f"\n\n[display]\n{line}\n"
    else:
        nxt = re.search(r"^\[", text[header.end() :], flags=re.M)
        end = header.end() + (nxt.start() if nxt else len(text) - header.end())
        body = text[header.end() : end]
        new, n = re.subn(r"^gamma[ \t]*=.*$", line, body, count=1, flags=re.M)
        if not n:
            new = f"\n{line}" + body
        text = text[: header.end()] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        path.write_text(old, encoding="utf-8")  # a rig config is never left invalid
        raise


def calibrate_display(
    config: Path,
    out_dir: Path,
    n_levels: int = 11,
    seconds_per_level: float = 0.5,
    write: bool = True,
) -> GammaFit:
    """Measure the raw curve (gamma 1), fit, and store the gamma in ``config``."""
    check_sweep(n_levels, seconds_per_level)
    rig = load_config(config)
    raw = rig.model_copy(update={"display": rig.display.model_copy(update={"gamma": 1.0})})
    levels = np.linspace(0.0, 1.0, n_levels)
    sw = _sweep(raw, levels, out_dir, seconds_per_level, config)
    third, volts, session = sw.third, sw.last, sw.session
    longer = f"give a longer --seconds-per-level (e.g. {min(60.0, 4 * seconds_per_level):g})"
    if sw.settle_s is None or sw.settle_s > seconds_per_level / 2:
        took = (
            "no change of light came within the step"
            if sw.settle_s is None
            else f"the light took {sw.settle_s * 1000:.0f} ms to settle from black to white"
        )
        raise DeviceError(
            f"display calibration: each level is measured over the second half of its "
            f"{seconds_per_level:g} s step, but {took}: the levels would be read before "
            f"their light; nothing written: {longer} ({session})"
        )
    span = volts[-1] - volts[0]
    if span <= 0.05 * max(abs(volts[-1]), 1e-3):
        raise DeviceError(
            f"display calibration: the photodiode read {volts[0]:.3f} V at black and "
            f"{volts[-1]:.3f} V at white; it does not see the sync patch "
            f"({rig.display.sync_patch}): check where it sits and its wiring ({session})"
        )
    moved = np.abs(volts - third) / span
    worst = int(np.argmax(moved))
    if moved[worst] > SETTLED_FRACTION:
        raise DeviceError(
            f"display calibration: the light had not settled: at level {levels[worst]:.3f} "
            f"the photodiode still moved {moved[worst]:.0%} of the black-white range within "
            f"the last half of its {seconds_per_level:g} s step (limit "
            f"{SETTLED_FRACTION:.0%}); nothing written: {longer} ({session})"
        )
    gamma = fit_gamma(levels, volts)
    lo, hi = GAMMA_BOUNDS
    if not lo * 1.01 < gamma < hi * 0.99:
        raise DeviceError(
            f"display calibration: the fit ended on its bound (gamma {gamma:.3f}, the fit "
            f"allows {lo} to {hi}), so it found no curve; nothing written: check that the "
            f"photodiode sees the sync patch and only it, then sweep again ({session})"
        )
    model = volts[0] + span * levels**gamma
    residual = float(np.sqrt(np.mean((volts - model) ** 2)) / span)
    if residual > RESIDUAL_FRACTION:
        raise DeviceError(
            f"display calibration: the measured light is not a gamma curve (RMS residual "
            f"{residual:.1%} of the black-white range, limit {RESIDUAL_FRACTION:.0%}; gamma "
            f"{gamma:.3f}); nothing written: shield the photodiode from room light and "
            f"sweep again with a longer --seconds-per-level ({session})"
        )
    fit = GammaFit(levels, volts, gamma, session)
    if write:
        write_gamma(config, fit.gamma)
    return fit


def cli_calibrate(args: argparse.Namespace) -> int:
    """``zaprig calibrate display``."""
    require("psychopy", "zaprig calibrate display")  # the gamma fit is PsychoPy's: say so first
    config = args.config or DEFAULT_CONFIG
    check_sweep(args.levels, args.seconds_per_level)  # before the config is even read
    fit = calibrate_display(
        config, args.out, args.levels, args.seconds_per_level, write=not args.dry_run
    )
    print(f"sweep     {len(fit.levels)} levels, session {fit.session}")
    print("  level   photodiode V   relative light")
    for v, volts, rel in zip(fit.levels, fit.volts, fit.relative, strict=True):
        print(f"  {v:5.3f}   {volts:12.4f}   {rel:14.4f}")
    where = "not written (--dry-run)" if args.dry_run else f"written to {config} [display]"
    print(f"gamma     {fit.gamma:.3f}  {where}")
    return 0
