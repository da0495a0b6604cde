"""Exporting a session: the ZAPBench dataset's layout (tensorstore zarr3) or NWB (pynwb).

``zaprig export SESSION --format zapbench|nwb OUT`` lands in :func:`cli_export`.
The layouts are described in docs/export.md. pynwb loads only for NWB exports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.export._zapbench import ZapbenchExport, export_zapbench

if TYPE_CHECKING:
    from rig.export._nwb import NwbExport

__all__ = ["NwbExport", "ZapbenchExport", "cli_export", "export_nwb", "export_zapbench"]


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


def cli_export(args: argparse.Namespace) -> int:
    """``zaprig export``: 0 on success; bad input raises SessionFileError (exit code 2)."""
    from rig.session._lock import refuse_if_live

    refuse_if_live(args.session, "exporting")
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
