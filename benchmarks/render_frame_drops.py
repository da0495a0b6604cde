"""Frame drops of the PsychoPy renderer process in real time, against the 1% limit.

Runs the renderer process at 60 Hz for a while (20 s by default) on the whole
dataset protocol squeezed into that time, while this process publishes
closed-loop states every 10 ms as the engine does after each DAQ chunk and
collects the frame records twice a second. Prints the frames shown, the frames
dropped (refresh slots missed), the drop fraction and its ratio to the 1%
limit, and the flip interval percentiles measured on the DAQ clock.

Without a DISPLAY it starts a private Xvfb (no vsync there: the renderer paces
itself on ``time.monotonic()``).

    .venv/bin/python benchmarks/render_frame_drops.py [--seconds 20] [--no-realtime]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.core.config import DisplayConfig, RigConfig
from stimuli.builtin import dataset_protocol
from stimuli.closed_loop import LoopState
from stimuli.render._psychopy import PsychopyRenderer, xvfb_display
from stimuli.schedule import Schedule
from stimuli.state import Look

DROP_LIMIT = 0.01  # at most 1% of refresh slots may be missed


def run(seconds: float, refresh_hz: float, size: tuple[int, int], realtime: bool) -> int:
    rig = RigConfig()
    full = Schedule.build(dataset_protocol(), rig)
    timeline = Schedule.build(dataset_protocol().scaled(seconds / full.duration_s), rig)
    fs = timeline.sample_rate_hz
    display = DisplayConfig(backend="psychopy", size_px=size, refresh_hz=refresh_hz)
    renderer = PsychopyRenderer(display, realtime_priority=realtime)
    started = time.monotonic()
    renderer.start(timeline, fs)
    print(
        f"renderer up in {time.monotonic() - started:.1f} s "
        f"(vsync={renderer.vsync}, realtime priority={renderer.realtime}); "
        f"{size[0]}x{size[1]} px at {refresh_hz:g} Hz for {seconds:g} s, "
        f"protocol {timeline.duration_s:.1f} s, {timeline.n_conditions} conditions"
    )
    chunks = []
    publish_gaps = []
    loop = LoopState(gain=1.0)
    t0 = last = time.monotonic()
    next_collect = t0 + 0.5
    try:
        while (now := time.monotonic()) < t0 + seconds:
            dt = now - last
            publish_gaps.append(dt)
            last = now
            # A fish that swims in bouts: the world's velocity and heading keep changing.
            loop.velocity = -10.0 + 20.0 * (math.sin(2.0 * math.pi * 0.5 * (now - t0)) > 0.8)
            loop.position_mm += loop.velocity * dt
            loop.heading_deg = 30.0 * math.sin(2.0 * math.pi * 0.1 * (now - t0))
            loop.updated_sample = round((now - t0) * fs)
            renderer.publish(loop.copy(), loop.updated_sample, 60)
            if now >= next_collect:
                chunks.append(renderer.collect())
                next_collect += 0.5
                fault = renderer.check()
                if fault:
                    print(fault)
                    return 1
            time.sleep(0.01)
    finally:
        renderer.stop()
    chunks.append(renderer.collect())
    frames = np.concatenate(chunks)
    shown = renderer.frames_shown
    dropped = renderer.dropped_frames
    fraction = dropped / max(1, shown + dropped)
    intervals_ms = np.diff(frames["flip_sample"]) / fs * 1000.0
    p50, p99 = np.percentile(intervals_ms, [50, 99])
    looks = Counter(Look(int(v)).name for v in frames["look"])
    conditions = sorted({int(c) for c in frames["condition"]} - {-1})
    print(
        f"frames shown:      {shown}  (records received {len(frames)}, lost {renderer.lost_records})"
    )
    print(f"frames dropped:    {dropped}")
    print(f"drop fraction:     {fraction:.4%}  = {fraction / DROP_LIMIT:.3f} x the 1% limit")
    print(
        f"flip interval:     p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {intervals_ms.max():.2f} ms "
        f"(ideal {1000.0 / refresh_hz:.2f} ms)"
    )
    gaps = np.asarray(publish_gaps[1:]) * 1000.0
    print(f"publish interval:  p50 {np.median(gaps):.2f} ms, p99 {np.percentile(gaps, 99):.2f} ms")
    print(f"conditions shown:  {conditions}; frames per look: {dict(looks)}")
    late = np.flatnonzero(intervals_ms > 1.5 * 1000.0 / refresh_hz) + 1
    late_looks = Counter(Look(int(v)).name for v in frames["look"][late])
    print(f"late flips by look: {dict(late_looks) or 'none'}")
    return 0 if fraction <= DROP_LIMIT else 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--refresh-hz", type=float, default=60.0)
    ap.add_argument("--size", default="800x600", help="window size, WxH px")
    ap.add_argument("--no-realtime", action="store_true", help="do not ask for real-time priority")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DISPLAY"):
            screen = f"{max(1024, w)}x{max(768, h)}x24"
            xvfb = stack.enter_context(xvfb_display(screen, realtime=not args.no_realtime))
            print(f"no DISPLAY: started Xvfb on {xvfb.name} (realtime priority={xvfb.realtime})")
        return run(args.seconds, args.refresh_hz, (w, h), realtime=not args.no_realtime)


if __name__ == "__main__":
    sys.exit(main())
