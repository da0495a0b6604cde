"""Exporting a session: the ZAPBench dataset's layout (tensorstore zarr3) or NWB (pynwb).

``zaprig export SESSION --format zapbench|nwb OUT`` lands in :func:`cli_export`.
The layouts are described in docs/export.md. pynwb loads only for NWB exports.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.export._common import SessionInfo, session_info
from rig.export._zapbench import ZapbenchExport, export_zapbench, write_rest
from rig.export._zarr import raw_array, write_volume_range, zarr_codecs

if TYPE_CHECKING:
    from rig.export._nwb import NwbExport

__all__ = [
    "NwbExport",
    "SessionInfo",
    "ZapbenchExport",
    "cli_export",
    "export_nwb",
    "export_zapbench",
    "raw_array",
    "session_info",
    "write_rest",
    "write_volume_range",
    "zarr_codecs",
]


def export_nwb(session: str | Path, out: str | Path, **kwargs: Any) -> NwbExport:
    """Write the session as an NWB file (see :func:`rig.export._nwb.export_nwb`)."""
    from rig.export._nwb import export_nwb as _export_nwb

    return _export_nwb(session, out, **kwargs)


def __getattr__(name: str) -> Any:
    # NwbExport is in __all__ but importing it eagerly would load pynwb for every export
    if name == "NwbExport":
        from rig.export._nwb import NwbExport

        return NwbExport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _warn_forecast_length(session: Path) -> None:
    """Warn when a condition is too short for the forecasting benchmark's windows."""
    from rig.core.errors import ProtocolError
    from rig.forecast import protocol_scale, scale_advice
    from rig.session import SessionReader
    from stimuli.builtin import dataset_protocol
    from stimuli.protocol import protocol_from_dict

    with SessionReader(session) as r:
        offsets = r.condition_offsets
        proto_json = r.protocol
        period = r.volume_period_s
    lengths = [b - a for a, b in itertools.pairwise(offsets)]
    try:
        proto = protocol_from_dict(proto_json, session)
    except ProtocolError:  # an old or hand-made protocol: the lengths alone still warn
        proto = None
    base = 1.0
    if proto is not None:
        base = protocol_scale(proto.name)
        builtin = dataset_protocol()
        if base != 1.0 and proto.name.startswith(builtin.name + " (x"):
            # the built-in protocol at full length: a scaled one's volume counts are rounded
            proto, base = builtin, 1.0
    if proto is None:
        advice = scale_advice(lengths, lambda k: [max(1, round(n * k)) for n in lengths])
    else:
        advice = scale_advice(
            lengths,
            lambda k: [c.n_volumes(period) for c in proto.scaled(k).conditions],
            base,
            [c.name for c in proto.conditions],
        )
    if advice:
        print(f"  warning: {advice}")


def cli_export(args: argparse.Namespace) -> int:
    """``zaprig export``: 0 on success; bad input raises SessionFileError (exit code 2)."""
    from rig.core.errors import check_writable
    from rig.core.lock import refuse_if_live

    refuse_if_live(args.session, "exporting")
    check_writable(args.out, "export OUT", folder=args.format == "zapbench")
    show = sys.stderr.isatty()
    if args.format == "zapbench":
        z = export_zapbench(args.session, args.out, progress=show)
        x, y, zz, t = z.shape_xyzt
        print(f"zaprig: exported {args.session} in the zapbench layout to {z.out}")
        print(f"  {z.stream_path.relative_to(z.out)}  {z.samples} samples x 10 rows")
        print(f"  raw/  zarr3 uint16 x,y,z,t = {x} x {y} x {zz} x {t}")
        print(f"  conditions.json  {z.conditions} conditions")
        if z.traces:
            print(f"  traces/, traces_raw/  offline readout (dF/F, counts) of {z.traces} labels")
        if z.neurons:
            print(f"  segmentation/, ground_truth_traces/  ground truth of {z.neurons} neurons")
        for note in z.notes:
            print(f"  note: {note}")
        _warn_forecast_length(args.session)
        return 0
    n = export_nwb(args.session, args.out, progress=show)
    print(f"zaprig: exported {args.session} as NWB to {n.path}")
    print(
        f"  volumes {'copied into the file' if n.volumes_copied else 'linked as external file'}"
        f" ({n.volumes} volumes), {n.bouts} bouts, {n.conditions} conditions, "
        f"{n.frames} stimulus frames"
    )
    for note in n.notes:
        print(f"  note: {note}")
    return 0
