"""``zaprig check``: preflight a rig before a fish is mounted.

Each check opens the real device the config names (and closes it again), or
measures the machine, and says pass / warn / fail with what to do. Nothing is
started: no laser emission, no triggers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rig.core.config import RigConfig, load_config
from rig.core.errors import ZaprigError
from rig.core.optional import install_hint
from stimuli.protocol import Protocol, load_protocol
from stimuli.schedule import Schedule

__all__ = ["Check", "cli_check", "run_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # pass | warn | fail
    detail: str
    fix: str = ""


#: Preflight opens and closes each device once: the simulated ones need no real randomness.
_RNG = np.random.default_rng(0)


def _device(name: str, opener: Callable[[], object], simulated: bool) -> Check:
    try:
        dev = opener()
        close = getattr(dev, "close", None)
        if callable(close):
            close()
    except ZaprigError as e:
        return Check(name, "fail", str(e).splitlines()[0], _fix_from(str(e)))
    except Exception as e:
        return Check(name, "fail", f"{type(e).__name__}: {e}", "check the device and its driver")
    return Check(name, "pass", "simulated" if simulated else "opened and closed")


def _fix_from(msg: str) -> str:
    lines = msg.splitlines()
    # our device errors already end with what to do; repeat only a separate hint line
    return lines[1].strip() if len(lines) > 1 else ""


def _open_daq(rig: RigConfig) -> object:
    from acquisition.daq import make_daq
    from rig.core.clock import make_clock
    from rig.devices import make_fish, make_projector

    clock = make_clock("virtual", rig.daq.sample_rate_hz)
    daq = make_daq(rig, clock, make_fish(rig, 0), _RNG, make_projector(rig, 0))
    daq.open()
    return daq


def _open_microscope(rig: RigConfig) -> object:
    from acquisition.microscope import make_microscope
    from rig.devices import make_fish

    m = make_microscope(rig, make_fish(rig, 0))
    m.open()
    return m


def _open_laser(rig: RigConfig) -> object:
    from acquisition.laser import make_laser

    laser = make_laser(rig.laser)
    laser.open()
    laser.status()
    return laser


def _display(rig: RigConfig) -> Check:
    d = rig.display
    if d.backend == "headless":
        return Check("display", "pass", "headless renderer (no window)")
    if importlib.util.find_spec("psychopy") is None:  # first: no display helps without it
        msg = "display.backend is 'psychopy' but PsychoPy (the 'psychopy' extra) is not installed"
        return Check("display", "fail", msg, install_hint("psychopy"))
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return Check(
            "display",
            "fail",
            "display.backend is 'psychopy' but there is no X display (DISPLAY unset)",
            "run on the rig's desktop session, or set display.backend = 'headless'",
        )
    try:
        import psychopy  # noqa: F401
    except ImportError as e:  # installed, but broken (a missing system library)
        return Check("display", "fail", f"PsychoPy cannot be imported: {e}", "reinstall PsychoPy")
    return Check(
        "display",
        "pass",
        f"PsychoPy available; screen {d.screen} at {d.refresh_hz:g} Hz expected "
        "(measured frame intervals are logged per session)",
    )


def _camera_rate(rig: RigConfig) -> Check:
    m = rig.microscope
    plane_s = m.volume_period_s / m.planes_per_volume
    need_hz = 1.0 / plane_s
    if m.exposure_ms * 1e-3 >= plane_s:
        return Check(
            "camera rate",
            "fail",
            f"exposure {m.exposure_ms} ms does not fit the plane interval {plane_s * 1e3:.2f} ms",
            "shorten microscope.exposure_ms or lengthen volume_period_s",
        )
    margin = plane_s - m.exposure_ms * 1e-3
    status = "pass" if margin > 1e-3 else "warn"
    return Check(
        "camera rate",
        status,
        f"{need_hz:.1f} planes/s needed; exposure {m.exposure_ms} ms leaves {margin * 1e3:.2f} ms readout",
        "" if status == "pass" else "leave >= 1 ms for sensor readout",
    )


def _bytes_per_s(rig: RigConfig) -> float:
    z, y, x = rig.microscope.shape_zyx
    return z * y * x * 2 / rig.microscope.volume_period_s + rig.daq.sample_rate_hz * 40


def _disk_space(rig: RigConfig, tl: Schedule, out: Path) -> Check:
    need = _bytes_per_s(rig) * tl.duration_s
    free = shutil.disk_usage(out).free
    detail = (
        f"{free / 1e9:.1f} GB free in {out}; the session needs ~{need / 1e9:.1f} GB "
        "(uncompressed; lz4 roughly halves it)"
    )
    if free < need:
        return Check("disk space", "fail", detail, "free space or choose another --out folder")
    if free < 1.5 * need:
        return Check("disk space", "warn", detail, "less than 50% headroom")
    return Check("disk space", "pass", detail)


def _ring_memory(rig: RigConfig) -> Check:
    """The writer's ring must fit in shared memory (it is touched in full at arm)."""
    from acquisition.writer import ring_too_big, shared_memory_free

    slot = int(np.prod(rig.microscope.shape_zyx)) * 2
    n = rig.writer.volume_slots
    problem = ring_too_big(slot, n)
    if problem:
        return Check("ring memory", "fail", problem, "fewer writer.volume_slots")
    free = shared_memory_free()
    room = "" if free is None else f" of {free / 1e9:.1f} GB free"
    return Check("ring memory", "pass", f"{n} volume slots: {slot * n / 1e6:,.0f} MB{room}")


def _disk_speed(rig: RigConfig, out: Path, megabytes: int = 256) -> Check:
    rate = _bytes_per_s(rig)
    block = os.urandom(4 << 20)
    n = max(1, (megabytes << 20) // len(block))
    with tempfile.NamedTemporaryFile(dir=out, prefix=".zaprig-speed-", delete=True) as tmp:
        t0 = time.perf_counter()
        for _ in range(n):
            tmp.write(block)
        tmp.flush()
        os.fsync(tmp.fileno())
        dt = time.perf_counter() - t0
    mbs = n * len(block) / dt
    detail = f"{mbs / 1e6:.0f} MB/s sequential with fsync; the rig produces {rate / 1e6:.1f} MB/s"
    if mbs < rate:
        return Check(
            "disk speed",
            "fail",
            detail,
            "use a faster disk or writer.compression = 'lz4' (about half the bytes)",
        )
    if mbs < 1.5 * rate:
        return Check("disk speed", "warn", detail, "little headroom: consider compression")
    return Check("disk speed", "pass", detail)


def run_checks(rig: RigConfig, protocol: Protocol, out: Path) -> list[Check]:
    out.mkdir(parents=True, exist_ok=True)
    tl = Schedule.build(protocol, rig)
    return [
        Check("config", "pass", f"rig '{rig.name}' is valid"),
        _device("DAQ", lambda: _open_daq(rig), rig.daq.backend == "sim"),
        _device("microscope", lambda: _open_microscope(rig), rig.microscope.backend == "sim"),
        _device("laser", lambda: _open_laser(rig), rig.laser.backend == "sim"),
        _display(rig),
        _camera_rate(rig),
        _disk_space(rig, tl, out),
        _ring_memory(rig),
        _disk_speed(rig, out),
    ]


def format_checks(checks: list[Check]) -> str:
    mark = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
    lines = [f"{'check':<12} {'result':<6} detail"]
    for c in checks:
        lines.append(f"{c.name:<12} {mark[c.status]:<6} {c.detail}")
        if c.fix:
            lines.append(f"{'':<12} {'':<6} -> {c.fix}")
    return "\n".join(lines)


def cli_check(args: argparse.Namespace) -> int:
    from rig.core.errors import check_writable

    check_writable(args.out, "--out", folder=True)
    rig = load_config(args.config)
    proto = load_protocol(args.protocol)
    checks = run_checks(rig, proto, args.out)
    print(format_checks(checks))
    failed = [c for c in checks if c.status == "fail"]
    print(f"\n{len(failed)} failed, {sum(c.status == 'warn' for c in checks)} warnings")
    return 1 if failed else 0
