"""``zaprig calibrate display``: measure the projector's luminance curve with the photodiode.

A projector's light is not linear in the level drawn (roughly ``level ** gamma``).
The calibration runs an ordinary session on the rig whose only condition steps
the whole field through a sweep of levels, with the sync patch showing the
field's level instead of its frame code (``sync_patch.mode = "luminance"``) and
no gamma correction (``display.gamma = 1``). Each level's light is the median
photodiode voltage over the second half of its step (well after the display's
latency). PsychoPy's ``monitors.GammaCalculator`` fits
``light = black + (white - black) * level ** gamma``; the gamma is written into
the rig config's ``[display]`` table (the file keeps its comments), and every
later session draws ``luminance ** (1 / gamma)``, so relative luminances are
linear in light (stimuli/render/_gamma.py).

The session file of the sweep is kept (``calibration/`` beside the sessions)
as the record of what was measured.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rig._optional import require
from rig.config import DEFAULT_CONFIG, RigConfig, SyncPatchConfig, load_config
from rig.errors import ConfigError, DeviceError, ZaprigError
from stimuli.library import Dark
from stimuli.protocol import Protocol, condition, step

__all__ = ["GammaFit", "calibrate_display", "measure_levels", "write_gamma"]


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


def measure_levels(
    rig: RigConfig,
    levels: np.ndarray,
    out_dir: Path,
    seconds_per_level: float = 0.5,
    source: Path = DEFAULT_CONFIG,
) -> tuple[np.ndarray, Path]:
    """Show each relative luminance in turn; the photodiode's median volts per level, and the file.

    The rig's own ``display.gamma`` applies, so this measures what stimuli get.
    """
    from rig.engine import Engine, RunState
    from rig.session import open_session, read_table

    patch = _check_rig(rig, source)
    display = rig.display.model_copy(
        update={"sync_patch": patch.model_copy(update={"mode": "luminance"})}
    )
    measuring = rig.model_copy(update={"display": display})
    steps = [step(Dark(luminance=float(v)), seconds_per_level, f"level {v:.3f}") for v in levels]
    proto = Protocol(
        name="display calibration",
        conditions=[condition("sweep", *steps, seconds=seconds_per_level * len(levels))],
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
    with open_session(engine.path) as f:
        pd = f["analog_inputs"][:, 0]
        c0 = int(read_table(f["protocol/conditions"])["start_sample"][0])
    # step i starts i step lengths into the condition (rig/timeline.py, Timeline.step_at)
    starts = c0 + np.round(np.arange(len(levels)) * seconds_per_level * fs).astype(np.int64)
    volts = np.array([float(np.median(pd[s + step_n // 2 : s + step_n])) for s in starts])
    return volts, engine.path


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
    rig = load_config(config)
    raw = rig.model_copy(update={"display": rig.display.model_copy(update={"gamma": 1.0})})
    levels = np.linspace(0.0, 1.0, n_levels)
    volts, session = measure_levels(raw, levels, out_dir, seconds_per_level, config)
    if volts[-1] - volts[0] <= 0.05 * max(abs(volts[-1]), 1e-3):
        raise DeviceError(
            f"display calibration: the photodiode read {volts[0]:.3f} V at black and "
            f"{volts[-1]:.3f} V at white; it does not see the sync patch "
            f"({rig.display.sync_patch}): check where it sits and its wiring ({session})"
        )
    fit = GammaFit(levels, volts, fit_gamma(levels, volts), session)
    if write:
        write_gamma(config, fit.gamma)
    return fit


def cli_calibrate(args: argparse.Namespace) -> int:
    """``zaprig calibrate display``."""
    require("psychopy", "zaprig calibrate display")  # the gamma fit is PsychoPy's: say so first
    config = args.config or DEFAULT_CONFIG
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
