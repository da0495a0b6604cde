"""The ``zaprig`` command line: run, plan, inspect, check, recover, gui, swims, export, report,
forecast, calibrate.

Errors that zaprig raises on purpose are printed as one clear message (what,
where, what to do) with exit code 2; a traceback means a bug in zaprig.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rig.core.errors import ZaprigError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + 2  # SIGINT, as a shell reports it
#: The fish id names the session file (with a 16-character time stamp and '.h5').
MAX_FISH_ID = 100
#: Larval zebrafish in a VR rig are days old; a year (adult) is far beyond any protocol here.
MAX_AGE_DPF = 365


def _add_rig_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="rig config TOML (default: hardware_configs/simulated.toml)",
    )


def _add_protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "protocol",
        nargs="?",
        default=None,
        help="protocol file (.toml or .py) or 'dataset' (default: the built-in dataset protocol)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run every condition at this fraction of its length (0.01 = 1%%)",
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from rig.core.stopping import StopOnSignals

    # Installed before anything is created, so a signal at any moment ends the run cleanly.
    holder: dict[str, Any] = {}

    def request_stop(reason: str) -> None:
        holder["reason"] = reason
        if "engine" in holder:
            holder["engine"].request_stop(reason)

    def still_stopping() -> str:
        engine = holder.get("engine")
        if engine is None or engine.path is None:
            return "stopping before the session file exists; nothing is being saved"
        step = engine.stopping_step or "finishing the current chunk"
        return (
            f"still stopping: {step}; {engine.path} is being saved as 'aborted'. "
            "Wait a few seconds: killing zaprig now loses up to the last second of data"
        )

    with StopOnSignals(request_stop, still_stopping) as stops:
        code = _run_session(args, holder)
    # stopped by a signal: 128 + its number, as a shell reports it (130 after Ctrl-C), the
    # same after one Ctrl-C or three; the file says 'aborted' either way
    return code if stops.first_signal is None else 128 + stops.first_signal


def _run_session(args: argparse.Namespace, holder: dict[str, Any]) -> int:
    from rig.core.config import load_config
    from rig.core.errors import check_writable
    from rig.engine import Engine, RunState, RunStatus
    from stimuli.protocol import load_protocol

    if len(args.fish_id) > MAX_FISH_ID:
        raise ZaprigError(
            f"--fish-id: {len(args.fish_id)} characters; at most {MAX_FISH_ID} (it names the "
            "session file): give a shorter id and put the rest in --notes"
        )
    if args.age_dpf is not None and not 0 <= args.age_dpf <= MAX_AGE_DPF:
        raise ZaprigError(
            f"--age-dpf {args.age_dpf}: a fish's age in days post fertilisation is 0 to "
            f"{MAX_AGE_DPF}; give the age it has"
        )
    check_writable(args.out, "--out", folder=True)
    rig = load_config(args.config)
    proto = load_protocol(args.protocol).scaled(args.time_scale)
    fish = {
        k: v
        for k, v in {
            "fish_id": args.fish_id,
            "age_dpf": args.age_dpf,
            "genotype": args.genotype,
            "experimenter": args.experimenter,
            "notes": args.notes,
        }.items()
        if v not in (None, "")
    }
    engine = Engine(
        rig,
        proto,
        out_dir=args.out,
        clock=args.clock,
        seed=args.seed,
        fish=fish,
        rig_source=str(args.config or "hardware_configs/simulated.toml"),
        label_file=args.labels,
    )
    if "reason" in holder:
        print(f"zaprig: {holder['reason']} before the session started; no file written")
        return EXIT_FAILED
    holder["engine"] = engine
    engine.arm()
    print(
        f"zaprig: {proto.name} on rig '{rig.name}' ({args.clock} clock): "
        f"{engine.timeline.n_volumes} volumes, {engine.timeline.duration_s:.1f} s -> {engine.path}",
        file=sys.stderr,
    )
    bar = _progress(engine.timeline.end_sample, args.quiet)

    def progress(st: RunStatus) -> None:
        if bar is not None and "reason" not in holder:  # after SIGHUP the terminal may be gone
            bar.set_postfix_str(
                f"vol {st.volumes_acquired}/{st.volumes_expected} {st.condition_name} "
                f"bouts {st.bouts}",
                refresh=False,
            )
            # update() draws at most every mininterval; refresh() drew on every call, ~29,000
            # times in a virtual-time run of the whole protocol
            bar.update(min(st.sample, st.end_sample) - bar.n)

    final = engine.run(progress)
    if bar is not None:
        with contextlib.suppress(OSError):
            bar.close()
    st = engine.status()
    with contextlib.suppress(OSError):  # SIGHUP: no terminal to tell; the file says it all
        print(
            f"zaprig: session {final.value}: {engine.path} "
            f"({st.volumes_acquired} volumes, {st.bouts} bouts, {st.warnings} warnings)",
            flush=True,
        )
    return EXIT_OK if final is RunState.COMPLETE else EXIT_FAILED


def _progress(total: int, quiet: bool):  # type: ignore[no-untyped-def]
    if quiet:
        return None
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(
        total=total, unit="sample", unit_scale=True, dynamic_ncols=True, file=sys.stderr,
        disable=None, mininterval=0.5,
    )  # fmt: skip


def _cmd_plan(args: argparse.Namespace) -> int:
    from rig.core.config import load_config
    from stimuli.protocol import SCALING_NOTE, load_protocol
    from stimuli.schedule import Schedule

    rig = load_config(args.config)
    full = load_protocol(args.protocol)
    proto = full.scaled(args.time_scale)
    tl = Schedule.build(proto, rig)
    print(f"protocol  {proto.name}   sha256 {proto.sha256[:16]}")
    if proto.description:
        print(f"          {proto.description}")
    if args.time_scale == 1.0:
        print(
            "scale     x1 (full length); with --time-scale X, "
            + SCALING_NOTE[len("time scale: ") :]
        )
    else:
        fcs = full.condition_factors(args.time_scale)
        print(
            f"scale     x{args.time_scale:g}: {SCALING_NOTE[len('time scale: ') :]} "
            f"(here x{min(fcs):.4g} to x{max(fcs):.4g})"
        )
    print(
        f"rig       {rig.name}: volume every {rig.microscope.volume_period_s} s, "
        f"{rig.microscope.planes_per_volume} planes"
    )
    print()
    print("  #  condition    start_vol  volumes   duration   steps (stimulus: seconds)")
    for i, name, a, _b, n, secs, _ in tl.summary_rows():
        steps = ", ".join(
            f"{s.stimulus.kind}: {s.duration_s:.4g}" for s in proto.conditions[i].steps
        )
        print(f"  {i:<2} {name:<12} {a:>9} {n:>8} {secs:>9.1f}s   {steps}")
    print()
    print(f"total     {tl.n_volumes} volumes, {tl.duration_s:.1f} s ({tl.duration_s / 60:.1f} min)")
    _warn_forecast_length(args, rig, [r[4] for r in tl.summary_rows()])
    if args.png:
        from stimuli.plan_plot import plot_timeline

        png = Path(args.png)
        if png.is_dir():
            raise ZaprigError(f"{png}: is a folder; give --png a file name ending in .png")
        try:
            plot_timeline(tl, png)
        except OSError as e:
            raise ZaprigError(f"{png}: cannot save the timeline: {e.strerror or e}") from None
        print(f"timeline  saved to {png}")
    return EXIT_OK


def _warn_forecast_length(args: argparse.Namespace, rig: Any, lengths: list[int]) -> None:
    """A warning when a condition is too short for the forecasting benchmark's windows."""
    from rig.forecast import scale_advice
    from stimuli.protocol import load_protocol

    full = load_protocol(args.protocol)
    period = rig.microscope.volume_period_s
    advice = scale_advice(
        lengths,
        lambda k: [c.n_volumes(period) for c in full.scaled(k).conditions],
        names=[c.name for c in full.conditions],
    )
    if advice:
        print(f"warning   {advice}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from rig.session import format_summary, summarise

    s = summarise(args.session)
    print(format_summary(s))
    return EXIT_OK


def _cmd_recover(args: argparse.Namespace) -> int:
    if args.salvage is not None:
        from rig.session.salvage import salvage

        print(salvage(args.session, args.salvage))
        return EXIT_OK
    from rig.session.recover import recover

    print(recover(args.session))
    return EXIT_OK


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    """Commands whose heavy imports (Qt, pynwb) load only when used: an optional package
    missing anywhere in them is one line naming its extra (rig.core.optional), not a traceback."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        from rig.core.optional import optional_part

        with optional_part(f"zaprig {args.command}"):
            mod = importlib.import_module(module)
            return int(getattr(mod, func)(args))

    return run


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="zaprig",
        description="Closed-loop VR light-sheet rig control (simulated by default).",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a protocol on a rig (simulated by default)")
    _add_protocol_args(p)
    _add_rig_args(p)
    p.add_argument("--out", type=Path, default=Path("sessions"), help="folder for the session file")
    p.add_argument("--clock", choices=("realtime", "virtual"), default="realtime")
    p.add_argument("--seed", type=int, default=0, help="virtual fish seed")
    p.add_argument("--fish-id", default="")
    p.add_argument("--age-dpf", type=int, default=None)
    p.add_argument("--genotype", default="")
    p.add_argument("--experimenter", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--labels",
        default=None,
        metavar="FILE",
        help="label volume for the live readout (.npy, .h5[:/dataset], .zarr; z,y,x or x,y,z): "
        "turns the readout on with these labels",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("plan", help="validate a protocol and print its timeline")
    _add_protocol_args(p)
    _add_rig_args(p)
    p.add_argument("--png", type=Path, default=None, help="also save the timeline as a PNG")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("inspect", help="summarise a session file")
    p.add_argument("session", type=Path)
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "recover",
        help="close an interrupted session file as 'failed', or salvage a damaged one",
    )
    p.add_argument("session", type=Path)
    p.add_argument(
        "--salvage",
        type=Path,
        default=None,
        metavar="OUT",
        help="copy every readable sample, volume and table into the new file OUT "
        "(the original is left untouched)",
    )
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("check", help="preflight a rig: devices, display, camera, disk")
    _add_rig_args(p)
    p.add_argument("protocol", nargs="?", default=None, help="protocol to plan disk space for")
    p.add_argument("--out", type=Path, default=Path("sessions"))
    p.set_defaults(func=_lazy("rig.preflight", "cli_check"))

    p = sub.add_parser("gui", help="open the control app")
    _add_rig_args(p)
    p.add_argument("--out", type=Path, default=Path("sessions"))
    p.set_defaults(func=_lazy("gui.app", "cli_main"))

    p = sub.add_parser("swims", help="re-detect swims offline and compare with the online bouts")
    p.add_argument("session", type=Path)
    p.set_defaults(func=_lazy("rig.swims", "cli_swims"))

    p = sub.add_parser("export", help="export a session (zapbench layout or NWB)")
    p.add_argument("session", type=Path)
    p.add_argument("--format", choices=("zapbench", "nwb"), required=True)
    p.add_argument("out", type=Path, help="output folder (zapbench) or .nwb file")
    p.set_defaults(func=_lazy("rig.export", "cli_export"))

    p = sub.add_parser(
        "forecast",
        help="the forecasting benchmark's mean and linear baselines on a session (MAE)",
    )
    p.add_argument("session", type=Path)
    p.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: SESSION_forecast.json)"
    )
    p.add_argument(
        "--png",
        type=Path,
        default=None,
        help="where to plot MAE per step (default: SESSION_report/forecast.png, for zaprig report)",
    )
    p.add_argument(
        "--traces",
        choices=("live", "ground_truth"),
        default=None,
        help="which traces (default: the live readout's dF/F if recorded, else ground truth)",
    )
    p.set_defaults(func=_lazy("rig.forecast", "cli_forecast"))

    p = sub.add_parser(
        "readout",
        help="recompute drift, brightness and dF/F offline over every volume (a sidecar file)",
    )
    p.add_argument("session", type=Path)
    p.add_argument(
        "--out", type=Path, default=None, help="output file (default: SESSION.readout.h5)"
    )
    p.set_defaults(func=_lazy("rig.readout.offline", "cli_readout"))

    p = sub.add_parser("calibrate", help="calibrate the rig: display (gamma, with the photodiode)")
    p.add_argument("what", choices=("display",), help="what to calibrate")
    _add_rig_args(p)
    p.add_argument(
        "--out", type=Path, default=Path("sessions/calibration"), help="folder for the sweep's file"
    )
    p.add_argument("--levels", type=int, default=11, help="levels in the sweep (black to white)")
    p.add_argument("--seconds-per-level", type=float, default=0.5)
    p.add_argument(
        "--dry-run", action="store_true", help="measure and fit, do not write the config"
    )
    p.set_defaults(func=_lazy("rig.calibrate", "cli_calibrate"))

    p = sub.add_parser("report", help="write an HTML quality-control report for a session")
    p.add_argument("session", type=Path)
    p.add_argument(
        "--out", type=Path, default=None, help="report folder (default: beside the file)"
    )
    p.set_defaults(func=_lazy("rig.report", "cli_report"))

    p = sub.add_parser(
        "batch",
        help="run readout, export, swims or report over many sessions on dask (the batch extra)",
    )
    p.add_argument("what", choices=("readout", "export", "swims", "report"))
    p.add_argument("sessions", type=Path, nargs="+", metavar="SESSION")
    p.add_argument("--out", type=Path, required=True, help="folder: one output per session")
    p.add_argument("--format", choices=("zapbench", "nwb"), default="zapbench", help="export's")
    p.add_argument(
        "--scheduler", default=None, metavar="ADDRESS",
        help="an existing dask scheduler (tcp://host:8786); default: a local cluster",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=None, help="local cluster's worker processes (CPUs)"
    )
    p.add_argument(
        "--chunk-volumes", type=int, default=8, metavar="N",
        help="volumes per task (and per output chunk along t for the readout)",
    )  # fmt: skip
    p.set_defaults(func=_lazy("rig.batch", "cli_batch"))
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ZaprigError as e:
        print(f"zaprig: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            print("zaprig: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return EXIT_OK
    except OSError as e:  # a path the user gave cannot be written (or read): say which
        print(f"zaprig: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(e: OSError) -> str:
    """One line for an operating-system refusal: the path, why, and what to do."""
    import errno

    where = e.filename if e.filename is not None else "a file"
    why = e.strerror or str(e)
    fix = {
        errno.ENOENT: "its folder does not exist: create it or give another path",
        errno.EACCES: "no permission: give a path in a folder you can write",
        errno.EPERM: "not permitted: give a path in a folder you can write",
        errno.EROFS: "the disk is read-only: give a path on a writable disk",
        errno.ENAMETOOLONG: "the name is too long: give a shorter one",
        errno.ENOSPC: "the disk is full: free space or give a path on another disk",
        errno.EISDIR: "it is a folder: give a file name",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
    }.get(e.errno or 0, "give another path")
    return f"{where}: {why}; {fix}"


if __name__ == "__main__":
    sys.exit(main())
