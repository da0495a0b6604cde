"""Display timing as the photodiode measured it: latency, dropped and repeated frames, onset -> light.

Reads ``/stimulus/frames`` (``flip_sample``, ``light_sample``) of a session; the
decoder that filled ``light_sample`` is acquisition/daq/_photodiode.py. Sessions
without a photodiode, or whose photodiode saw no sync code, are "not measured",
never numbers.

- **display latency**: flip -> light, over every frame whose light was seen;
- **dropped**: frames logged as flipped whose light never came, counted between
  the first and the last frame seen (the first frame shows the same black as
  before the run, and the last ones' light may come after the recording ends);
- **repeated**: refresh periods a frame stayed up beyond its own: light-to-light
  gaps of ``m`` periods count ``m - 1`` (a dropped frame leaves the one before it up);
- **swim onset -> light**, in closed-loop frames (gain > 0): from each detected
  bout's start to the light of the first frame after it that moves faster
  (the same pairing as benchmarks/closed_loop_latency.py uses for the flip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np

from rig.core.layout import read_table

__all__ = ["LightTiming", "format_light_timing", "light_timing"]

#: A response frame later than this after the bout's end answers no swim of it.
_RESPONSE_WINDOW_S = 0.2


@dataclass(frozen=True)
class LightTiming:
    """What the photodiode says about a session's display (``measured`` False: nothing)."""

    measured: bool
    why_not: str
    sample_rate_hz: float
    refresh_hz: float
    frames_seen: int = 0
    latency_ms: np.ndarray | None = None  # per frame seen, flip -> light
    dropped: np.ndarray | None = None  # frame numbers never seen
    repeated: int = 0
    onset_to_light_ms: np.ndarray | None = None
    onset_to_flip_ms: np.ndarray | None = None

    @staticmethod
    def stats(x: np.ndarray | None) -> tuple[float, float, float] | None:
        """(p50, p99, max), or None for no values."""
        if x is None or not len(x):
            return None
        return (float(np.percentile(x, 50)), float(np.percentile(x, 99)), float(np.max(x)))


def light_timing(f: h5py.File) -> LightTiming:
    """The display timing of an open session file."""
    fs = float(f["stimuli_and_ephys"].attrs["sample_rate_hz"])
    refresh = _refresh_hz(f)
    names = list(f["analog_inputs"].attrs["channel_names"]) if "analog_inputs" in f else []
    if "photodiode" not in [str(n) for n in names]:
        return LightTiming(False, "no photodiode on this rig", fs, refresh)
    fr = read_table(f["stimulus/frames"])
    if "light_sample" not in fr:
        return LightTiming(False, "frames have no light_sample (older file)", fs, refresh)
    light = fr["light_sample"].astype(np.int64)
    flip = fr["flip_sample"].astype(np.int64)
    seen = np.flatnonzero(light >= 0)
    if len(seen) < 2:
        return LightTiming(
            False, "the photodiode saw no sync code (see the session's warnings)", fs, refresh
        )
    latency = (light[seen] - flip[seen]) / fs * 1e3
    inside = np.arange(seen[0], seen[-1] + 1)
    dropped = fr["frame"][inside[light[inside] < 0]].astype(np.int64)
    period = fs / refresh
    gaps = np.diff(light[seen]) / period
    repeated = int(np.sum(np.maximum(0, np.rint(gaps).astype(np.int64) - 1)))
    on_light, on_flip = _onset_to_light(f, fr, fs)
    return LightTiming(
        True,
        "",
        fs,
        refresh,
        frames_seen=len(seen),
        latency_ms=latency,
        dropped=dropped,
        repeated=repeated,
        onset_to_light_ms=on_light,
        onset_to_flip_ms=on_flip,
    )


def _refresh_hz(f: h5py.File) -> float:
    try:
        cfg = json.loads(str(f.attrs.get("hardware_config", "{}")))
        return float(cfg["display"]["refresh_hz"])
    except (KeyError, ValueError, TypeError):
        return 60.0


def _onset_to_light(
    f: h5py.File, fr: dict[str, np.ndarray], fs: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per detected bout in a closed-loop frame: (onset -> light, onset -> flip) in ms."""
    bouts = read_table(f["behavior/bouts"])
    starts = bouts.get("start_sample", np.zeros(0, np.int64)).astype(np.int64)
    stops = bouts.get("stop_sample", np.zeros(0, np.int64)).astype(np.int64)
    flip = fr["flip_sample"].astype(np.int64)
    light = fr["light_sample"].astype(np.int64)
    vel = fr["velocity"].astype(np.float64)
    gain = fr["gain"].astype(np.float64)
    faster = np.concatenate([[False], vel[1:] > vel[:-1] + 1e-6])
    window = round(_RESPONSE_WINDOW_S * fs)
    to_light, to_flip = [], []
    for a, b in zip(starts, stops, strict=True):
        k = int(np.searchsorted(flip, a, side="left"))
        if k >= len(flip) or gain[k] <= 0:
            continue
        after = np.flatnonzero(faster[k:])
        if not len(after):
            continue
        j = k + int(after[0])
        if flip[j] > b + window or light[j] < 0:
            continue
        to_light.append((light[j] - a) / fs * 1e3)
        to_flip.append((flip[j] - a) / fs * 1e3)
    return np.array(to_light), np.array(to_flip)


def format_light_timing(t: LightTiming) -> list[str]:
    """Lines for ``zaprig inspect``."""
    if not t.measured:
        return [f"light     not measured ({t.why_not})"]

    def pct(x: np.ndarray | None) -> str:
        s = t.stats(x)
        if s is None:
            return "not measured (no closed-loop swims with a frame seen)"
        return f"p50 {s[0]:.1f}  p99 {s[1]:.1f}  max {s[2]:.1f} ms  (n = {len(x)})"  # type: ignore[arg-type]

    assert t.dropped is not None
    shown = ", ".join(str(int(k)) for k in t.dropped[:8]) + (" ..." if len(t.dropped) > 8 else "")
    return [
        f"light     display latency flip -> light: {pct(t.latency_ms)}",
        f"          {t.frames_seen} frames seen by the photodiode; {len(t.dropped)} dropped "
        f"(never seen{': ' + shown if len(t.dropped) else ''}), {t.repeated} repeated",
        f"          swim onset -> light (closed loop): {pct(t.onset_to_light_ms)}",
    ]
